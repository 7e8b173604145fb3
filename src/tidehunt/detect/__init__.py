"""Detectors: engines that read case tables in bulk and raise findings."""

from __future__ import annotations
