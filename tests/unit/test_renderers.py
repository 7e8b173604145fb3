"""Bulk renderers against a per-row Python oracle, on hostile cell values."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import orjson
import pyarrow as pa

from tidehunt.model.finding import FINDINGS_SCHEMA
from tidehunt.model.report import Meta, RunReport
from tidehunt.render import csv_timeline, jsonl

HOSTILE = [
    '=cmd|"/c calc"!A1',
    "line one\nline two\r\nthree",
    'quote " and, comma',
    "<script>alert(1)</script>",
    "non-ASCII: Ünïcödé 漢字 \u202e",
    "-2+3",
    "@SUM(1)",
    "\ttab first",
    "",
    None,
]


def _findings() -> pa.Table:
    rows = []
    for i, v in enumerate(HOSTILE):
        ts = None if i == 3 else datetime(2026, 10, 6, 1, 2, 3, (i * 123457) % 1_000_000
                                          if i % 2 else 0, tzinfo=UTC)
        rows.append({
            "finding_id": f"f{i:02d}", "ts": ts, "ts_last": ts, "rule_id": f"r{i}",
            "rule_title": v or "title", "engine": "sigma",
            "level": ["low", "medium", "high", "critical", "informational"][i % 5],
            "severity": i % 5, "techniques": ["T1059.001"] if i % 2 else [],
            "tactics": ["execution", "persistence"] if i % 3 else None,
            "host": v, "user": v, "src": None, "dst": v, "channel": "Security",
            "event_id": 4688 if i % 2 else None, "summary": f"summary {v}",
            "details": v if i % 4 else None,
            "evidence": [{"table": "windows", "source_file": v, "artefact": "a",
                          "record_id": i, "locator": str(i)}],
            "fields": None if i == 5 else orjson.dumps({"CommandLine": v, "n": i}).decode(),
        })
    return pa.Table.from_pylist(rows, schema=FINDINGS_SCHEMA)


def _report() -> RunReport:
    return RunReport(meta=Meta(tool_version="t", command="hunt", case="c", started="s",
                               finished="f"))


def _oracle_jsonl(t: pa.Table) -> list[dict]:
    out = []
    for row in t.to_pylist():
        for k in ("ts", "ts_last"):
            row[k] = row[k].isoformat().replace("+00:00", "Z") if row[k] else None
        row.pop("severity")
        row["fields"] = orjson.loads(row["fields"] or "{}")
        out.append(row)
    return out


def test_jsonl_matches_per_row_oracle():
    t = _findings()
    buf = io.BytesIO()
    jsonl.render(_report(), t, buf)
    lines = buf.getvalue().splitlines()
    assert len(lines) == t.num_rows
    got = [orjson.loads(x) for x in lines]
    assert got == _oracle_jsonl(t)
    assert list(got[0]) == [c for c in FINDINGS_SCHEMA.names if c != "severity"]


def test_csv_matches_per_row_oracle():
    t = _findings()
    buf = io.BytesIO()
    csv_timeline.render(_report(), t, buf)
    oracle = io.StringIO(newline="")
    w = csv.writer(oracle)
    w.writerow(csv_timeline.COLUMNS)
    import pyarrow.compute as pc

    s = t.take(pc.sort_indices(t, [("ts", "ascending"), ("rule_title", "ascending")]))
    for r in s.to_pylist():
        ev = r["evidence"][0]
        ts = r["ts"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z" if r["ts"] else ""
        w.writerow([csv_timeline.safe_cell(x) for x in (
            ts, r["rule_title"], csv_timeline._LEVEL[r["level"]], r["host"], r["channel"],
            r["event_id"], ev["record_id"], r["details"] or r["summary"], r["rule_id"],
            " ¦ ".join(r["tactics"] or []), " ¦ ".join(r["techniques"] or []),
            ev["source_file"])])
    assert buf.getvalue().decode("utf-8") == oracle.getvalue()
    rows = list(csv.reader(io.StringIO(buf.getvalue().decode("utf-8"), newline="")))
    assert all(not c or c[0] not in "=+-@\t\r" for row in rows[1:] for c in row)


def test_write_lines_is_the_joined_text():
    import polars as pl

    from tidehunt.render._polars import write_lines

    values = [v for v in HOSTILE if v is not None]
    for series in (pl.Series(values), pl.Series(values).slice(2),
                   pl.concat([pl.Series(values), pl.Series(values)], rechunk=False)):
        buf = io.BytesIO()
        write_lines(series, buf)
        assert buf.getvalue() == ("\n".join(series.to_list()) + "\n").encode("utf-8")
        buf = io.BytesIO()
        write_lines(series, buf, terminator="")  # lines that end with their terminator
        assert buf.getvalue() == "".join(series.to_list()).encode("utf-8")
    buf = io.BytesIO()
    write_lines(pl.Series([], dtype=pl.String), buf)
    assert buf.getvalue() == b""


def test_table_rows_is_to_pylist():
    from tidehunt.model.finding import table_rows

    t = _findings()
    chunked = pa.concat_tables([t.slice(0, 4), t.slice(4)])
    for table in (t, chunked, t.slice(0, 0)):
        assert table_rows(table) == table.to_pylist()


def test_slices_in_order_from_many_chunks_are_the_take():
    """Slices taken in order from a table of many chunks: the rows of ``Table.take``."""
    import random

    from tidehunt.render._polars import slices

    t = pa.concat_tables([_findings()] * 7)
    chunked = pa.concat_tables([t.slice(0, 3), t.slice(3, 0), t.slice(3, 1), t.slice(4, 40),
                                t.slice(44)])
    order = list(range(t.num_rows))
    random.Random(7).shuffle(order)
    idx = pa.array(order, pa.uint64())
    for table in (t, chunked):
        for rows in (1, 5, 64):
            assert pa.concat_tables(list(slices(table, idx, rows=rows))).equals(t.take(idx))
            assert pa.concat_tables(list(slices(table, rows=rows))).equals(t)
    assert list(slices(t.slice(0, 0), pa.array([], pa.uint64()))) == []


def test_renderers_give_the_same_bytes_for_any_chunking():
    from tidehunt.render import html

    t = pa.concat_tables([_findings()] * 3)
    chunked = pa.concat_tables([t.slice(0, 7), t.slice(7, 1), t.slice(8)])
    for mod in (jsonl, csv_timeline, html):
        a, b = io.BytesIO(), io.BytesIO()
        mod.render(_report(), t, a)
        mod.render(_report(), chunked, b)
        assert a.getvalue() == b.getvalue()


def test_html_table_rows_by_level_then_time_as_a_stable_sort():
    from tidehunt.correlate import LEVEL_WEIGHT
    from tidehunt.render import html

    t = pa.concat_tables([_findings().slice(0, 6), _findings()])  # ties, and a null time
    rows = t.to_pylist()
    want = sorted(rows, key=lambda r: (-LEVEL_WEIGHT.get(r["level"], 0), r["ts"] is None,
                                       r["ts"].timestamp() if r["ts"] else 0.0))
    got = html._table_rows(t)
    assert [g[2] for g in got] == [r["rule_title"] for r in want]
    assert [g[6] for g in got] == [r["summary"] for r in want]
    assert html._table_rows(t.slice(0, 0)) == []
