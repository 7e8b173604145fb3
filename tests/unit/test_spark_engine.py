"""--engine spark: the compiled Sigma plan on Spark (local mode, mapInArrow over the
case's Parquet) gives exactly the DuckDB engine's findings, on the demo case and on a case
built from ../shared/corpus/evtx."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.engine import HuntOptions, detect, run_ingest

pytest.importorskip("pyspark", reason="pyspark is a test dependency (pip install .[test])")
if shutil.which("java") is None:  # pragma: no cover - Java 17 is on every CI machine here
    pytest.skip("Spark needs Java (17 or newer) on PATH", allow_module_level=True)


def _findings(store: CaseStore, engine: str, rules: list[str] | None = None,
              intel: bool = False, **extra: Any) -> list[tuple]:
    opts = HuntOptions(engine=engine, spark_master="local[2]", bundled_intel=intel,
                       feeds=False, outputs=("jsonl",), rules=rules or [],
                       spark_conf={"spark.sql.shuffle.partitions": "4"}, **extra)
    report = detect(store, RunContext(), opts)
    assert report.stats["analytics"]["failed"] == []
    if engine == "spark" and store.rows("indicator"):  # the IOC join ran on Spark
        assert "intel_match" in report.stats["analytics"]["spark"]
    if engine == "spark":  # every analytic ran on Spark (none on the driver's DuckDB)
        assert report.stats["analytics"]["driver"] == []
        assert len(report.stats["analytics"]["spark"]) == report.stats["analytics"]["ran"]
    rows = [json.loads(x) for x in (store.root / "findings.jsonl").read_text().splitlines()]
    return sorted((r["finding_id"], r["rule_id"], r["ts"], json.dumps(r["evidence"]),
                   json.dumps(r["fields"], sort_keys=True)) for r in rows)


def _compare(store: CaseStore, rules: list[str] | None = None, intel: bool = False) -> int:
    local = _findings(store, "duckdb", rules, intel)
    spark = _findings(store, "spark", rules, intel)
    assert local, "the case should give findings"
    assert spark == local
    return len(local)


def test_demo_case_same_findings(tmp_path: Path) -> None:
    """The whole demo case (Windows, web, mail, network, intel): every finding the same."""
    from tidehunt.cli.main import main

    assert main(["-q", "--no-color", "demo", "-o", str(tmp_path / "demo")]) == 0
    store = CaseStore(tmp_path / "demo" / "case")
    n = _compare(store)
    assert n >= 60  # every stage of the demo, correlations and analytics included
    rows = [json.loads(x) for x in (store.root / "findings.jsonl").read_text().splitlines()]
    intel = [r for r in rows if r["rule_id"] == "th-analytic-0034"]
    assert len(intel) >= 3  # the IOC join on Spark: addresses, domains, hashes of the demo
    assert {r["fields"]["type"] for r in intel} >= {"ip", "domain"}
    assert any(r["rule_id"].startswith("th-analytic") and r["rule_id"] != "th-analytic-0034"
               for r in rows)


def test_corpus_evtx_case_same_findings(tmp_path: Path) -> None:
    from tests.conftest import corpus_path

    evtx = corpus_path("evtx")
    rules = corpus_path("sigma/rules/windows/process_creation")
    store, res = run_ingest([str(evtx)], tmp_path / "case", RunContext(), workers=2)
    assert res.records > 10_000
    n = _compare(store, [str(rules), str(corpus_path("sigma/rules/windows/builtin"))],
                 intel=True)  # the bundled APT40 pack: the IOC join scans every table
    assert store.rows("indicator") > 0
    assert n > 100


#: More correlations than the engine tests': an unordered temporal one without group-by
#: (ordered by time, not by rule), a "fewer than" count, and hits that share a timestamp.
MORE_CORR = """
title: staging and upload anywhere
id: 2a1b3c4d-0000-4000-8000-0000000000b1
status: test
level: high
correlation:
  type: temporal
  rules: [upload, archive]
  timespan: 2h
---
title: few failures
id: 2a1b3c4d-0000-4000-8000-0000000000b2
status: test
level: low
correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [IpAddress]
  timespan: 10m
  condition: {lt: 5}
"""


def test_correlations_same_findings(tmp_path: Path) -> None:
    """Every kind of correlation rule gives the same findings as a Spark job as locally."""
    from tests.unit.test_sigma_engine import BASE, CORR, _logons, write_events

    ev = tmp_path / "ev"
    ev.mkdir()
    _logons(ev, "203.0.113.5", 5, 3, "a.json")
    _logons(ev, "203.0.113.6", 4, 4, "b.json")
    _logons(ev, "203.0.113.7", 6, 1, "c.json", 120)
    same = ["2026-10-06T02:00:00Z"] * 3  # ties: the order comes from the finding IDs
    write_events(ev / "t.json", [{"IpAddress": "198.51.100.9", "TargetUserName": f"x{i}"}
                                 for i in range(3)], channel="Security", event_id=4625,
                 times=same, start=900)
    write_events(ev / "d.json", [{"Image": "c:\\rar.exe"}, {"Image": "c:\\rclone.exe"}],
                 host="ws9", times=["2026-10-06T03:00:00Z", "2026-10-06T03:30:00Z"])
    write_events(ev / "e.json", [{"Image": "c:\\rclone.exe"}, {"Image": "c:\\rar.exe"}],
                 host="ws8", times=["2026-10-06T04:00:00Z", "2026-10-06T04:30:00Z"],
                 start=50)
    rdir = tmp_path / "rules"
    rdir.mkdir()
    for i, text in enumerate((BASE, CORR, MORE_CORR)):
        (rdir / f"r{i}.yml").write_text(text)
    store, _ = run_ingest([str(ev)], tmp_path / "case", RunContext(), workers=1)
    local = _findings(store, "duckdb", [str(rdir)])
    corr = {r[1][-2:] for r in local}
    assert {"a1", "a2", "a3", "b1", "b2"} <= corr, corr  # each kind fired
    assert _findings(store, "spark", [str(rdir)]) == local


def _partitioned(case: Path, expect: set[str], **extra: Any) -> None:
    """The analytics partitioned by key (``Analytic.PARTITION``) give the same findings
    on Spark's executors, bucket by bucket, as over the whole case; ``expect``: rule IDs
    that must be among them."""
    store = CaseStore(case)
    local = _findings(store, "duckdb", **extra)
    got = {r[1] for r in local}
    assert expect <= got, expect - got
    opts = HuntOptions(engine="spark", spark_master="local[2]", bundled_intel=False,
                       feeds=False, outputs=("jsonl",),
                       spark_conf={"spark.sql.shuffle.partitions": "3"}, **extra)
    report = detect(store, RunContext(), opts)
    assert report.stats["analytics"]["failed"] == []
    ran = report.stats["analytics"]["spark"]
    from tidehunt.detect.analytics.detector import analytics

    part = {n for n, c in analytics().items() if c.PARTITION and c.META.id in expect}
    assert part and part <= set(ran), part - set(ran)
    rows = [json.loads(x) for x in (store.root / "findings.jsonl").read_text().splitlines()]
    assert sorted((r["finding_id"], r["rule_id"], r["ts"], json.dumps(r["evidence"]),
                   json.dumps(r["fields"], sort_keys=True)) for r in rows) == local


def _ingested(build: Any, root: Path) -> tuple[Path, dict]:
    case, extra = build(root)
    run_ingest([str(case.parent / "ev")], case, RunContext(), workers=1)
    return case, extra


def test_identity_analytics_partitioned_by_user(tmp_path: Path) -> None:
    from tests.unit.test_identity import build_identity_case

    case, extra = _ingested(build_identity_case, tmp_path)
    _partitioned(case, {f"th-analytic-00{n}" for n in range(36, 42)}, **extra)


def test_cloud_analytics_partitioned_by_user(tmp_path: Path) -> None:
    from tests.unit.test_cloud_audit import build_cloud_case

    case, extra = _ingested(build_cloud_case, tmp_path)
    _partitioned(case, {f"th-analytic-00{n}" for n in range(42, 46)}, **extra)


def test_network_analytics_partitioned_by_client(tmp_path: Path) -> None:
    """The network analytics that are each of one client build their flows (connection,
    TLS, HTTP and DNS of the client) and find the same on Spark, bucket by bucket."""
    from tests.fixtures.nettraffic import build

    p = build(tmp_path)
    case = tmp_path / "case"
    run_ingest([str(p["evidence"])], case, RunContext(), workers=1)
    _partitioned(case, {f"th-analytic-00{n}" for n in (50, 51, 52, 53, 54, 56, 58, 59, 60)}
                 | {"th-analytic-0046", "th-analytic-0047", "th-analytic-0048", "th-analytic-0055"},
                 org=str(p["org"]), risky_networks=str(p["risky"]))


def test_mail_analytics_partitioned_by_message(tmp_path: Path) -> None:
    """Message-at-a-time mail analytics (with their attachments) and the sender one give
    the same findings on Spark as over the whole case."""
    from tests.unit.test_phishing import ORG, _mails

    (tmp_path / "ev" / "mail").mkdir(parents=True)
    for name, data in _mails().items():
        (tmp_path / "ev" / "mail" / name).write_bytes(data)
    (tmp_path / "org.yaml").write_text(ORG, encoding="utf-8")
    case = tmp_path / "case"
    run_ingest([str(tmp_path / "ev")], case, RunContext(), workers=1)
    _partitioned(case, {f"th-analytic-00{n}" for n in (23, 24, 26, 27, 28, 29)},
                 org=str(tmp_path / "org.yaml"))


def test_windows_logon_analytics_partitioned_by_host(tmp_path: Path) -> None:
    """Service-account logons: Windows events shuffled by host (4624 and 4648 only)."""
    from tests.unit.test_identity import _win_hunt

    assert len(_win_hunt(tmp_path)) == 4
    _partitioned(tmp_path / "case", {"th-analytic-0061"})


def test_parts_named_like_hidden_files_are_read(tmp_path: Path) -> None:
    """Spark skips files named _x or .x; a case whose parts are named so (as older cases
    could be) still gives every finding, from every part."""
    from tests.unit.test_sigma_engine import _logons

    ev = tmp_path / "ev"
    ev.mkdir()
    for i in range(3):
        _logons(ev, f"203.0.113.{i}", 6, 2, f"f{i}.json")
    store, _ = run_ingest([str(ev)], tmp_path / "case", RunContext(), workers=1)
    parts = store.manifest["parts"]
    renamed = 0
    for rel in sorted(parts):
        if parts[rel]["table"] == "windows":
            new = rel.rsplit("/", 1)[0] + "/_" + rel.rsplit("/", 1)[1]
            (store.root / rel).rename(store.root / new)
            parts[new] = parts.pop(rel)
            renamed += 1
    assert renamed >= 1
    store.save()
    store = CaseStore(store.root)
    rdir = tmp_path / "rules"
    rdir.mkdir()
    from tests.unit.test_sigma_engine import BASE, CORR

    (rdir / "r.yml").write_text(BASE + "---\n" + CORR.strip() + "\n")
    local = _findings(store, "duckdb", [str(rdir)])
    assert len({r[0] for r in local}) >= 3
    assert _findings(store, "spark", [str(rdir)]) == local


def test_every_analytic_says_how_it_runs_on_spark() -> None:
    """Every analytic runs on Spark: partitioned by a key of a table it reads, as a Spark
    job of its own, or reducing on the driver what the executors prepared for it."""
    from tidehunt.detect.analytics.detector import analytics

    for name, cls in analytics().items():
        assert not cls.DRIVER, name
        assert bool(cls.PARTITION) + cls.SPARK + cls.REDUCE == 1, name
        if cls.PARTITION:
            assert set(cls.PARTITION) & set(cls.READS | cls.READS_ANY), name


def test_spark_that_cannot_start_is_a_clear_usage_error(tmp_path: Path) -> None:
    """No Java for Spark: exit 2 and a message that says what Spark needs."""
    import os
    import subprocess
    import sys

    from tests.unit.test_sigma_engine import _logons

    ev = tmp_path / "ev"
    ev.mkdir()
    _logons(ev, "203.0.113.1", 2, 1, "a.json")
    run_ingest([str(ev)], tmp_path / "case", RunContext(), workers=1)
    env = dict(os.environ, JAVA_HOME=str(tmp_path / "no-java"))
    env.pop("SPARK_HOME", None)
    got = subprocess.run([sys.executable, "-m", "tidehunt.cli.main", "-q", "--no-color",
                          "detect", str(tmp_path / "case"), "--engine", "spark"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert got.returncode == 2, got.stderr[-2000:]
    assert "Spark did not start" in got.stderr and "Java 17" in got.stderr


def test_network_indicators_on_spark(tmp_path: Path) -> None:
    """Addresses inside IPv4 and IPv6 network indicators: the IOC join's Spark path
    (distinct addresses numbered on the driver) finds the same as the local one."""
    import json as _json

    from tests.unit.test_intel import NOW, _net_hunt

    misp = _json.dumps({"Event": {"info": "ranges", "date": NOW.date().isoformat(),
                                  "Attribute": [
        {"type": "ip-dst", "value": "198.51.100.0/24", "to_ids": True},
        {"type": "ip-src", "value": "2001:db8:abcd::/48", "to_ids": True}]}})
    _, hits = _net_hunt(tmp_path, ["198.51.100.200", "198.51.101.1",
                                   "2001:DB8:ABCD:0:0:0:0:10", "2001:db8:abce::1",
                                   "192.0.2.5", "192.0.2.17"], {
        "event.json": misp, "rows.csv": "type,value,source\ncidr,192.0.2.0/28,csvfeed\n"})
    assert len(hits) == 3
    store = CaseStore(tmp_path / "case")
    local = _findings(store, "duckdb")
    assert sum(r[1] == "th-analytic-0034" for r in local) == 3
    assert _findings(store, "spark") == local
