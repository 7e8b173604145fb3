"""Sigma engine: pySigma parses, ``compile`` turns rules into a plan, ``run`` matches in bulk."""

from __future__ import annotations
