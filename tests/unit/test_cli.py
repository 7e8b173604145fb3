"""The tidehunt command line, end to end: outputs, exit codes, rule packs."""

from __future__ import annotations

import csv
import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from tidehunt.cli.main import main

RULE = """
title: Certutil download
id: 6f3a1d2e-0b7c-4c1a-9a55-0d6c1f1b9e01
status: experimental
description: test rule
author: tests
date: 2026-11-01
tags: [attack.command-and-control, attack.t1105]
logsource: {category: process_creation, product: windows}
detection:
  sel:
    Image|endswith: '\\\\certutil.exe'
    CommandLine|contains|all: ['-urlcache', '-f']
  condition: sel
level: high
"""
LOW_RULE = """
title: Any process
id: 0b8f0a57-2a8e-4f2f-8d0e-1b2c3d4e5f60
status: experimental
description: low rule
author: tests
date: 2026-11-01
tags: [attack.execution, attack.t1059]
logsource: {category: process_creation, product: windows}
detection:
  sel:
    Image|endswith: '.exe'
  condition: sel
level: low
"""


def _ev(i: int, image: str, cmd: str, ts: str = "2026-10-06T01:00:00Z") -> str:
    return json.dumps({"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": 1,
        "EventRecordID": i, "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "ws1.corp.example", "TimeCreated": {"#attributes": {"SystemTime": ts}}},
        "EventData": {"Image": image, "CommandLine": cmd, "User": "CORP\\amy"}}})


@pytest.fixture
def setup(tmp_path):
    ev = tmp_path / "evidence"
    ev.mkdir()
    (ev / "sysmon.json").write_text("\n".join([
        _ev(1, "C:\\Windows\\System32\\certutil.exe",
            "certutil -urlcache -split -f http://198.51.100.7/a.exe a.exe"),
        _ev(2, "C:\\Windows\\System32\\certutil.exe", "certutil -hashfile a.exe SHA256"),
        _ev(3, "C:\\Windows\\System32\\cmd.exe", "=cmd /c calc", "2026-10-07T01:00:00Z"),
    ]) + "\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "certutil.yml").write_text(RULE)
    (rules / "low.yml").write_text(LOW_RULE)
    return ev, rules, tmp_path / "case"


def test_hunt_writes_contract(setup, capsys):
    ev, rules, case = setup
    assert main(["--no-color", "hunt", str(ev), "-o", str(case), "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "Findings by level" in out
    rows = [json.loads(x) for x in (case / "findings.jsonl").read_text().splitlines()]
    assert len(rows) == 4  # 1 certutil + 3 "any process"
    hit = next(r for r in rows if r["rule_title"] == "Certutil download")
    for key in ("finding_id", "ts", "ts_last", "rule_id", "rule_title", "engine", "level",
                "techniques", "tactics", "host", "user", "summary", "evidence", "fields"):
        assert key in hit
    assert hit["ts"] == "2026-10-06T01:00:00Z" and hit["engine"] == "sigma"
    assert hit["techniques"] == ["T1105"] and hit["tactics"] == ["command-and-control"]
    assert hit["host"] == "ws1.corp.example" and hit["user"] == "CORP\\amy"
    assert hit["evidence"][0]["source_file"] == str(ev / "sysmon.json")
    assert hit["evidence"][0]["record_id"] == 1 and hit["evidence"][0]["table"] == "windows"
    assert hit["fields"]["CommandLine"].startswith("certutil -urlcache")
    with open(case / "timeline.csv", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["Timestamp", "RuleTitle", "Level", "Computer", "Channel", "EventID",
                        "RecordID", "Details", "RuleID", "MitreTactics", "MitreTags",
                        "SourceFile"]
    assert len(table) == 5
    # the cmd line starting with "=" must not become a spreadsheet formula
    assert all(not cell.startswith("=") for row in table for cell in row)
    report = json.loads((case / "report.json").read_text())
    assert report["version"] == 1 and report["findings_count"] == 4
    manifest = json.loads((case / "manifest.json").read_text())
    assert manifest["runs"][-1]["rules"][0]["files"] == 2


def test_finding_ids_stable_across_runs(setup):
    ev, rules, case = setup
    main(["-q", "hunt", str(ev), "-o", str(case), "--rules", str(rules)])
    first = (case / "findings.jsonl").read_text()
    assert main(["-q", "detect", str(case), "--rules", str(rules)]) == 0
    assert (case / "findings.jsonl").read_text() == first


def test_filters_level_time_exclude(setup):
    ev, rules, case = setup
    main(["-q", "hunt", str(ev), "-o", str(case), "--rules", str(rules), "-m", "high"])
    assert len((case / "findings.jsonl").read_text().splitlines()) == 1
    main(["-q", "detect", str(case), "--rules", str(rules), "--to", "2026-10-06T12:00:00"])
    assert len((case / "findings.jsonl").read_text().splitlines()) == 3
    main(["-q", "detect", str(case), "--rules", str(rules), "--exclude-rule",
          "0b8f0a57-2a8e-4f2f-8d0e-1b2c3d4e5f60"])
    assert len((case / "findings.jsonl").read_text().splitlines()) == 1

    def unmatched() -> list[str]:
        report = json.loads((case / "report.json").read_text())
        return [w["path"] for w in report["warnings"]
                if w["message"].startswith("--exclude-rule matches no")]

    assert unmatched() == []
    # a typo in an exclusion excludes nothing: said, not silently ignored; ids and names
    # of rules and analytics (any case) are known
    main(["-q", "detect", str(case), "--rules", str(rules), "--exclude-rule",
          "0B8F0A57-2a8e-4f2f-8d0e-1b2c3d4e5f6", "--exclude-rule",
          "0B8F0A57-2a8e-4f2f-8d0e-1b2c3d4e5f60", "--exclude-rule", "web_tunnel_request"])
    assert unmatched() == ["0B8F0A57-2a8e-4f2f-8d0e-1b2c3d4e5f6"]
    assert len((case / "findings.jsonl").read_text().splitlines()) == 1


def test_exit_codes(setup, tmp_path, capsys):
    ev, rules, case = setup
    assert main(["-q", "hunt", str(ev), "-o", str(case), "--rules", str(rules),
                 "--fail-on", "high"]) == 10
    assert main(["-q", "detect", str(case), "--rules", str(rules), "--fail-on",
                 "critical"]) == 0
    with pytest.raises(SystemExit) as exc:
        main(["hunt"])
    assert exc.value.code == 2
    for bad in (["--workers", "0", "hunt"], ["hunt", "--incident-gap", "-5"],
                ["hunt", "--incident-gap", "nan"], ["hunt", "--max-file-mb", "0"],
                ["hunt", "--max-rule-age", "-1"], ["hunt", "--max-memory", "100MB"]):
        with pytest.raises(SystemExit) as exc:  # nonsense numbers are usage errors
            main(["-q", *bad, str(ev), "-o", str(tmp_path / "c0")])
        assert exc.value.code == 2
    assert not (tmp_path / "c0").exists()
    for cmd in (["hunt", str(ev), "-o", str(tmp_path / "c0")], ["detect", str(case)]):
        with pytest.raises(SystemExit) as exc:  # a window that holds no time: a mistake
            main(["-q", *cmd, "--from", "2020-01-02", "--to", "2020-01-01"])
        assert exc.value.code == 2
    assert not (tmp_path / "c0").exists()
    # a rule path that does not exist stops the hunt before the evidence is ingested
    assert main(["-q", "hunt", str(ev), "-o", str(tmp_path / "c1"), "--rules",
                 str(tmp_path / "no-such-rules")]) == 2
    assert not (tmp_path / "c1").exists()
    # so does any other file option naming nothing: every one of them is named
    assert main(["-q", "hunt", str(ev), "-o", str(tmp_path / "c1"), "--rules", str(rules),
                 "--intel", str(tmp_path / "no-intel.csv"), "--org",
                 str(tmp_path / "no-org.yml")]) == 2
    assert not (tmp_path / "c1").exists()
    err = capsys.readouterr().err
    assert "no-intel.csv (--intel)" in err and "no-org.yml (--org)" in err
    junk = tmp_path / "junk.txt"
    junk.write_text("nothing to see\n")
    assert main(["-q", "hunt", str(junk), "-o", str(tmp_path / "c2"), "--rules",
                 str(rules)]) == 3
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.yml").write_text("title: broken\nlogsource: {product: windows}\n"
                               "detection: {condition: nothing}\n")
    assert main(["-q", "detect", str(case), "--rules", str(bad)]) == 4
    assert main(["-q", "detect", str(case), "--rules", str(tmp_path / "missing")]) == 2
    assert main(["-q", "detect", str(tmp_path / "not-a-case")]) == 3


def test_no_evidence_error_names_the_paths_that_gave_none(setup, tmp_path, capsys):
    """A mistyped path is named in the exit-3 error (its warning is not only in the
    manifest of a run that found nothing); an empty folder is said to be one."""
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "no-such-dir"
    assert main(["-q", "hunt", str(missing), str(empty), "-o", str(tmp_path / "c")]) == 3
    err = capsys.readouterr().err
    line = err.strip()
    assert "\n" not in line, err  # one line, however long: not wrapped by the console
    assert str(missing) in line and "does not exist" in line
    assert main(["-q", "hunt", str(empty), "-o", str(tmp_path / "c2")]) == 3
    assert "hold no files" in capsys.readouterr().err
    # no path given exists: said before a case folder is made (none is left behind)
    for cmd in ("hunt", "ingest"):
        assert main(["-q", cmd, str(missing), str(tmp_path / "typo.evtx"), "-o",
                     str(tmp_path / "c3")]) == 3
        err = capsys.readouterr().err
        assert f"{tmp_path / 'typo.evtx'}: evidence path does not exist" in err
        assert not (tmp_path / "c3").exists()


def test_command_exits_quickly_with_the_code_and_every_output(setup, tmp_path):
    """``tidehunt`` (``cli.main.run``) ends the process itself once main returns: the
    exit code, the files and what it printed are all there, exit handlers ran."""
    ev, rules, case = setup
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('exit handler ran', gc.get_threshold()[0],"
            " file=sys.stderr))\n"
            "from tidehunt.cli.main import run\n"
            "sys.argv = ['tidehunt'] + sys.argv[1:]\nrun()\n"
            "print('not reached')\n")
    args = ["--no-color", "hunt", str(ev), "-o", str(case), "--rules", str(rules),
            "--fail-on", "high"]
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 10  # --fail-on high: findings at high
    assert "exit handler ran 20000" in out.stderr and "not reached" not in out.stdout
    assert (case / "report.json").exists() and (case / "timeline.csv").exists()
    lines = (case / "findings.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x)["finding_id"] for x in lines)
    assert "Certutil download" in out.stdout  # the summary, and its last lines, flushed
    assert out.stdout.rstrip().endswith("report.html (and report.json)")
    lint = subprocess.run([sys.executable, "-c", code, "rules", "lint", str(rules)],
                          capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0 and "2 rules usable, 0 failed" in lint.stdout


def test_report_rerenders(setup, tmp_path, capsys):
    ev, rules, case = setup
    main(["-q", "hunt", str(ev), "-o", str(case), "--rules", str(rules)])
    out = tmp_path / "again.jsonl"
    assert main(["report", str(case), "--format", "jsonl", "--out", str(out)]) == 0
    assert out.read_text() == (case / "findings.jsonl").read_text()
    assert main(["--no-color", "report", str(case)]) == 0
    assert "Top rules" in capsys.readouterr().out


def test_search(setup, capsys):
    ev, _, case = setup
    main(["-q", "ingest", str(ev), "-o", str(case)])
    assert main(["search", str(case), "SELECT count(*) AS n FROM windows", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", "3"]


def test_rules_lint_lists_failures(tmp_path, capsys):
    d = tmp_path / "r"
    d.mkdir()
    (d / "ok.yml").write_text(RULE)
    (d / "bad.yml").write_text("title: broken\nid: 1\nlogsource: {product: windows}\n"
                               "detection: {sel: {a: b}, condition: sel and nope}\n")
    (d / "linux.yml").write_text(RULE.replace("product: windows", "product: linux").replace(
        "6f3a1d2e", "7f3a1d2e"))
    assert main(["rules", "lint", str(d)]) == 4
    out = capsys.readouterr().out
    assert "FAILED" in out and "bad.yml" in out
    assert "N/A" in out and "linux" in out
    assert "1 rules usable, 1 failed, 1 not applicable" in out


@pytest.fixture
def rule_server(corpus, tmp_path):
    """An HTTP server on 127.0.0.1 serving a rule archive built from the corpus."""
    src = corpus("sigma/rules/windows/process_creation")
    root = tmp_path / "www"
    root.mkdir()
    with zipfile.ZipFile(root / "rules.zip", "w") as zf:
        for f in sorted(src.glob("proc_creation_win_certutil*.yml")):
            zf.write(f, f"rules/windows/process_creation/{f.name}")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/rules.zip"
    srv.shutdown()


def test_rules_update_from_local_server(rule_server, setup, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TIDEHUNT_DATA_DIR", str(tmp_path / "data"))
    ev, _, case = setup
    assert main(["rules", "update", "--from", rule_server]) == 0
    out = capsys.readouterr().out
    assert "added" in out and "rules" in out
    assert main(["rules", "update", "--from", rule_server]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main(["rules", "list"]) == 0
    assert "sigmahq" in capsys.readouterr().out
    # a hunt without --rules uses the bundled pack plus the fetched one, and says so
    assert main(["-q", "hunt", str(ev), "-o", str(case)]) == 0
    report = json.loads((Path(case) / "report.json").read_text())
    names = [s["name"] for s in report["meta"]["rule_sources"]]
    assert names[0] == "tidehunt (bundled)" and names[1].startswith("sigmahq ")
    titles = {json.loads(x)["rule_title"] for x in (case / "findings.jsonl").read_text()
              .splitlines()}
    assert any("Certutil" in t for t in titles)


def test_stale_rules_warned(setup):
    ev, rules, case = setup
    main(["-q", "hunt", str(ev), "-o", str(case), "--rules", str(rules), "--max-rule-age",
          "1"])
    report = json.loads((case / "report.json").read_text())
    assert any("days old" in w["message"] for w in report["warnings"])


def test_rules_update_refuses_garbage(tmp_path, monkeypatch):
    monkeypatch.setenv("TIDEHUNT_DATA_DIR", str(tmp_path / "data"))
    junk = tmp_path / "junk.zip"
    with zipfile.ZipFile(junk, "w") as zf:
        zf.writestr("readme.txt", "no rules here")
    assert main(["rules", "update", "--from", str(junk)]) == 4


def test_scan_webroot_and_scan_site_commands(tmp_path, capsys):
    from tests.fixtures.webroots import build_webroot
    from tidehunt.demo.site import write_demo_site

    site = tmp_path / "www"
    site.mkdir()
    build_webroot(site)
    case = tmp_path / "case"
    assert main(["-q", "scan-webroot", str(site), "-o", str(case), "--fail-on",
                 "critical"]) == 10
    found = [json.loads(x) for x in (case / "findings.jsonl").read_text().splitlines()]
    assert any(f["engine"] == "yara" for f in found)
    before, during = write_demo_site(tmp_path / "partner")
    case2 = tmp_path / "case2"
    assert main(["-q", "scan-site", str(during), "--site-baseline", str(before), "-o",
                 str(case2)]) == 0
    found = [json.loads(x) for x in (case2 / "findings.jsonl").read_text().splitlines()]
    assert {f["rule_id"] for f in found} == {"th-analytic-0021"}
    assert main(["-q", "hunt", "-o", str(tmp_path / "c3")]) == 2  # nothing to hunt
    assert main(["-q", "scan-webroot", str(tmp_path / "nope"), "-o",
                 str(tmp_path / "c4")]) == 3


@pytest.mark.parametrize("switch", ["0", "1"])
def test_version_and_run_record_name_the_flatten(setup, capsys, monkeypatch, switch):
    from tidehunt import __version__
    from tidehunt.sources._wincolumnar import _evtxflat, native_flatten

    monkeypatch.setenv("TIDEHUNT_NATIVE_FLATTEN", switch)
    with pytest.raises(SystemExit):
        main(["--version"])
    line = capsys.readouterr().out
    state = ("not built" if _evtxflat is None else "on" if switch == "1"
             else "off, TIDEHUNT_NATIVE_FLATTEN=0")
    assert line == f"tidehunt {__version__} (native EVTX flatten: {state})\n"
    ev, rules, case = setup
    assert main(["-q", "hunt", str(ev), "-o", str(case), "--rules", str(rules)]) == 0
    run = json.loads((case / "manifest.json").read_text())["runs"][-1]
    assert run["ingest"]["native_flatten"] == native_flatten()
    assert (run["ingest"]["native_flatten"] is None) == (switch == "0" or _evtxflat is None)


def _views(case: Path) -> set[str]:
    import duckdb

    con = duckdb.connect(str(case / "case.duckdb"), read_only=True)
    try:
        return {r[0] for r in con.sql("SELECT table_name FROM information_schema.tables")
                .fetchall()}
    finally:
        con.close()


def test_hunt_writes_the_catalogue_once_with_every_table(setup, monkeypatch):
    """A hunt writes ``case.duckdb`` once, after detection, with the windows events, the
    bundled intel it loaded and the findings (ingest, the intel load and detection each
    wrote it: 0.03-0.05 s of the critical path apiece)."""
    from tidehunt.case.store import CaseStore

    ev, rules, case = setup
    calls: list[Path] = []
    real = CaseStore.write_catalogue

    def counted(self):
        calls.append(self.root)
        return real(self)

    monkeypatch.setattr(CaseStore, "write_catalogue", counted)
    assert main(["-q", "hunt", str(ev), "-o", str(case), "--rules", str(rules)]) == 0
    assert len(calls) == 1
    assert {"windows", "indicator", "findings"} <= _views(case)
    manifest = json.loads((case / "manifest.json").read_text())
    assert any(a.get("intel", {}).get("bundled") for a in manifest["artefacts"].values())
    # ingest alone still writes it (no detection follows)
    calls.clear()
    assert main(["-q", "ingest", str(ev), "-o", str(case.parent / "c-ingest")]) == 0
    assert len(calls) == 1 and "windows" in _views(case.parent / "c-ingest")


def test_failed_detection_still_saves_the_manifest_and_catalogue(setup, monkeypatch):
    """When detection fails after ingest, the case still lists what it holds: the manifest
    (with the intel loaded) is saved and the catalogue written before the error goes on,
    and the same hunt run again skips the evidence and finishes."""
    from tidehunt import engine

    ev, rules, case = setup

    def broken(*args, **kwargs):
        raise RuntimeError("posture step exploded")

    monkeypatch.setattr(engine, "posture", broken)
    assert main(["-q", "hunt", str(ev), "-o", str(case), "--rules", str(rules)]) == 70
    assert {"windows", "indicator"} <= _views(case)
    manifest = json.loads((case / "manifest.json").read_text())
    statuses = {a["display"]: a["status"] for a in manifest["artefacts"].values()}
    assert statuses[str(ev / "sysmon.json")] == "ingested"
    assert any(a.get("intel", {}).get("bundled") for a in manifest["artefacts"].values())
    monkeypatch.undo()
    assert main(["-q", "hunt", str(ev), "-o", str(case), "--rules", str(rules)]) == 0
    manifest = json.loads((case / "manifest.json").read_text())
    assert manifest["runs"][-1]["ingest"]["skipped"] == 1
    assert len((case / "findings.jsonl").read_text().splitlines()) == 4


def test_scan_failing_after_ingest_still_writes_the_catalogue(setup, tmp_path,
                                                              monkeypatch):
    """A hunt whose web-root scan fails after ingest (exit 3) leaves a catalogue that
    lists the events ingested, as ingest alone would."""
    import tidehunt.engine as engine
    from tidehunt.errors import NoUsableInput

    ev, rules, case = setup
    root = tmp_path / "www"
    root.mkdir()

    def fails(*_a, **_k):
        raise NoUsableInput("web root vanished")  # after ingest: the folder was checked

    monkeypatch.setattr(engine, "run_webroot", fails)
    assert main(["-q", "hunt", str(ev), "--webroot", str(root), "-o",
                 str(case), "--rules", str(rules)]) == 3
    assert "windows" in _views(case)
    # a web root that is not a folder stops the hunt before ingest (exit 3, no case)
    assert main(["-q", "hunt", str(ev), "--webroot", str(tmp_path / "no-such-root"),
                 "-o", str(tmp_path / "c9"), "--rules", str(rules)]) == 3
    assert not (tmp_path / "c9").exists()


def test_the_case_folder_inside_the_evidence_is_never_read(setup, capsys):
    """``hunt . -o case`` run again in the evidence folder: the case's own manifest,
    tables and reports are not evidence (they were read, one of them "ingested" as a
    Windows JSON export, and the manifest grew with every run)."""
    ev, rules, _ = setup
    case = ev / "case"
    for _ in range(3):
        assert main(["-q", "hunt", str(ev), "-o", str(case), "--rules", str(rules)]) == 0
    manifest = json.loads((case / "manifest.json").read_text())
    shown = [a["display"] for a in manifest["artefacts"].values()
             if not a.get("intel", {}).get("bundled")]
    assert shown == [str(ev / "sysmon.json")]
    assert manifest["runs"][-1]["ingest"]["skipped"] == 1
    inside = [w for w in manifest["warnings"] if "case folder" in w["message"]]
    assert len(inside) == 1 and inside[0]["path"] == str(case)  # once, not once a run
    assert len((case / "findings.jsonl").read_text().splitlines()) == 4
    # the case folder, or a file in it, given as evidence: left out, and said so
    capsys.readouterr()
    assert main(["-q", "hunt", str(case), "-o", str(case), "--rules", str(rules)]) == 3
    assert "case folder is not evidence" in capsys.readouterr().err
    assert main(["-q", "hunt", str(case / "findings.jsonl"), str(ev / "sysmon.json"), "-o",
                 str(case), "--rules", str(rules)]) == 0
    manifest = json.loads((case / "manifest.json").read_text())
    assert not any("findings.jsonl" in a["display"] for a in manifest["artefacts"].values())


def test_another_case_inside_the_evidence_is_not_read(setup, tmp_path):
    """An earlier analysis kept beside the evidence (a tidehunt case folder) is left out
    of a new case's evidence, with a warning naming it; a folder that merely holds a
    ``manifest.json`` and ``tables`` of someone else's is still read."""
    ev, rules, _ = setup
    assert main(["-q", "hunt", str(ev), "-o", str(ev / "old-case"), "--rules", str(rules)]) == 0
    other = ev / "export"
    (other / "tables").mkdir(parents=True)
    (other / "manifest.json").write_text('{"name": "not a case"}\n')
    new = tmp_path / "new-case"
    assert main(["-q", "hunt", str(ev), "-o", str(new), "--rules", str(rules)]) == 0
    manifest = json.loads((new / "manifest.json").read_text())
    shown = sorted(a["display"] for a in manifest["artefacts"].values()
                   if not a.get("intel", {}).get("bundled"))
    assert shown == [str(other / "manifest.json"), str(ev / "sysmon.json")]
    warned = [w for w in manifest["warnings"] if "tidehunt case folder" in w["message"]]
    assert [w["path"] for w in warned] == [str(ev / "old-case")]


def test_file_names_that_are_not_utf8_or_hold_markup(setup, tmp_path):
    """Evidence names are attacker-chosen: a name that is not UTF-8 is read by its real
    name, shown with its bytes as \\xNN (a warning), skipped when run again; a name with a
    newline and markup stays data in every output."""
    ev, rules, case = setup
    src = (ev / "sysmon.json").read_bytes()
    raw = os.fsencode(str(ev)) + b"/\xff\xfeodd.json"
    try:
        with open(raw, "wb") as fh:
            fh.write(src.replace(b'"EventRecordID": 1', b'"EventRecordID": 11'))
    except OSError:
        pytest.skip("this file system takes only UTF-8 names")
    odd = ev / "new\nline<img src=x onerror=alert(1)>.json"
    odd.write_bytes(src.replace(b'"EventRecordID": 1', b'"EventRecordID": 21'))
    for _ in range(2):
        assert main(["-q", "hunt", str(ev), "-o", str(case), "--rules", str(rules)]) == 0
    manifest = json.loads((case / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["runs"][-1]["ingest"]["skipped"] == 3  # nothing read twice
    shown = str(ev) + "/\\xff\\xfeodd.json"
    assert any(a["display"] == shown for a in manifest["artefacts"].values())
    assert any("not valid UTF-8" in w["message"] and w["path"] == shown
               for w in manifest["warnings"])
    rows = [json.loads(x) for x in (case / "findings.jsonl").read_text().splitlines()]
    files = {r["evidence"][0]["source_file"] for r in rows}
    assert {shown, str(odd), str(ev / "sysmon.json")} <= files
    assert len(rows) == 12  # 4 per file, each once
    with open(case / "timeline.csv", newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    assert len(table) == 13 and str(odd) in {r[-1] for r in table}
    html = (case / "report.html").read_text(encoding="utf-8")
    assert "<img src=x onerror" not in html


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_intel_file_that_cannot_be_read_is_a_warning_of_the_run(setup):
    """A warning of a load that has no artefact of its own (an intel file whose read
    fails) reaches the report and the summary: it used to be dropped."""
    ev, rules, case = setup
    assert main(["-q", "hunt", str(ev), "-o", str(case), "--rules", str(rules)]) == 0
    assert main(["-q", "detect", str(case), "--rules", str(rules), "--intel",
                 "/proc/self/mem"]) == 0  # exists, and every read of it fails (EIO)
    report = json.loads((case / "report.json").read_text())
    got = [w for w in report["warnings"] if w["path"] == "/proc/self/mem"]
    assert [w["message"] for w in got] == ["intel file not readable: Input/output error"]
