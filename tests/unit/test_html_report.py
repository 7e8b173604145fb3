"""The HTML report in a real browser (Debian chromium, headless): findings, incidents and
charts render, evidence strings stay text, no script from the evidence runs, and a
screenshot of the overview is kept as a test artefact (test-artifacts/)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures import maldocs as M

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
HOSTILE_SUBJECT = "<script>document.documentElement.setAttribute('data-pwned','1')</script>"
HOSTILE_NAME = 'Maritime Review <img src=x onerror="document.title=\'pwned\'">'
HOSTILE_URL = "javascript:document.title='pwned2'"


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    if os.environ.get("CI") or os.environ.get("TIDEHUNT_REQUIRE_CORPUS"):
        pytest.fail("chromium is missing; scripts/install-chromium.sh (run by 'make test') "
                    "installs Debian's package")
    pytest.skip("chromium not installed (scripts/install-chromium.sh installs it)")


def _run(exe: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-extensions", f"--user-data-dir={tmp / 'profile'}",
         *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    from tidehunt.cli.main import main

    out = tmp_path_factory.mktemp("html") / "demo"
    assert main(["-q", "demo", "-o", str(out)]) == 0
    # an attacker-written mail: markup in the subject and display name, a javascript: link
    ev = out / "hostile"
    ev.mkdir()
    (ev / "hostile.eml").write_bytes(M.eml(
        f"{HOSTILE_SUBJECT} {HOSTILE_URL}", f'"{HOSTILE_NAME}" <x@maritime-reveiw.example>',
        "j.smith@corp.example",
        f"Open {HOSTILE_URL} or http://maritime-reveiw.example/x", [
            ("<b>bold</b>.hta", M.hta(), "application/octet-stream")],
        auth="spf=pass dkim=none dmarc=none", date="Tue, 06 Oct 2026 00:50:00 +0000"))
    assert main(["-q", "hunt", str(ev), "-o", str(out / "case"), "--org",
                 str(out / "org.yaml")]) == 0
    path = out / "case" / "report.html"
    assert path.is_file()
    return path


def test_page_is_self_contained_and_escapes_evidence(report_html: Path):
    html = report_html.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no fetches
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert html.count("<script") == 2  # the data block and the page's own script
    assert HOSTILE_SUBJECT not in html and HOSTILE_NAME not in html
    assert 'href="javascript:' not in html.lower()


def test_chromium_renders_findings_incidents_and_charts(report_html: Path, tmp_path: Path):
    exe = _chromium()
    res = _run(exe, tmp_path, "--dump-dom", report_html.as_uri())
    dom = res.stdout
    assert res.returncode == 0 and "<html" in dom, res.stderr[-2000:]
    assert 'data-rendered="1"' in dom  # the page's own script ran
    html_tag = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-rendered="1"' in html_tag and "data-pwned" not in html_tag  # theirs did not
    assert "<title>pwned" not in dom
    rows = re.findall(r"<tr><td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td>", dom)
    assert len(rows) > 50
    assert re.search(r'class="inc" id="INC-[0-9a-f]{10}"', dom)
    assert len(re.findall(r'<rect class="bar"', dom)) > 5
    assert 'class="matrix"' in dom and "T1566.001" in dom
    # the hostile strings are there, as text
    assert "&lt;script&gt;document.documentElement.setAttribute" in dom
    assert "&lt;img src=x onerror=" in dom
    assert "javascript:document.title=" in dom and 'href="javascript:' not in dom


def test_screenshot_of_the_overview(report_html: Path, tmp_path: Path):
    exe = _chromium()
    shot = tmp_path / "report-overview.png"
    res = _run(exe, tmp_path, f"--screenshot={shot}", "--window-size=1400,1600",
               "--hide-scrollbars", report_html.as_uri())
    assert shot.is_file(), res.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "report-overview.png")


def test_matrix_pairs_counted_in_bulk_as_per_row():
    import random

    import pyarrow as pa

    from tidehunt.render.html import _list_pairs, _list_pairs_py

    rng = random.Random(4)
    tacs = ["execution", "persistence", "exfiltration"]
    techs = ["T1059.001", "T1053.002", "T1567.002", "T1105"]

    def lists(pool):
        return [None if rng.random() < 0.1 else rng.sample(pool, rng.randint(0, 2))
                for _ in range(3000)]

    t = pa.table({"tactics": pa.array(lists(tacs), pa.list_(pa.string())),
                  "techniques": pa.array(lists(techs), pa.list_(pa.string()))})
    assert _list_pairs(t) == _list_pairs_py(t)
    assert sum(_list_pairs(t).values()) == 3000
    # items the text keys cannot carry: counted row by row, the same
    odd = pa.table({"tactics": pa.array([[""], ["a\x1fb"], ["a"]], pa.list_(pa.string())),
                    "techniques": pa.array([["T1"], ["T2"], [None]], pa.list_(pa.string()))})
    assert _list_pairs(odd) == _list_pairs_py(odd)
    assert _list_pairs(odd)[(("",), ("T1",))] == 1
