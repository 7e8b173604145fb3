"""Sigma semantics of the compiled engine, driven by tests/cases/*.yml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.detect.sigma.detector import SigmaDetector
from tidehunt.detect.sigma.findings import concat
from tidehunt.detect.sigma.loader import load_plan
from tidehunt.ingest import ingest

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "sigma_semantics.yml")
                       .read_text())
SYSMON = "Microsoft-Windows-Sysmon/Operational"


def write_events(path: Path, events: list[dict], *, channel: str = SYSMON, event_id: int = 1,
                 host: str = "ws1", start: int = 0, times: list[str] | None = None) -> Path:
    lines = []
    for i, data in enumerate(events):
        ts = times[i] if times else f"2026-10-06T01:{i // 60:02d}:{i % 60:02d}Z"
        lines.append(json.dumps({"Event": {"System": {
            "Provider": {"#attributes": {"Name": "x"}}, "EventID": event_id,
            "EventRecordID": start + i, "Channel": channel, "Computer": host,
            "TimeCreated": {"#attributes": {"SystemTime": ts}}}, "EventData": data}}))
    path.write_text("\n".join(lines) + "\n")
    return path


def hunt(tmp_path: Path, rules: list[str], evidence: list[Path]):
    rdir = tmp_path / "rules"
    rdir.mkdir(exist_ok=True)
    for i, r in enumerate(rules):
        (rdir / f"r{i}.yml").write_text(r)
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(p) for p in evidence], store, RunContext(), workers=1)
    plan = load_plan([rdir], use_cache=False)
    assert plan.errors == [], plan.errors
    det = SigmaDetector(plan)
    return concat(__import__("pyarrow").Table.from_batches([b]) for b in
                  det.run(store, RunContext())), plan


def rule_text(detection: dict, logsource: dict | None = None, title: str = "t",
              rid: str = "5f0e9d1c-1111-4222-8333-944455566677", level: str = "high",
              extra: str = "") -> str:
    return yaml.safe_dump({
        "title": title, "id": rid, "status": "test", "level": level,
        "logsource": logsource or {"category": "process_creation", "product": "windows"},
        "detection": detection}) + extra


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_semantics(tmp_path, case):
    ev = write_events(tmp_path / "ev.json", case["events"],
                      channel=case.get("channel", SYSMON), event_id=case.get("event_id", 1))
    findings, _ = hunt(tmp_path, [rule_text(case["detection"], case.get("logsource"))], [ev])
    got = sorted(e[0]["record_id"] for e in findings.column("evidence").to_pylist())
    assert got == case["expect"]


BASE = """
title: failed logon
id: 2a1b3c4d-0000-4000-8000-000000000001
name: failed_logon
status: test
level: low
logsource: {product: windows, service: security}
detection: {sel: {EventID: 4625}, condition: sel}
---
title: archive
id: 2a1b3c4d-0000-4000-8000-000000000002
name: archive
status: test
level: low
logsource: {category: process_creation, product: windows}
detection: {sel: {Image|endswith: '\\\\rar.exe'}, condition: sel}
---
title: upload
id: 2a1b3c4d-0000-4000-8000-000000000003
name: upload
status: test
level: low
logsource: {category: process_creation, product: windows}
detection: {sel: {Image|endswith: '\\\\rclone.exe'}, condition: sel}
"""
CORR = """
title: burst of failed logons
id: 2a1b3c4d-0000-4000-8000-0000000000a1
status: test
level: high
correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [IpAddress]
  timespan: 5m
  condition: {gte: 5}
---
title: many users from one address
id: 2a1b3c4d-0000-4000-8000-0000000000a2
status: test
level: high
correlation:
  type: value_count
  rules: [failed_logon]
  group-by: [IpAddress]
  timespan: 5m
  condition: {gte: 3, field: TargetUserName}
---
title: staging then upload
id: 2a1b3c4d-0000-4000-8000-0000000000a3
status: test
level: critical
correlation:
  type: temporal_ordered
  rules: [archive, upload]
  group-by: [Computer]
  timespan: 1h
"""


def _logons(tmp_path: Path, ip: str, n: int, users: int, name: str, spread_s: int = 10):
    evs = [{"IpAddress": ip, "TargetUserName": f"u{i % users}", "LogonType": "3"}
           for i in range(n)]
    times = [f"2026-10-06T02:{(i * spread_s) // 60:02d}:{(i * spread_s) % 60:02d}Z"
             for i in range(n)]
    return write_events(tmp_path / name, evs, channel="Security", event_id=4625, times=times,
                        start=hash(name) % 1000 * 100)


def test_correlations(tmp_path):
    evidence = [
        _logons(tmp_path, "203.0.113.5", 5, 3, "a.json"),          # 5 in 50 s: fires both
        _logons(tmp_path, "203.0.113.6", 4, 4, "b.json"),          # just below event_count
        _logons(tmp_path, "203.0.113.7", 6, 1, "c.json", 120),     # spread out: no burst
        write_events(tmp_path / "d.json", [{"Image": "c:\\rar.exe"}, {"Image": "c:\\rclone.exe"}],
                     host="ws9", times=["2026-10-06T03:00:00Z", "2026-10-06T03:30:00Z"]),
        write_events(tmp_path / "e.json", [{"Image": "c:\\rclone.exe"}, {"Image": "c:\\rar.exe"}],
                     host="ws8", times=["2026-10-06T03:00:00Z", "2026-10-06T03:30:00Z"],
                     start=50),                                       # wrong order
    ]
    findings, _ = hunt(tmp_path, [BASE, CORR], evidence)
    rows = findings.to_pylist()
    corr = [r for r in rows if r["rule_id"].endswith("a1")]
    assert len(corr) == 1 and json.loads(corr[0]["fields"])["IpAddress"] == "203.0.113.5"
    assert len(corr[0]["evidence"]) == 5 and corr[0]["ts_last"] > corr[0]["ts"]
    vc = [r for r in rows if r["rule_id"].endswith("a2")]
    assert sorted(json.loads(r["fields"])["IpAddress"] for r in vc) == ["203.0.113.5",
                                                                   "203.0.113.6"]
    tmp = [r for r in rows if r["rule_id"].endswith("a3")]
    assert len(tmp) == 1 and tmp[0]["host"] == "ws9" and tmp[0]["level"] == "critical"
    # referenced rules do not report on their own (Sigma correlation default generate: false)
    assert not [r for r in rows if r["rule_title"] in ("failed logon", "archive", "upload")]
