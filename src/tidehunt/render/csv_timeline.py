"""Hayabusa-style CSV timeline, sorted by time.

Columns: Timestamp, RuleTitle, Level, Computer, Channel, EventID, RecordID, Details,
RuleID, MitreTactics, MitreTags, SourceFile. Cells that a spreadsheet would run as a
formula (starting with = + - @ tab or CR) are prefixed with a quote.
"""

from __future__ import annotations

import csv
import io
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc

from tidehunt.model.report import RunReport

NAME = "csv_timeline"
COLUMNS = ("Timestamp", "RuleTitle", "Level", "Computer", "Channel", "EventID", "RecordID",
           "Details", "RuleID", "MitreTactics", "MitreTags", "SourceFile")
_LEVEL = {"informational": "info", "low": "low", "medium": "med", "high": "high",
          "critical": "crit"}


def safe_cell(v: object) -> str:
    """Text for a CSV cell, defused against spreadsheet formula injection."""
    s = "" if v is None else str(v)
    if s and s[0] in "=+-@\t\r":
        return "'" + s
    return s


def render(report: RunReport, findings: pa.Table, out: IO[bytes]) -> None:
    """Write the timeline CSV (UTF-8)."""
    del report
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    w = csv.writer(text)
    w.writerow(COLUMNS)
    if findings.num_rows:
        findings = findings.take(pc.sort_indices(findings, [("ts", "ascending"),
                                                            ("rule_title", "ascending")]))
    for batch in findings.to_batches(max_chunksize=8192):
        for r in batch.to_pylist():
            ev = r["evidence"][0] if r["evidence"] else {}
            det = r["details"] or r["summary"]
            ts = r["ts"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z" if r["ts"] else ""
            w.writerow([safe_cell(x) for x in (
                ts, r["rule_title"], _LEVEL.get(r["level"], r["level"]), r["host"],
                r["channel"], r["event_id"], ev.get("record_id"), det, r["rule_id"],
                " ¦ ".join(r["tactics"] or []), " ¦ ".join(r["techniques"] or []),
                ev.get("source_file"))])
    text.detach()
