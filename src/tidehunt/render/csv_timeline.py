"""Hayabusa-style CSV timeline, sorted by time.

Columns: Timestamp, RuleTitle, Level, Computer, Channel, EventID, RecordID, Details,
RuleID, MitreTactics, MitreTags, SourceFile. Cells that a spreadsheet would run as a
formula (starting with = + - @ tab or CR) are prefixed with a quote. Written in bulk by
Polars' CSV writer (quoting as needed, CRLF line ends, as Python's csv module does).
"""

from __future__ import annotations

from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from tidehunt.model.report import RunReport
from tidehunt.render._polars import frame, slices

NAME = "csv_timeline"
#: Renders in bulk (Polars), from the findings alone: started as soon as they are sorted,
#: beside correlation and the other bulk renderers, and given no report (``engine.Outputs``).
BULK = True
COLUMNS = ("Timestamp", "RuleTitle", "Level", "Computer", "Channel", "EventID", "RecordID",
           "Details", "RuleID", "MitreTactics", "MitreTags", "SourceFile")
_LEVEL = {"informational": "info", "low": "low", "medium": "med", "high": "high",
          "critical": "crit"}
_FORMULA = r"^[=+\-@\t\r]"
#: Rows per slice (the text of each is built by Polars, then written).
SLICE_ROWS = 4096


def safe_cell(v: object) -> str:
    """Text for a CSV cell, defused against spreadsheet formula injection."""
    s = "" if v is None else str(v)
    if s and s[0] in "=+-@\t\r":
        return "'" + s
    return s


def _safe(col: Any) -> Any:
    """``safe_cell`` for a whole Polars text column (nulls stay empty cells)."""
    import polars as pl

    text = col.cast(pl.String)
    return (pl.when(text == "").then(None)  # an empty cell, not a quoted empty string
            .when(text.str.contains(_FORMULA)).then("'" + text).otherwise(text))


def render(report: RunReport, findings: pa.Table, out: IO[bytes]) -> None:
    """Write the timeline CSV (UTF-8)."""
    import polars as pl

    del report
    order = pc.sort_indices(findings, [("ts", "ascending"), ("rule_title", "ascending")])
    ev = pl.col("evidence").list.first().struct
    cells = [
        pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S%.3fZ").alias("Timestamp"),
        pl.col("rule_title").alias("RuleTitle"),
        pl.col("level").replace_strict(_LEVEL, default=pl.col("level")).alias("Level"),
        pl.col("host").alias("Computer"),
        pl.col("channel").alias("Channel"),
        pl.col("event_id").alias("EventID"),
        ev.field("record_id").alias("RecordID"),
        pl.when(pl.col("details").fill_null("") != "").then(pl.col("details"))
        .otherwise(pl.col("summary")).alias("Details"),
        pl.col("rule_id").alias("RuleID"),
        pl.col("tactics").list.join(" ¦ ").alias("MitreTactics"),
        pl.col("techniques").list.join(" ¦ ").alias("MitreTags"),
        ev.field("source_file").alias("SourceFile"),
    ]
    out.write((",".join(COLUMNS) + "\r\n").encode())
    # only the columns the cells read are taken in order (not the events' fields)
    used = [c for c in ("ts", "rule_title", "level", "host", "channel", "event_id", "evidence",
                        "details", "summary", "rule_id", "tactics", "techniques")
            if c in findings.column_names]
    for part in slices(findings.select(used), order, rows=SLICE_ROWS):
        df = frame(part).select(cells)
        df = df.select([_safe(pl.col(c)).alias(c) for c in COLUMNS])
        out.write(df.write_csv(include_header=False, line_terminator="\r\n").encode("utf-8"))
