"""JSON Lines: one finding per line, in the findings contract.

Fields: finding_id, ts, ts_last (ISO-8601 UTC), rule_id, rule_title, engine, level,
techniques, tactics, host, user, src, dst, channel, event_id, summary, evidence
[{table, source_file, artefact, record_id, locator}], fields (the matched event).
"""

from __future__ import annotations

from typing import IO

import orjson
import pyarrow as pa

from tidehunt.model.report import RunReport

NAME = "jsonl"


def _iso(v: object) -> object:
    if v is None:
        return None
    return v.isoformat().replace("+00:00", "Z")  # type: ignore[attr-defined]


def render(report: RunReport, findings: pa.Table, out: IO[bytes]) -> None:
    """Write one JSON object per finding."""
    del report
    for batch in findings.to_batches(max_chunksize=8192):
        for row in batch.to_pylist():
            row["ts"] = _iso(row["ts"])
            row["ts_last"] = _iso(row["ts_last"])
            row.pop("severity", None)
            # fields is stored as JSON already: spliced in, not parsed and re-serialised
            row["fields"] = orjson.Fragment(row["fields"] or "{}")
            out.write(orjson.dumps(row, default=str))
            out.write(b"\n")
