"""Renderers: pure functions of a RunReport and its findings."""

from __future__ import annotations
