"""The case store: Parquet parts per table, manifest.json and a DuckDB catalogue."""

from __future__ import annotations

from tidehunt.case.store import CaseStore

__all__ = ["CaseStore"]
