"""Every bundled tidehunt rule against its own positive and negative events.

Cases live in ``tests/cases/tidehunt_pack/<rule file stem>.yml``:

    rule: proc_at_job_scheduled.yml
    cases:
      - name: remote AT job
        match: true
        events:                      # one or more events (several for correlations)
          - fields: {Image: 'C:\\Windows\\System32\\at.exe', CommandLine: 'at \\\\dc01 ...'}
            channel: ...             # optional: default from the rule's logsource
            event_id: 1              # optional: default from the rule's logsource
            provider: ...            # optional: System/Provider Name (default 'case')
            time: '2026-10-06T01:00:00Z'   # optional

All cases of all rules go into one case directory and one hunt with the bundled pack. Each
case's events sit on a host of their own, so one case cannot complete another's
correlation. Events of a correlation's case default to the channel of the first rule it
names. A base rule that reports only through a correlation (``generate: false``) names it
with ``via: <correlation rule file>``, and its cases are judged by that correlation. A
``match: true`` case passes when a finding of its rule points only at its own events; a
``match: false`` case when no finding of its rule points at any of them. (Correlations
grouped by fields other than the host need values no other case uses.)
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tidehunt.rulepacks import bundled_pack

CASES_DIR = Path(__file__).parents[1] / "cases" / "tidehunt_pack"
SYSMON = "Microsoft-Windows-Sysmon/Operational"
#: logsource category/service -> (channel, event ID) the pack's rules read by default
DEFAULTS: dict[str, tuple[str, int | None]] = {
    "process_creation": (SYSMON, 1),
    "file_event": (SYSMON, 11),
    "network_connection": (SYSMON, 3),
    "registry_set": (SYSMON, 13),
    "registry_event": (SYSMON, 13),
    "image_load": (SYSMON, 7),
    "dns_query": (SYSMON, 22),
    "process_access": (SYSMON, 10),
    "ps_script": ("Microsoft-Windows-PowerShell/Operational", 4104),
    "security": ("Security", None),
    "system": ("System", None),
}


@lru_cache(maxsize=1)
def _rule_docs() -> dict[str, list[dict[str, Any]]]:
    return {p.name: [d for d in yaml.safe_load_all(p.read_text(encoding="utf-8"))
                     if isinstance(d, dict)]
            for p in sorted(bundled_pack().glob("*.yml"))}


@lru_cache(maxsize=1)
def _case_files() -> dict[str, dict[str, Any]]:
    return {p.stem: yaml.safe_load(p.read_text(encoding="utf-8"))
            for p in sorted(CASES_DIR.glob("*.yml"))}


def _default(doc: dict[str, Any], docs: dict[str, list[dict[str, Any]]]
             ) -> tuple[str, int | None]:
    if "correlation" in doc:  # events default to the first rule it names
        first = doc["correlation"]["rules"][0]
        doc = next(d for ds in docs.values() for d in ds if first in (d.get("name"),
                                                                       d.get("id")))
    ls = doc.get("logsource") or {}
    key = ls.get("category") or ls.get("service") or ""
    return DEFAULTS.get(key, (SYSMON, 1))


@lru_cache(maxsize=1)
def _hunt(tmp: str) -> tuple[dict[str, list[tuple[str, frozenset[str]]]],
                             dict[tuple[str, int], frozenset[str]]]:
    """Run the whole pack once over every case; findings per rule id and case ids."""
    from tidehunt.cli.main import main

    docs = _rule_docs()
    lines: list[str] = []
    case_ids: dict[tuple[str, int], frozenset[str]] = {}
    rec = 0
    for stem, spec in _case_files().items():
        doc = docs[spec["rule"]][0]
        for n, case in enumerate(spec["cases"]):
            host = f"{stem[:40]}-{n}".upper()
            ids: list[str] = []
            for i, ev in enumerate(case["events"]):
                channel, eid = _default(doc, docs)
                rec += 1
                ids.append(str(rec))
                lines.append(json.dumps({"Event": {
                    "System": {"Provider": {"#attributes": {
                                   "Name": ev.get("provider", "case")}},
                               "EventID": ev.get("event_id", eid), "EventRecordID": rec,
                               "Channel": ev.get("channel", channel), "Computer": host,
                               "TimeCreated": {"#attributes": {"SystemTime": ev.get(
                                   "time", f"2026-10-06T01:{i // 60:02d}:{i % 60:02d}Z")}}},
                    "EventData": ev.get("fields", {})}}))
            case_ids[(stem, n)] = frozenset(ids)
    root = Path(tmp)
    (root / "ev.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["-q", "hunt", str(root / "ev.jsonl"), "-o", str(root / "case"),
                 "-r", str(bundled_pack())]) == 0
    by_rule: dict[str, list[tuple[str, frozenset[str]]]] = {}
    for line in (root / "case" / "findings.jsonl").read_text().splitlines():
        f = json.loads(line)
        by_rule.setdefault(f["rule_id"], []).append(
            (f["host"], frozenset(str(e["record_id"]) for e in f["evidence"])))
    return by_rule, case_ids


@pytest.fixture(scope="module")
def hunted(tmp_path_factory):
    return _hunt(str(tmp_path_factory.mktemp("pack_cases")))


def _params() -> list[Any]:
    out = []
    for stem, spec in _case_files().items():
        for n, case in enumerate(spec["cases"]):
            out.append(pytest.param(stem, n, id=f"{stem}-{n}-{case['name'][:40]}"))
    return out


def test_every_rule_has_positive_and_negative_cases():
    docs = _rule_docs()
    cases = _case_files()
    missing = sorted(f for f in docs if Path(f).stem not in cases)
    assert not missing, f"rules without cases in {CASES_DIR}: {missing}"
    for stem, spec in cases.items():
        assert spec["rule"] == f"{stem}.yml" and spec["rule"] in docs
        assert spec.get("via", spec["rule"]) in docs
        kinds = {bool(c["match"]) for c in spec["cases"]}
        assert kinds == {True, False}, f"{stem}: needs both matching and non-matching cases"


@pytest.mark.parametrize(("stem", "n"), _params())
def test_case(hunted, stem, n):
    by_rule, case_ids = hunted
    spec = _case_files()[stem]
    case = spec["cases"][n]
    # a base rule that reports only through a correlation is judged by that correlation
    doc = _rule_docs()[spec.get("via", spec["rule"])][0]
    ids = case_ids[(stem, n)]
    hits = [ev for _host, ev in by_rule.get(doc["id"], []) if ev & ids]
    if case["match"]:
        assert hits, f"{doc['title']} did not fire on case {case['name']!r}"
        assert all(ev <= ids for ev in hits)
    else:
        assert not hits, f"{doc['title']} fired on negative case {case['name']!r}"
