"""The bundled APT40 Sigma pack and the synthetic demo case it is meant to catch.

Offline and fast: the rules are parsed with pySigma, the demo case is generated into
``tmp_path`` and its events are checked field by field (no tidehunt engine involved).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import pytest
import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule

from tidehunt.demo.generate import main, story, write_demo_evidence

LEVELS = {"informational", "low", "medium", "high", "critical"}
TACTICS = {"reconnaissance", "resource-development", "initial-access", "execution",
           "persistence", "privilege-escalation", "defense-evasion", "credential-access",
           "discovery", "lateral-movement", "collection", "command-and-control",
           "exfiltration", "impact"}
TECHNIQUE_TAG = re.compile(r"^attack\.t\d{4}(\.\d{3})?$")
EXPECTED_FILES = ["sysmon_ws-analyst01.json", "sysmon_web01.json",
                  "powershell_ws-analyst01.json", "security_dc01.json", "system_dc01.json"]

Event = dict[str, Any]


# --------------------------------------------------------------------------- the rule pack


@pytest.fixture(scope="module")
def pack() -> Iterator[Path]:
    with as_file(files("tidehunt") / "data/rules/sigma/tidehunt") as path:
        yield Path(path)


@pytest.fixture(scope="module")
def rule_docs(pack: Path) -> dict[str, dict[str, Any]]:
    docs = {p.name: yaml.safe_load(p.read_text(encoding="utf-8"))
            for p in sorted(pack.glob("*.yml"))}
    assert 20 <= len(docs) <= 60
    return docs


def test_pack_parses_with_pysigma(pack: Path) -> None:
    collection = SigmaCollection.load_ruleset([pack], collect_errors=True)
    assert len(collection.rules) == len(list(pack.glob("*.yml")))
    errors = {str(r.source): r.errors for r in collection.rules if r.errors}
    assert errors == {}


def test_rule_metadata(rule_docs: dict[str, dict[str, Any]]) -> None:
    for name, doc in rule_docs.items():
        assert uuid.UUID(doc["id"]).version == 4, name
        assert doc["status"] == "experimental", name
        assert doc["author"] == "tidehunt", name
        assert doc["level"] in LEVELS, name
        assert len(doc["description"]) > 80, name
        assert doc["references"], name
        assert all(ref.startswith("https://") for ref in doc["references"]), name
        assert doc["falsepositives"], name
        tags = doc["tags"]
        assert any(TECHNIQUE_TAG.match(t) for t in tags), name
        assert any(t.removeprefix("attack.") in TACTICS for t in tags), name
        assert all(TECHNIQUE_TAG.match(t) or t.removeprefix("attack.") in TACTICS
                   for t in tags), name
        assert "correlation" in doc or doc["logsource"]["product"] == "windows", name


def test_ids_titles_and_names_are_unique(rule_docs: dict[str, dict[str, Any]]) -> None:
    for key in ("id", "title", "name"):
        values = [doc[key] for doc in rule_docs.values()]
        assert len(values) == len(set(values)), key


def test_correlations_reference_rules_in_the_pack(pack: Path) -> None:
    collection = SigmaCollection.load_ruleset([pack], collect_errors=True)
    correlations = [r for r in collection.rules if isinstance(r, SigmaCorrelationRule)]
    assert 2 <= len(correlations) <= 10
    for corr in correlations:
        assert corr.rules
        for ref in corr.rules:
            assert ref.rule is not None, f"{corr.title}: unresolved {ref.reference}"


# --------------------------------------------------------------------------- the demo case


def _read(path: Path) -> list[Event]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Event]]:
    out = tmp_path_factory.mktemp("demo")
    written = write_demo_evidence(out)
    assert [p.name for p in written] == EXPECTED_FILES
    return {p.name: _read(p) for p in written}


def _event_id(event: Event) -> int:
    eid = event["Event"]["System"]["EventID"]
    return int(eid["#text"] if isinstance(eid, dict) else eid)


def _data(event: Event) -> dict[str, Any]:
    body = event["Event"]
    if "EventData" in body:
        data: dict[str, Any] = body["EventData"]
        return data
    (inner,) = body["UserData"].values()
    return {k: v for k, v in inner.items() if k != "#attributes"}


def _time(event: Event) -> datetime:
    text = event["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"]
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def test_generator_is_deterministic(tmp_path: Path) -> None:
    a = write_demo_evidence(tmp_path / "a", seed=40)
    b = write_demo_evidence(tmp_path / "b", seed=40)
    c = write_demo_evidence(tmp_path / "c", seed=41)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert [p.read_bytes() for p in a] != [p.read_bytes() for p in c]


def test_files_are_evtx_dump_json_lines(demo: dict[str, list[Event]]) -> None:
    total = sum(len(events) for events in demo.values())
    assert 300 <= total <= 1500
    for name, events in demo.items():
        assert events, name
        records = []
        for event in events:
            system = event["Event"]["System"]
            assert isinstance(system["Provider"]["#attributes"]["Name"], str)
            assert system["Channel"]
            assert system["Computer"].endswith(".corp.example")
            assert "ProcessID" in system["Execution"]["#attributes"]
            assert _data(event)
            ts = _time(event)
            assert datetime(2026, 10, 5, tzinfo=UTC) <= ts < datetime(2026, 10, 9, tzinfo=UTC)
            records.append(system["EventRecordID"])
        assert records == list(range(records[0], records[0] + len(records))), name
        times = [_time(e) for e in events]
        assert max(times) - min(times) > timedelta(days=2), name


def test_sysmon_and_security_field_names(demo: dict[str, list[Event]]) -> None:
    required = {
        1: {"UtcTime", "ProcessGuid", "ProcessId", "Image", "CommandLine", "CurrentDirectory",
            "User", "IntegrityLevel", "Hashes", "ParentProcessGuid", "ParentProcessId",
            "ParentImage", "ParentCommandLine", "OriginalFileName"},
        3: {"Image", "SourceIp", "DestinationIp", "DestinationPort", "DestinationHostname"},
        11: {"Image", "TargetFilename", "CreationUtcTime"},
        13: {"Image", "TargetObject", "Details", "EventType"},
        22: {"Image", "QueryName", "QueryResults"},
        4104: {"ScriptBlockText", "ScriptBlockId"},
        4624: {"TargetUserName", "LogonType", "AuthenticationPackageName", "IpAddress",
               "WorkstationName"},
        4625: {"TargetUserName", "Status", "SubStatus", "IpAddress"},
        4688: {"NewProcessName", "CommandLine", "ParentProcessName"},
        4698: {"TaskName", "TaskContent", "SubjectUserName"},
        1102: {"SubjectUserName"},
        7045: {"ServiceName", "ImagePath", "AccountName"},
        7036: {"param1", "param2"},
    }
    seen: set[int] = set()
    for events in demo.values():
        for event in events:
            eid = _event_id(event)
            seen.add(eid)
            assert required[eid] <= _data(event).keys(), eid
    assert seen == set(required)


def _find(events: list[Event], event_id: int, **checks: Callable[[Any], bool]) -> list[Event]:
    return [e for e in events if _event_id(e) == event_id
            and all(k in _data(e) and fn(_data(e)[k]) for k, fn in checks.items())]


def _endswith(suffix: str) -> Callable[[Any], bool]:
    return lambda v: str(v).lower().endswith(suffix.lower())


def _contains(*parts: str) -> Callable[[Any], bool]:
    return lambda v: all(p.lower() in str(v).lower() for p in parts)


def _equals(value: Any) -> Callable[[Any], bool]:
    return lambda v: v == value


STAGE_CHECKS: dict[int, list[tuple[str, int, dict[str, Callable[[Any], bool]]]]] = {
    1: [("sysmon_ws-analyst01.json", 1, {"ParentImage": _endswith("\\WINWORD.EXE"),
                                         "Image": _endswith("\\cmd.exe"),
                                         "CommandLine": _contains("powershell", "-enc")}),
        ("sysmon_ws-analyst01.json", 1, {"ParentImage": _endswith("\\OUTLOOK.EXE"),
                                         "CommandLine": _contains(
                                             "Maritime_Policy_Research_2026.docx")}),
        ("sysmon_ws-analyst01.json", 1, {"Image": _endswith("\\powershell.exe"),
                                         "CommandLine": _contains("-nop", "-enc")}),
        ("powershell_ws-analyst01.json", 4104, {"ScriptBlockText": _contains(
            "DownloadString")})],
    2: [("sysmon_ws-analyst01.json", 1, {"Image": _endswith("\\certutil.exe"),
                                         "CommandLine": _contains("-urlcache", "-split",
                                                                  "-f http")}),
        ("sysmon_ws-analyst01.json", 1, {"Image": _endswith("\\bitsadmin.exe"),
                                         "CommandLine": _contains("/transfer")})],
    3: [("sysmon_ws-analyst01.json", 13, {"TargetObject": _endswith("\\EnableAt"),
                                          "Details": _equals("DWORD (0x00000001)")}),
        ("sysmon_ws-analyst01.json", 1, {"Image": _endswith("\\at.exe"),
                                         "CommandLine": _contains(":")}),
        ("sysmon_ws-analyst01.json", 1, {"Image": _endswith("\\schtasks.exe"),
                                         "CommandLine": _contains("/create", "Public")})],
    4: [("sysmon_web01.json", 11, {"Image": _endswith("\\w3wp.exe"),
                                   "TargetFilename": _equals(
                                       "C:\\inetpub\\wwwroot\\aspnet_client\\system_web"
                                       "\\logo.aspx")}),
        ("sysmon_web01.json", 1, {"ParentImage": _endswith("\\w3wp.exe"),
                                  "Image": _endswith("\\cmd.exe"),
                                  "CommandLine": _contains("whoami")}),
        ("sysmon_web01.json", 1, {"ParentImage": _endswith("\\w3wp.exe"),
                                  "CommandLine": _contains('net group "domain admins" /domain')}),
        ("sysmon_web01.json", 1, {"Image": _endswith("\\ipconfig.exe")})],
    5: [("sysmon_web01.json", 1, {"Image": _endswith("\\rundll32.exe"),
                                  "CommandLine": _contains("comsvcs.dll", "MiniDump")}),
        ("security_dc01.json", 4625, {"TargetUserName": _equals("administrator"),
                                      "IpAddress": _equals("10.10.20.15")})],
    6: [("sysmon_web01.json", 1, {"Image": _endswith("\\PsExec64.exe"),
                                  "CommandLine": _contains("\\\\dc01", "svc_backup")}),
        ("security_dc01.json", 4624, {"LogonType": _equals(3),
                                      "TargetUserName": _equals("svc_backup"),
                                      "AuthenticationPackageName": _equals("NTLM"),
                                      "IpAddress": _equals("10.10.20.15")}),
        ("system_dc01.json", 7045, {"ServiceName": _equals("PSEXESVC")}),
        ("security_dc01.json", 4698, {"TaskContent": _contains("powershell")})],
    7: [("sysmon_ws-analyst01.json", 1, {"Image": _endswith("\\rar.exe"),
                                         "CommandLine": _contains(" a ", "-hp",
                                                                  "C:\\Windows\\Debug\\d.rar")}),
        ("sysmon_ws-analyst01.json", 11, {"TargetFilename": _contains("C:\\Windows\\Debug\\",
                                                                      ".rar")})],
    8: [("sysmon_ws-analyst01.json", 1, {"Image": _endswith("\\rclone.exe"),
                                         "CommandLine": _contains(" copy ", "dbx:")}),
        ("sysmon_ws-analyst01.json", 3, {"Image": _endswith("\\rclone.exe"),
                                         "DestinationHostname": _equals(
                                             "content.dropboxapi.com")})],
    9: [("sysmon_ws-analyst01.json", 1, {"Image": _endswith("\\wevtutil.exe"),
                                         "CommandLine": _contains("cl Security")}),
        ("security_dc01.json", 1102, {"SubjectUserName": _equals("svc_backup")})],
}


def test_story_lists_nine_stages_in_business_hours() -> None:
    stages = story()
    assert [s["stage"] for s in stages] == [str(n) for n in range(1, 10)]
    times = [datetime.strptime(s["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
             for s in stages]
    assert times == sorted(times)
    for s, t in zip(stages, times, strict=True):
        assert set(s) == {"stage", "time", "host", "techniques", "description"}
        assert all(re.fullmatch(r"T\d{4}(\.\d{3})?", x) for x in s["techniques"].split(", "))
        local = t + timedelta(hours=10)
        assert local.month == 10, s["time"]
        assert 8 <= local.hour < 18, s["time"]


@pytest.mark.parametrize("stage", sorted(STAGE_CHECKS))
def test_story_stage_has_its_key_events(demo: dict[str, list[Event]], stage: int) -> None:
    when = datetime.strptime(story()[stage - 1]["time"],
                             "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    for filename, event_id, checks in STAGE_CHECKS[stage]:
        found = _find(demo[filename], event_id, **checks)
        assert found, (stage, filename, event_id, sorted(checks))
        assert any(abs(_time(e) - when) < timedelta(minutes=15) for e in found), (
            stage, filename, event_id)


def test_failed_logons_form_a_burst(demo: dict[str, list[Event]]) -> None:
    failures = sorted(_time(e) for e in _find(demo["security_dc01.json"], 4625,
                                              TargetUserName=_equals("administrator")))
    assert len(failures) >= 10
    assert failures[9] - failures[0] <= timedelta(minutes=5)


def test_benign_lookalikes_are_present(demo: dict[str, list[Event]]) -> None:
    ws = demo["sysmon_ws-analyst01.json"]
    assert _find(ws, 1, CommandLine=_contains("certutil", "-hashfile"))
    assert _find(ws, 1, CommandLine=_contains("schtasks", "/query"))
    assert _find(ws, 3, Image=_endswith("\\Dropbox.exe"),
                 DestinationHostname=_endswith("dropboxapi.com"))
    words = {_data(e)["ProcessGuid"] for e in _find(ws, 1, Image=_endswith("\\WINWORD.EXE"))}
    parents = {_data(e)["ParentProcessGuid"] for e in _find(ws, 1)}
    assert len(words - parents) >= 3  # Word opened documents without starting anything


def test_victim_infrastructure_uses_documentation_values(
        demo: dict[str, list[Event]]) -> None:
    allowed = re.compile(r"^(10\.\d+\.\d+\.\d+|192\.0\.2\.\d+|198\.51\.100\.\d+|"
                         r"203\.0\.113\.\d+|-|127\.0\.0\.1|::1)$")
    for events in demo.values():
        for event in events:
            data = _data(event)
            for key in ("SourceIp", "DestinationIp", "IpAddress"):
                if key in data:
                    assert allowed.match(str(data[key])), data[key]


def test_main_prints_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [Path(line.split("\t")[0]).name for line in printed] == EXPECTED_FILES


def test_demo_hunt_detects_every_stage(tmp_path):
    """The whole demo, as `make demo` runs it: every story stage is detected."""
    from tidehunt.cli.main import main
    from tidehunt.demo.coverage import coverage
    from tidehunt.model.report import RunReport

    assert main(["-q", "demo", "-o", str(tmp_path / "demo")]) == 0
    case = tmp_path / "demo" / "case"
    report = RunReport.from_json((case / "report.json").read_bytes())
    stages = coverage(report.load_findings(case))
    assert [s["stage"] for s in stages if not s["detected_by"]] == []
    assert report.warnings == [] and report.rule_errors == []
    # the web story: upload, shell file, each command driven by a POST, the watering hole
    found = report.load_findings(case).to_pylist()
    chains = [f for f in found if f["rule_id"] == "th-analytic-0020"]
    assert {c["dst"] for c in chains} == {"/Portal/Upload.ashx",
                                          "/aspnet_client/system_web/logo.aspx"}
    shell = next(c for c in chains if c["dst"].endswith("logo.aspx"))
    assert "13 POST(s)" in shell["summary"] and "13 action(s)" in shell["summary"]
    assert {e["table"] for e in shell["evidence"]} == {"web_access", "windows"}
    yara = [f for f in found if f["engine"] == "yara"]
    assert [f["dst"] for f in yara] == ["aspnet_client/system_web/logo.aspx"]
    assert {f["level"] for f in found if f["rule_id"] == "th-analytic-0021"} == {
        "critical", "high"}
    # the mail story: the lure mail is caught four ways and chained to the workstation
    from tidehunt.demo.generate import LURE_NAME
    from tidehunt.demo.mail import LOOKALIKE, TEMPLATE_URL

    mail = {f["rule_id"]: f for f in found if f["rule_id"] in (
        "th-analytic-0022", "th-analytic-0026", "th-analytic-0029", "th-analytic-0032")}
    assert set(mail) == {"th-analytic-0022", "th-analytic-0026", "th-analytic-0029",
                         "th-analytic-0032"}
    assert mail["th-analytic-0022"]["dst"] == LOOKALIKE
    assert TEMPLATE_URL in mail["th-analytic-0026"]["summary"]
    chain = mail["th-analytic-0032"]
    assert chain["host"].startswith("WS-ANALYST01") and chain["level"] == "critical"
    assert LURE_NAME in chain["summary"] and "cmd.exe, powershell.exe" in chain["summary"]
    assert chain["evidence"][0]["table"] == "mail"
    # nothing else in the mailbox is called phishing
    assert not [f for f in found if f["rule_id"] in ("th-analytic-0024", "th-analytic-0025",
                                                     "th-analytic-0027", "th-analytic-0031")]
    # the intel the partner CERT shared confirms the story; the inventory shows exposures
    intel = {f["dst"]: f for f in found if f["rule_id"] == "th-analytic-0034"}
    assert {"seaport-news.example.com", "203.0.113.45", "203.0.113.77",
            "maritime-reveiw.example", "editor@maritime-reveiw.example"} <= set(intel)
    assert intel["seaport-news.example.com"]["level"] == "high"
    assert "retro-hunt" in intel["203.0.113.45"]["summary"]  # 78 days: past an IP's 60
    assert "8.8.8.8" not in intel  # in the feed, but warninglisted
    exposed = {(f["host"], f["dst"]) for f in found if f["rule_id"] == "th-analytic-0035"}
    assert exposed == {("WIKI01.corp.example", "CVE-2021-26084"),
                       ("WS-ANALYST01.corp.example", "CVE-2023-38831"),
                       ("WEB01.corp.example", "IN-HOUSE-APP")}  # the door of the web story
    (inc,) = report.incidents
    door = [s for s in inc["steps"] if s["rule_id"] == "th-analytic-0035"
            and s["host"].startswith("WEB01")]
    assert door and "CorpPortal" in door[0]["summary"]
