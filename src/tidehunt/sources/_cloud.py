"""Shared parts of the cloud audit sources: the ``cloud_audit`` columns and batches."""

from __future__ import annotations

from typing import Any

from tidehunt.model.batch import TableBatch

CLOUD_COLUMNS = ("ts", "user", "operation", "workload", "object", "src_ip", "target",
                 "visibility", "app", "detail", "provider", "source_file")


def cloud_batch(rows: list[dict[str, Any]], source: str, artefact: str,
                locators: list[str]) -> TableBatch:
    """Rows as a ``cloud_audit`` batch typed by the schema."""
    return TableBatch.from_values("cloud_audit",
                                  {k: [r.get(k) for r in rows] for k in CLOUD_COLUMNS},
                                  source=source, artefact=artefact, locators=locators)
