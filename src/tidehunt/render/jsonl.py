"""JSON Lines: one finding per line, in the findings contract.

Fields: finding_id, ts, ts_last (ISO-8601 UTC), rule_id, rule_title, engine, level,
techniques, tactics, host, user, src, dst, channel, event_id, summary, details, evidence
[{table, source_file, artefact, record_id, locator}], fields (the matched event).

Lines are built in bulk with Polars' JSON encoder; ``fields`` is stored as JSON already
and is spliced in, not parsed and re-serialised.
"""

from __future__ import annotations

from typing import IO

import pyarrow as pa

from tidehunt.model.report import RunReport
from tidehunt.render._polars import frame, iso_utc, slices, write_lines

NAME = "jsonl"
#: Renders in bulk (Polars), from the findings alone: started as soon as they are sorted,
#: beside correlation and the other bulk renderers, and given no report (``engine.Outputs``).
BULK = True
#: Rows per slice: each line holds its event's fields, and Polars' encoder and the joined
#: lines take several copies of a slice's text (16,384 rows: ~280 MiB at its peak).
SLICE_ROWS = 4096


def render(report: RunReport, findings: pa.Table, out: IO[bytes]) -> None:
    """Write one JSON object per finding."""
    import polars as pl

    del report
    cols = [c for c in findings.column_names if c not in ("severity", "fields")]
    for part in slices(findings, rows=SLICE_ROWS):
        df = frame(part)
        df = df.with_columns(iso_utc(pl.col("ts")).alias("ts"),
                             iso_utc(pl.col("ts_last")).alias("ts_last"))
        body = pl.struct([pl.col(c) for c in cols]).struct.json_encode().str.head(-1)
        fields = pl.col("fields").fill_null("")
        fields = pl.when(fields == "").then(pl.lit("{}")).otherwise(fields)
        # each line ends with its newline here: one copy of the slice's text fewer
        lines = df.select(pl.concat_str([body, pl.lit(',"fields":'), fields, pl.lit("}\n")]))
        write_lines(lines.to_series(), out, terminator="")
