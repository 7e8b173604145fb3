"""Command-line interface: the only place that prints, draws progress or sets exit codes."""

from __future__ import annotations
