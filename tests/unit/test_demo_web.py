"""The demo's web evidence: WEB01's IIS logs and web root tell the same story as Sysmon.

The evidence and the web root are generated into ``tmp_path``; the IIS logs are read with
tidehunt's own W3C reader and hunted with the SQL web analytics, the web root is scanned
with the bundled YARA-X pack.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yara_x

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.demo.generate import (
    ACTOR_WEB_IP,
    FILE_SYSMON_WEB,
    IIS_FIELDS,
    IIS_LOG_DIR,
    STAGES,
    UPLOAD_URI,
    WEBSHELL_PATH,
    WEBSHELL_URI,
    WINDOW_END,
    WINDOW_START,
    write_demo_evidence,
    write_demo_webroot,
)
from tidehunt.detect.analytics.detector import AnalyticsDetector
from tidehunt.ingest import ingest
from tidehunt.sources.base import Artefact
from tidehunt.sources.iis_w3c import IisW3cSource
from tidehunt.sources.sniff import sniff

SHELL_REL = "aspnet_client/system_web/logo.aspx"
HIGH = {"high", "critical"}

Event = dict[str, Any]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], list[Path]]:
    """(evidence folder, IIS logs, web-root files)."""
    root = tmp_path_factory.mktemp("demo")
    evidence = root / "evidence"
    written = write_demo_evidence(evidence, include_web_logs=True)
    logs = [p for p in written if p.suffix == ".log"]
    web = write_demo_webroot(root / "webroot")
    return evidence, logs, web


@pytest.fixture(scope="module")
def sysmon_web(demo: tuple[Path, list[Path], list[Path]]) -> list[Event]:
    path = demo[0] / FILE_SYSMON_WEB
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def requests(demo: tuple[Path, list[Path], list[Path]]) -> list[dict[str, Any]]:
    """Every IIS log line as a ``web_access`` row, read as tidehunt reads it."""
    ctx = RunContext()
    tables = []
    for n, path in enumerate(demo[1]):
        art = Artefact(f"iis{n}", path, str(path))
        reader = sniff(art)
        assert reader is IisW3cSource, path
        tables += [pa.table(b.data) for b in reader().read(art, ctx)]
    assert ctx.warnings == []
    rows = pa.concat_tables(tables, promote_options="permissive").to_pylist()
    return sorted(rows, key=lambda r: (r["ts"], r["source_file"], r["line"]))


def _data(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = event["Event"]["EventData"]
    return data


def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


def _sysmon(events: list[Event], event_id: int) -> Iterator[dict[str, Any]]:
    for event in events:
        if event["Event"]["System"]["EventID"] == event_id:
            yield _data(event)


def _actor(rows: list[dict[str, Any]], method: str, stem: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["client_ip"] == ACTOR_WEB_IP and r["method"] == method
            and r["uri_stem"] == stem]


# --------------------------------------------------------------------------- (a) the logs


def test_iis_logs_one_per_utc_day_with_the_standard_header(
        demo: tuple[Path, list[Path], list[Path]]) -> None:
    evidence, logs, _web = demo
    days = []
    day = WINDOW_START.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < WINDOW_END:
        days.append(day)
        day += timedelta(days=1)
    assert [p.name for p in logs] == [f"u_ex{d:%y%m%d}.log" for d in days]
    assert all(p.parent == evidence.joinpath(*IIS_LOG_DIR.split("/")) for p in logs)
    for path, d in zip(logs, days, strict=True):
        lines = path.read_bytes().decode("ascii").split("\r\n")
        assert lines[:4] == ["#Software: Microsoft Internet Information Services 10.0",
                             "#Version: 1.0", f"#Date: {d:%Y-%m-%d} 00:00:00",
                             f"#Fields: {IIS_FIELDS}"]
        body = [ln for ln in lines[4:] if ln]
        assert body and all(ln.startswith(f"{d:%Y-%m-%d} ") for ln in body)
        assert all(len(ln.split(" ")) == len(IIS_FIELDS.split()) for ln in body)
    # the default call lists the Windows logs only, and writes the IIS logs all the same
    again = write_demo_evidence(evidence.parent / "again")
    assert [p.suffix for p in again] == [".json"] * 5
    assert sorted(p.name for p in (evidence.parent / "again").joinpath(
        *IIS_LOG_DIR.split("/")).iterdir()) == [p.name for p in logs]


def test_logs_are_read_without_warnings_and_name_the_sysmon_host(
        requests: list[dict[str, Any]], sysmon_web: list[Event]) -> None:
    computers = {e["Event"]["System"]["Computer"] for e in sysmon_web}
    assert len(computers) == 1
    assert {r["host"] for r in requests} == computers
    assert 800 <= len(requests) <= 4000
    assert all(WINDOW_START <= r["ts"] < WINDOW_END for r in requests)
    assert all(r["ts"] is not None and r["status"] is not None and r["bytes_sent"] is not None
               for r in requests)


def test_background_is_an_ordinary_busy_intranet(requests: list[dict[str, Any]]) -> None:
    staff = [r for r in requests if r["client_ip"] != ACTOR_WEB_IP]
    clients = {r["client_ip"] for r in staff}
    assert len(clients) >= 20
    assert all(c.startswith("10.") or c == "::1" for c in clients)
    agents = {r["user_agent"] for r in staff}
    assert len(agents) >= 3 and all(" " in a and "+" not in a for a in agents)
    statuses = {r["status"] for r in staff}
    assert {200, 302, 304, 404} <= statuses
    not_found = sum(r["status"] == 404 for r in staff)
    assert 3 <= not_found <= 0.05 * len(staff)
    # every business day is busy from 09:00 to 17:00 local time
    for day in range(3):
        lo = WINDOW_START + timedelta(days=day, hours=3)
        assert sum(lo <= r["ts"] < lo + timedelta(hours=8) for r in staff) > 150
    # form posts come from many staff, with steady answer sizes
    for stem in ("/Portal/Login.aspx", "/Portal/Search.aspx"):
        posts = [r for r in staff if r["method"] == "POST" and r["uri_stem"] == stem]
        assert len({r["client_ip"] for r in posts}) >= 3, stem
        ok = [r["bytes_sent"] for r in posts if r["status"] == 200]
        assert ok and max(ok) < 1.2 * min(ok), stem
    # nothing but the actor (and no-one at all in the query) carries the upload or shell
    assert {r["client_ip"] for r in requests
            if r["uri_stem"] in (UPLOAD_URI, WEBSHELL_URI)} == {ACTOR_WEB_IP}
    # adm.rlee checks the deployed portal from WEB01's console
    assert any(r["client_ip"] == "::1" and r["user"] == "adm.rlee" for r in requests)


def test_portal_is_compiled_by_the_request_that_waited_for_it(
        requests: list[dict[str, Any]], sysmon_web: list[Event]) -> None:
    """csc.exe runs under w3wp right after a request that took seconds to answer."""
    compiles = [_utc(d["UtcTime"]) for d in _sysmon(sysmon_web, 1)
                if d["Image"].lower().endswith("\\csc.exe")]
    assert len(compiles) == 2
    for ts in compiles:
        first = [r for r in requests if r["ts"] <= ts][-1]
        assert ts.replace(microsecond=0) - first["ts"] <= timedelta(seconds=1)  # whole seconds
        assert first["uri_stem"] == "/Portal/Default.aspx" and first["time_taken_ms"] > 1000
    # nobody else reached the portal between the msdeploy sync and the admin's check
    deployed = min(_utc(d["UtcTime"]) for d in _sysmon(sysmon_web, 11)
                   if d["TargetFilename"].startswith("C:\\inetpub\\wwwroot\\portal\\"))
    gap = [r for r in requests if deployed <= r["ts"] < compiles[1]]
    assert [(r["client_ip"], r["uri_stem"]) for r in gap] == [("::1", "/Portal/Default.aspx")]


# --------------------------------------------------------------------------- (b) (c) the story


def test_every_shell_command_follows_a_post_to_the_shell(
        requests: list[dict[str, Any]], sysmon_web: list[Event]) -> None:
    spawns = sorted(_utc(d["UtcTime"]) for d in _sysmon(sysmon_web, 1)
                    if d["ParentImage"].lower().endswith("\\w3wp.exe")
                    and d["Image"].lower().endswith("\\cmd.exe"))
    assert len(spawns) >= 13
    posts = _actor(requests, "POST", WEBSHELL_URI)
    assert all(r["status"] == 200 and r["uri_query"] is None for r in posts)
    free = list(posts)
    for spawn in spawns:
        # IIS logs whole seconds: the POST (100-600 ms earlier) is in the spawn's second or
        # the one before, never after it
        second = spawn.replace(microsecond=0)
        hits = [r for r in free if timedelta(0) <= second - r["ts"] <= timedelta(seconds=1)]
        assert hits, spawn
        free.remove(hits[0])
        # ... and was still being answered when cmd.exe started
        end = hits[0]["ts"] + timedelta(seconds=1, milliseconds=hits[0]["time_taken_ms"])
        assert end > spawn
    sizes = [r["bytes_sent"] for r in posts]
    assert max(sizes) >= 10 * min(sizes) and len(set(sizes)) >= 10
    assert all(300 <= r["bytes_received"] <= 1100 for r in posts
               if r["bytes_received"] < 100_000)


def test_upload_precedes_the_shell_file_and_the_actor_probed_first(
        requests: list[dict[str, Any]], sysmon_web: list[Event]) -> None:
    (written,) = [_utc(d["UtcTime"]) for d in _sysmon(sysmon_web, 11)
                  if d["TargetFilename"] == WEBSHELL_PATH
                  and d["Image"].lower().endswith("\\w3wp.exe")]
    assert written == STAGES[3].time.replace(microsecond=written.microsecond)
    (upload,) = [r for r in _actor(requests, "POST", UPLOAD_URI) if r["status"] == 200]
    assert timedelta(seconds=1) <= written - upload["ts"] <= timedelta(seconds=5)
    assert upload["ts"] + timedelta(seconds=1, milliseconds=upload["time_taken_ms"]) > written
    (check,) = _actor(requests, "GET", WEBSHELL_URI)
    assert timedelta(0) < check["ts"] - written < timedelta(seconds=15)
    assert check["status"] == 200 and check["bytes_sent"] < 400
    actor = [r for r in requests if r["client_ip"] == ACTOR_WEB_IP]
    assert actor[0]["ts"] < upload["ts"] - timedelta(minutes=10)
    probe = [r for r in actor if r["ts"] < upload["ts"]]
    assert 5 <= sum(r["status"] == 404 for r in probe) <= 15
    assert probe[-1]["uri_stem"] == UPLOAD_URI and probe[-1]["status"] == 400
    # China Chopper sends its commands in the body: nothing in any query string
    assert all(r["uri_query"] in (None, "type=rau", "ReturnUrl=%2fPortal%2fDefault.aspx")
               for r in actor)


# --------------------------------------------------------------------------- (d) web root


@pytest.fixture(scope="module")
def yara_pack() -> yara_x.Rules:
    with as_file(files("tidehunt") / "data/yara/webshells.yar") as path:
        return yara_x.compile(Path(path).read_text(encoding="utf-8"))


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def test_yara_pack_finds_the_shell_and_no_clean_file(
        demo: tuple[Path, list[Path], list[Path]], yara_pack: yara_x.Rules) -> None:
    web = demo[2]
    root = next(p for p in web[0].parents if (p / "aspnet_client").is_dir())
    matched = {}
    for path in web:
        rules = yara_x.Scanner(yara_pack).scan(path.read_bytes()).matching_rules
        matched[_rel(path, root)] = sorted(r.identifier for r in rules)
    assert matched.pop(SHELL_REL) == ["TH_Webshell_ChinaChopper_ASPX"]
    assert len(matched) >= 15
    assert {k: v for k, v in matched.items() if v} == {}


def test_web_root_tree_and_times(demo: tuple[Path, list[Path], list[Path]]) -> None:
    web = demo[2]
    root = next(p for p in web[0].parents if (p / "aspnet_client").is_dir())
    names = {_rel(p, root) for p in web}
    assert {"Default.aspx", "web.config", "Portal/Default.aspx", "Portal/Global.asax",
            "Portal/web.config", "Portal/Upload.ashx", "Portal/Search.aspx",
            "Portal/Login.aspx", "Portal/css/site.css", "Portal/js/site.js",
            "Portal/js/vendor.min.js", "Portal/bin/Portal.dll", SHELL_REL} <= names
    assert (root / "aspnet_client/system_web/4_0_30319").is_dir()
    for rel in names:
        data = (root / rel).read_bytes()
        if rel.endswith(".png"):
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
            size = struct.unpack(">I", data[8:12])[0]
            assert data[12:16] == b"IHDR" and zlib.crc32(data[12:16 + size]) == \
                struct.unpack(">I", data[16 + size:20 + size])[0]
        if rel.endswith(".dll"):
            assert data.startswith(b"MZ") and 2048 <= len(data) <= 65536
    handler = (root / "Portal/Upload.ashx").read_bytes()
    assert b"SaveAs" in handler and b"Process." not in handler and b"cmd.exe" not in handler
    shell = (root / SHELL_REL).read_bytes()
    assert shell.startswith(b'<%@ Page Language="Jscript"') and b'"unsafe"' in shell
    # times: the shell when w3wp wrote it, everything else months to days before
    mtime = {rel: datetime.fromtimestamp((root / rel).stat().st_mtime, UTC) for rel in names}
    assert abs(mtime.pop(SHELL_REL) - STAGES[3].time) < timedelta(seconds=1)
    assert all(t < WINDOW_START - timedelta(days=2) for t in mtime.values())
    assert max(mtime.values()) - min(mtime.values()) > timedelta(days=90)
    for folder in ("Portal/css", "Portal/js", "Portal/images"):
        near = [t for rel, t in mtime.items() if rel.rpartition("/")[0] == folder]
        assert len(near) >= 1 and max(near) - min(near) < timedelta(minutes=10), folder


def test_web_root_is_deterministic(tmp_path: Path) -> None:
    a = write_demo_webroot(tmp_path / "a", seed=40)
    b = write_demo_webroot(tmp_path / "b", seed=40)
    c = write_demo_webroot(tmp_path / "c", seed=41)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert [p.stat().st_mtime for p in a] == [p.stat().st_mtime for p in b]
    assert [p.read_bytes() for p in a] != [p.read_bytes() for p in c]
    logs = [write_demo_evidence(tmp_path / f"e{n}", seed=s, include_web_logs=True)[5:]
            for n, s in enumerate((40, 40, 41))]
    assert [p.read_bytes() for p in logs[0]] == [p.read_bytes() for p in logs[1]]
    assert [p.read_bytes() for p in logs[0]] != [p.read_bytes() for p in logs[2]]


# --------------------------------------------------------------------------- (e) analytics


@pytest.fixture(scope="module")
def findings(demo: tuple[Path, list[Path], list[Path]],
             tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    store = CaseStore(tmp_path_factory.mktemp("case") / "case", create=True)
    ctx = RunContext()
    ingest([str(p) for p in demo[1]], store, ctx, workers=1)
    assert ctx.warnings == []
    det = AnalyticsDetector()
    table = pa.Table.from_batches(list(det.run(store, RunContext())))
    assert det.stats.failed == []
    assert "rare_script_post" in det.stats.ran and "command_output_sizes" in det.stats.ran
    return table.select(["rule_id", "level", "summary", "host", "src", "dst",
                         "fields"]).to_pylist()


def test_analytics_name_the_shell_and_the_actor(findings: list[dict[str, Any]],
                                                sysmon_web: list[Event]) -> None:
    (computer,) = {e["Event"]["System"]["Computer"] for e in sysmon_web}
    for rule in ("th-analytic-0006", "th-analytic-0007"):
        hits = [f for f in findings if f["rule_id"] == rule and f["dst"] == WEBSHELL_URI]
        assert len(hits) == 1, rule
        (hit,) = hits
        assert hit["src"] == ACTOR_WEB_IP and hit["host"] == computer, rule
        assert WEBSHELL_URI in hit["summary"] and ACTOR_WEB_IP in hit["summary"], rule
    (sizes,) = [f for f in findings if f["rule_id"] == "th-analytic-0007"]
    assert sizes["level"] == "high"


def test_no_high_analytic_finding_about_another_uri(findings: list[dict[str, Any]]) -> None:
    loud = [f for f in findings if f["level"] in HIGH]
    assert loud
    for f in loud:
        assert f["dst"] == WEBSHELL_URI, f
        assert f["src"] == ACTOR_WEB_IP, f
    others = {(f["rule_id"], f["dst"]) for f in findings if f["dst"] != WEBSHELL_URI}
    # the exploited upload handler is rare too (only the actor posts to it): medium at most
    assert others <= {("th-analytic-0006", UPLOAD_URI)}
