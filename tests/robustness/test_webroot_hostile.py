"""A hostile web root (``--webroot``): symbolic-link loops, links out of the tree, and a
tree that changes while it is scanned (a file deleted, a file swapped for a link to
``/etc/passwd`` or for a FIFO, a folder removed). The scan finishes, each oddity is a
warning naming the path, nothing is read through a link, and every other file is scanned.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

import tidehunt.webroot as W
from tests.fuzz._contract import no_hang
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext

SHELL = b'<?php if (isset($_POST["c"])) { system($_POST["c"]); } eval(base64_decode("x")); ?>'


def _tree(root: Path) -> None:
    (root / "app" / "lib").mkdir(parents=True)
    (root / "uploads" / "tmp").mkdir(parents=True)
    (root / "index.html").write_bytes(b"<html><body>hello</body></html>")
    (root / "app" / "shell.php").write_bytes(SHELL)
    (root / "app" / "lib" / "util.js").write_bytes(b"var a = 1;\n")
    for name in ("vanish.txt", "swap.php", "fifo.txt"):
        (root / "uploads" / name).write_bytes(b"placeholder " * 10)
    (root / "uploads" / "tmp" / "x.txt").write_bytes(b"x")
    (root / "loop_a").symlink_to("loop_b")  # a -> b -> a
    (root / "loop_b").symlink_to("loop_a")
    (root / "self").symlink_to("self")              # itself
    (root / "app" / "lib" / "up").symlink_to("..")  # a folder loop back to app/
    (root / "uploads" / "root").symlink_to(root)    # absolute, back to the root
    (root / "etc").symlink_to("/etc")               # out of the tree
    (root / "dangling").symlink_to("missing")


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    base = tmp_path_factory.mktemp("webroot")
    root = base / "www"
    root.mkdir()
    _tree(root)
    real_iter = W.iter_tree

    def changing(top, ctx, aid, result, limits, skip=None):
        """The tree changes between listing a file and reading it."""
        for rel, path, st in real_iter(top, ctx, aid, result, limits, skip):
            if rel == "uploads/vanish.txt":
                path.unlink()
            elif rel == "uploads/swap.php":
                path.unlink()
                path.symlink_to("/etc/passwd")
            elif rel == "uploads/fifo.txt":
                path.unlink()
                os.mkfifo(path)
            yield rel, path, st
            if rel == "uploads/vanish.txt":  # uploads/ is listed: tmp/ goes before its walk
                shutil.rmtree(top / "uploads" / "tmp")

    store = CaseStore(base / "case", create=True)
    ctx = RunContext()
    with pytest.MonkeyPatch.context() as mp, no_hang(20):
        mp.setattr(W, "iter_tree", changing)
        res = W.scan_webroot(root, store, ctx)
    rec = next(iter(store.artefacts.values()))
    rows = {r["path"]: r for r in store.sql("SELECT * FROM file").to_pylist()}
    return res, rec, rows


def _warnings(rec, needle):
    return [w for w in rec["warnings"] if needle in w["message"]]


def test_links_and_loops_are_not_followed(scanned):
    res, rec, rows = scanned
    links = {x for w in _warnings(rec, "symbolic link not followed") for x in w["locators"]}
    assert {"loop_a", "loop_b", "self", "app/lib/up", "uploads/root", "etc",
            "dangling"} <= links
    out = _warnings(rec, "points outside the web root")
    assert out and "etc" in out[0]["locators"]
    assert res.skipped_links == 7
    assert not any(p.startswith(("etc/", "loop", "self", "app/lib/up/", "uploads/root/"))
                   for p in rows)  # nothing under a link was listed
    assert len(rows) == len(set(rows))


def test_every_other_file_is_scanned_once(scanned):
    _, _, rows = scanned
    for p in ("index.html", "app/shell.php", "app/lib/util.js"):
        assert rows[p]["sha256"] and rows[p]["scan_note"] is None, rows[p]
    assert rows["app/shell.php"]["sha256"] == hashlib.sha256(SHELL).hexdigest()
    assert rows["app/shell.php"]["server_script"] and rows["app/shell.php"]["yara"]


def test_a_file_that_vanished_is_a_warning(scanned):
    _, rec, rows = scanned
    gone = _warnings(rec, "went away during the scan")
    assert gone and gone[0]["locators"] == ["uploads/vanish.txt"]
    assert rows["uploads/vanish.txt"]["sha256"] is None  # listed, not invented


def test_a_file_swapped_for_a_link_is_not_read_through_it(scanned):
    _, rec, rows = scanned
    swapped = _warnings(rec, "replaced by a symbolic link")
    assert swapped and swapped[0]["locators"] == ["uploads/swap.php"]
    assert rows["uploads/swap.php"]["sha256"] is None
    passwd = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
    assert passwd not in {r["sha256"] for r in rows.values()}


def test_a_file_swapped_for_a_fifo_does_not_block(scanned):
    _, rec, rows = scanned
    fifo = _warnings(rec, "no longer a regular file")
    assert fifo and fifo[0]["locators"] == ["uploads/fifo.txt"]
    assert rows["uploads/fifo.txt"]["sha256"] is None


def test_a_folder_removed_during_the_scan_is_a_warning(scanned):
    _, rec, rows = scanned
    gone = _warnings(rec, "folder not readable")
    assert gone and gone[0]["locators"] == ["uploads/tmp"]
    assert "uploads/tmp/x.txt" not in rows


def test_a_named_pipe_listed_in_the_tree_is_named_not_read(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.php").write_bytes(SHELL)
    os.mkfifo(root / "upload.php")  # opening it would wait for a writer
    store = CaseStore(tmp_path / "case", create=True)
    with no_hang(20):
        res = W.scan_webroot(root, store, RunContext())
    rec = next(iter(store.artefacts.values()))
    assert [w["locators"] for w in _warnings(rec, "not a regular file (named pipe)")] \
        == [["upload.php"]]
    rows = {r["path"] for r in store.sql("SELECT path FROM file").to_pylist()}
    assert rows == {"index.php"} and res.files == 1
