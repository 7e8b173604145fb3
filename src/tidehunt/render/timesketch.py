"""Timesketch CSV: one row per finding with the columns Timesketch requires (message,
datetime, timestamp_desc) plus timestamp (microseconds) and the finding's fields, so the
analysis lands in a sketch next to the raw timelines. Cells that a spreadsheet would run
as a formula are defused as in the CSV timeline."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import IO

import pyarrow as pa

from tidehunt.model.report import RunReport
from tidehunt.render._polars import slices
from tidehunt.render.csv_timeline import safe_cell

NAME = "timesketch"
COLUMNS = ("message", "datetime", "timestamp_desc", "timestamp", "rule_id", "rule_title",
           "level", "engine", "host", "user", "src", "dst", "techniques", "tactics",
           "source_file", "record_id", "finding_id", "tag")


def render(report: RunReport, findings: pa.Table, out: IO[bytes]) -> None:
    """Write the CSV (UTF-8, a header row, CRLF)."""
    del report
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    w = csv.writer(text)
    w.writerow(COLUMNS)
    cols = ["finding_id", "ts", "rule_id", "rule_title", "level", "engine", "host", "user",
            "src", "dst", "techniques", "tactics", "summary", "evidence"]
    for part in slices(findings):
        for r in part.select(cols).to_pylist():
            ts = r["ts"]
            ev = (r["evidence"] or [{}])[0]
            w.writerow([safe_cell(x) for x in (
                f"[{r['level']}] {r['rule_title']}: {r['summary'] or ''}",
                ts.isoformat() if isinstance(ts, datetime) else "",
                "tidehunt finding",
                int(ts.timestamp() * 1_000_000) if isinstance(ts, datetime) else "",
                r["rule_id"], r["rule_title"], r["level"], r["engine"], r["host"], r["user"],
                r["src"], r["dst"], ",".join(r["techniques"] or []),
                ",".join(r["tactics"] or []), ev.get("source_file"), ev.get("record_id"),
                r["finding_id"], f"tidehunt,{r['level']}")])
    text.detach()
