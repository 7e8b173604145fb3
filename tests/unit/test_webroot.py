"""Web-root scan on generated site trees: every planted shell, no clean file, limits."""

from __future__ import annotations

import hashlib
import os
import shutil
import time

import pyarrow as pa
import pytest

from tests.fixtures.webroots import build_webroot
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.detect.analytics.detector import AnalyticsDetector
from tidehunt.model.rule import Severity
from tidehunt.webroot import Limits, compile_yara, kind_of, scan_webroot


def _scan(tmp_path, root, **kw):
    store = CaseStore(tmp_path / "case", create=True)
    ctx = RunContext()
    res = scan_webroot(root, store, ctx, **kw)
    det = AnalyticsDetector()
    findings = pa.Table.from_batches(list(det.run(store, RunContext())))
    assert det.stats.failed == []
    return store, res, findings.to_pylist()


def _by_file(findings):
    out: dict[str, list[dict]] = {}
    for f in findings:
        for e in f["evidence"]:
            if e["table"] == "file":
                out.setdefault(e["locator"], []).append(f)
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    truth = build_webroot(root)
    return root, truth


def test_every_planted_shell_and_no_clean_file_at_high(tmp_path, site):
    root, truth = site
    store, res, findings = _scan(tmp_path, root)
    assert res.files == len(truth) and store.rows("file") == len(truth)
    flagged = _by_file(findings)
    high = {p for p, fs in flagged.items()
            if any(Severity.parse(f["level"]) >= Severity.HIGH for f in fs)}
    shells = {p for p, v in truth.items() if v == "shell"}
    assert shells <= high, sorted(shells - high)
    assert not (high - shells), sorted(high - shells)
    yara = [f for f in findings if f["engine"] == "yara"]
    assert {f["rule_id"] for f in yara} <= {f"th-yara-{i:04d}" for i in range(1, 100)}
    assert all("T1505.003" in f["techniques"] for f in yara)


def test_rescan_of_the_same_tree_adds_nothing(tmp_path, site):
    root, truth = site
    store = CaseStore(tmp_path / "case", create=True)
    scan_webroot(root, store, RunContext())
    again = scan_webroot(root, store, RunContext())
    assert again.already_in_case and store.rows("file") == len(truth)


def test_content_decides_the_type():
    assert kind_of(b"GIF89a\x01\x00<?php eval($_POST['x']); ?>", "gif") == "php"
    assert kind_of(b"\x89PNG\r\n\x1a\n\x00\x00", "php") == "image"
    assert kind_of(b'<%@ Page Language="C#" %><html>', "txt") == "aspx"
    assert kind_of(b"", "php") == "empty"


def test_links_are_not_followed_and_limits_hold(tmp_path):
    root = tmp_path / "www"
    (root / "b").mkdir(parents=True)
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the site")
    (root / "escape.php").symlink_to(outside)
    (root / "big.php").write_bytes(b"<?php echo 1; ?>" + b" " * 5000)
    for i in range(5):
        (root / "b" / f"f{i}.html").write_text("<html></html>")
    store = CaseStore(tmp_path / "case", create=True)
    ctx = RunContext()
    res = scan_webroot(root, store, ctx, limits=Limits(max_files=4, max_file_bytes=1024))
    assert res.files == 4 and res.skipped_links == 1
    rec = next(iter(store.artefacts.values()))
    msgs = {w["message"] for w in rec["warnings"]}
    assert "symbolic link not followed (it points outside the web root)" in msgs
    assert any(m.startswith("file limit reached") for m in msgs)
    t = store.sql("SELECT path, scan_note, sha256 FROM file WHERE path = 'big.php'")
    note = t.column("scan_note")[0].as_py()
    assert note.startswith("content scanned up to 1024")
    assert t.column("sha256")[0].as_py() is not None  # the whole file is still hashed


def test_baseline_diff_names_new_and_modified_scripts(tmp_path):
    clean = tmp_path / "clean"
    (clean / "app").mkdir(parents=True)
    (clean / "app" / "index.php").write_text("<?php echo 'hi'; ?>")
    (clean / "app" / "about.php").write_text("<?php echo 'about'; ?>")
    live = tmp_path / "live"
    shutil.copytree(clean, live)
    (live / "app" / "about.php").write_text("<?php echo 'about us'; ?>")
    (live / "app" / "help.php").write_text("<?php echo 'help'; ?>")
    _, _, findings = _scan(tmp_path, live, baseline=str(clean))
    got = {f["summary"].split(" ")[0]: f["level"] for f in findings
           if f["rule_id"] == "th-analytic-0018"}
    assert got == {"app/about.php": "high", "app/help.php": "high"}
    # a sha256sum-style hash list works the same way
    lst = tmp_path / "hashes.txt"
    lst.write_text("".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  ./{p.relative_to(clean).as_posix()}\n"
        for p in sorted(clean.rglob("*.php"))))
    _, _, findings = _scan(tmp_path / "y", live, baseline=str(lst))
    assert {f["summary"].split(" ")[0] for f in findings
            if f["rule_id"] == "th-analytic-0018"} == {"app/about.php", "app/help.php"}


def test_orphan_compiled_jsp_and_timestomp(tmp_path):
    root = tmp_path / "tomcat"
    app = root / "webapps" / "ROOT"
    work = root / "work" / "Catalina" / "localhost" / "ROOT" / "org" / "apache" / "jsp"
    app.mkdir(parents=True)
    work.mkdir(parents=True)
    (app / "index.jsp").write_text('<%@ page contentType="text/html" %><p>hi</p>')
    for name in ("index_jsp.class", "gone_002dshell_jsp.class"):
        (work / name).write_bytes(b"\xca\xfe\xba\xbe\x00\x00\x00\x34")
    for i in range(4):
        (app / f"page{i}.html").write_text("<html></html>")
    old = time.time() - 30 * 86400
    os.utime(app / "page2.html", (old, old))  # mtime set back; ctime stays now
    _, _, findings = _scan(tmp_path, root)
    orphan = [f for f in findings if f["rule_id"] == "th-analytic-0016"]
    assert len(orphan) == 1 and "ROOT/gone-shell.jsp" in orphan[0]["summary"]
    stomp = [f["summary"].split(":")[0] for f in findings if f["rule_id"] == "th-analytic-0015"]
    assert stomp == ["webapps/ROOT/page2.html"]


def test_flagged_file_requested_in_the_access_log(tmp_path, site):
    root, truth = site
    shell = "opt/tomcat/webapps/ROOT/horizon.jsp"
    assert truth[shell] == "shell"
    log = tmp_path / "ev" / "localhost_access_log.txt"
    log.parent.mkdir()
    log.write_text("".join(
        f'198.51.100.{i} - - [01/May/2024:10:00:{i:02d} +0000] "GET /index.jsp HTTP/1.1" '
        f"200 512\n" for i in range(10))
        + '203.0.113.9 - - [01/May/2024:10:01:00 +0000] "POST /horizon.jsp HTTP/1.1" 200 77\n')
    from tidehunt.ingest import ingest

    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(log)], store, RunContext(), workers=1)
    scan_webroot(root, store, RunContext())
    det = AnalyticsDetector()
    rows = pa.Table.from_batches(list(det.run(store, RunContext()))).to_pylist()
    hit = [r for r in rows if r["rule_id"] == "th-analytic-0019"]
    assert [(r["src"], r["dst"]) for r in hit] == [("203.0.113.9", shell)]
    assert hit[0]["level"] == "critical"


def test_corpus_yara_rules_load_as_an_extra_pack(corpus):
    _, files, errors = compile_yara([corpus("yara/signature-base"),
                                     corpus("yara/nsa-mitigating-web-shells")])
    assert errors == []
    assert len(files) == 1 + 15 + 2


def test_a_broken_extra_rule_file_is_reported_not_fatal(tmp_path):
    bad = tmp_path / "rules"
    bad.mkdir()
    (bad / "broken.yar").write_text("rule x { condition: nope }")
    (bad / "fine.yar").write_text('rule y { strings: $a = "zz" condition: $a }')
    _, files, errors = compile_yara([bad])
    assert [e["file"] for e in errors] == [str(bad / "broken.yar")]
    assert str(bad / "fine.yar") in files


def test_case_folder_inside_the_web_root_is_not_scanned(tmp_path):
    """``scan-webroot /var/www -o /var/www/case``: the case's own files are not web
    content; a web root inside the case folder is refused."""
    from tidehunt.errors import NoUsableInput

    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("<html></html>")
    store = CaseStore(root / "case", create=True)
    ctx = RunContext()
    res = scan_webroot(root, store, ctx)
    assert res.files == 1
    paths = store.sql("SELECT path FROM file").column("path").to_pylist()
    assert paths == ["index.html"]
    warned = [w for a in store.artefacts.values() for w in a.get("warnings", [])]
    assert [w["locators"] for w in warned if "case folder" in w["message"]] == [["case"]]
    with pytest.raises(NoUsableInput, match="case folder"):
        scan_webroot(root / "case", store, RunContext())
