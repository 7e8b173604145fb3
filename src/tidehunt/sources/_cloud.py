"""Shared parts of the cloud audit sources: the ``cloud_audit`` columns and batches."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from tidehunt.model.batch import TableBatch
from tidehunt.model.tables import TABLES

CLOUD_COLUMNS = ("ts", "user", "operation", "workload", "object", "src_ip", "target",
                 "visibility", "app", "detail", "provider", "source_file")


def cloud_batch(rows: list[dict[str, Any]], source: str, artefact: str,
                locators: list[str]) -> TableBatch:
    """Rows as a ``cloud_audit`` batch typed by the schema."""
    schema = TABLES["cloud_audit"]
    cols = {}
    for k in CLOUD_COLUMNS:
        spec = schema.field(k)
        cols[k] = pa.array([r.get(k) for r in rows], spec.arrow_type() if spec else None)
    return TableBatch.of("cloud_audit", cols, source=source, artefact=artefact,
                         locator=pa.array(locators, pa.string()))
