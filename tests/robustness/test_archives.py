"""Hostile archives: zip bombs (a high ratio, a header that lies about the size), deep
nesting, too many members, and member names that leave the folder (``../``, absolute,
drive letters), in evidence zips of Windows JSON and in mail attachments (zip, tar.gz,
7z), plus attachment file names that are paths.

Nothing is unpacked to a path named by the archive, limits stop the bombs in bounded
memory, each refusal is a warning or an indicator naming the member, and every event or
member that is fine is still read.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from tests.fixtures import maldocs as M
from tests.robustness.helpers import log_lines, read
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.ingest import ingest
from tidehunt.sources import windows_json

MiB = 1 << 20
HOSTILE = ["../../evil.json", "/etc/evil.json", "C:\\Windows\\evil.json", "..\\..\\evil2.json"]


def _events(n: int, first: int = 1) -> bytes:
    return ("\n".join(log_lines("windows_json", n, first)) + "\n").encode()


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ---- evidence zips (windows_json) -----------------------------------------------------
def test_zip_bomb_members_are_refused_and_the_rest_read(tmp_path):
    p = tmp_path / "evidence.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("a.json", _events(5))
        with zf.open("zeros.json", "w", force_zip64=True) as m:  # 64 MiB -> ~64 KiB
            for _ in range(64):
                m.write(b'{"EventID": 1}' + b" " * (MiB - 14))
        zf.writestr("b.json", _events(5, 6))
    tracemalloc.start()
    try:
        table, ctx, _ = read(p, display="evidence.zip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sorted(table.column("record_id").to_pylist()) == list(range(1, 11))
    bomb = [w for w in ctx.warnings if "zip bomb" in w.message]
    assert bomb and bomb[0].locators == ("zeros.json",) and bomb[0].path == "evidence.zip"
    assert peak < 32 * MiB


def _lying_zip(path: Path, declared: int) -> None:
    """A member whose headers say ``declared`` bytes while it inflates to 16 MiB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.json", _events(3))
        zf.writestr("lie.json", b'{"EventID": 1}\n' + b" " * (16 * MiB))
        zf.writestr("b.json", _events(3, 4))
    data = bytearray(path.read_bytes())
    # (signature, offset of the uncompressed size, of the name length, of the name)
    for sig, size_at, len_at, name_at in ((b"PK\x03\x04", 22, 26, 30),
                                          (b"PK\x01\x02", 24, 28, 46)):
        at = data.find(sig)
        while at >= 0:
            (n,) = struct.unpack_from("<H", data, at + len_at)
            if data[at + name_at:at + name_at + n] == b"lie.json":
                struct.pack_into("<I", data, at + size_at, declared)
            at = data.find(sig, at + 4)
    path.write_bytes(bytes(data))


def test_zip_member_that_lies_about_its_size(tmp_path):
    p = tmp_path / "lie.zip"
    _lying_zip(p, 100)
    tracemalloc.start()
    try:
        table, ctx, _ = read(p, display="lie.zip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sorted(table.column("record_id").to_pylist()) == [1, 2, 3, 4, 5, 6]
    assert any("lie.json" in w.locators and w.path == "lie.zip" for w in ctx.warnings)
    assert peak < 16 * MiB  # read to the declared size, never to what it inflates to


def test_nested_zip_in_evidence_is_named_not_unpacked(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("deep.json", _events(2, 100))
    p = tmp_path / "outer.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("a.json", _events(3))
        zf.writestr("inner.zip", inner.getvalue())
    table, ctx, _ = read(p, display="outer.zip")
    assert sorted(table.column("record_id").to_pylist()) == [1, 2, 3]
    assert any("not a Windows event JSON export" in w.message and
               w.locators == ("inner.zip",) for w in ctx.warnings)


def test_traversal_names_in_evidence_zip_are_only_labels(tmp_path):
    ev = tmp_path / "evidence"
    ev.mkdir()
    with zipfile.ZipFile(ev / "events.zip", "w") as zf:
        for i, name in enumerate(HOSTILE):
            zf.writestr(name, _events(2, 10 * i + 1))
    before = _files(tmp_path)
    store = CaseStore(tmp_path / "case", create=True)
    res = ingest([str(ev)], store, RunContext(), workers=1)
    assert res.ingested == 1 and res.records == 8
    locs = store.sql("SELECT _locator FROM windows").column("_locator").to_pylist()
    assert {loc.rsplit(":line ", 1)[0] for loc in locs} == set(HOSTILE)  # verbatim labels
    after = _files(tmp_path) - before
    assert all(p.startswith("case") for p in after), sorted(after)
    assert not list(Path("/etc").glob("evil*"))


def test_too_many_members(tmp_path, monkeypatch):
    monkeypatch.setattr(windows_json, "ZIP_MAX_MEMBERS", 50)
    p = tmp_path / "many.zip"
    with zipfile.ZipFile(p, "w") as zf:
        for i in range(60):
            zf.writestr(f"m{i:03d}.json", _events(1, i + 1))
    table, ctx, _ = read(p, display="many.zip")
    assert table.num_rows == 50
    assert any("zip has 60 members; only the first 50 are read" in w.message
               for w in ctx.warnings)


# ---- mail attachments -----------------------------------------------------------------
def _tgz(members: dict[str, bytes], links: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        for name, target in links.items():
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            tf.addfile(ti)
    return buf.getvalue()


def _seven_zip(members: dict[str, bytes]) -> bytes:
    """A 7z written by libarchive, which (unlike py7zr) keeps any member name."""
    import libarchive

    buf = bytearray()

    def write(block: bytes) -> int:
        buf.extend(block)
        return len(block)

    with libarchive.custom_writer(write, "7zip") as w:
        for name, data in members.items():
            w.add_file_from_memory(name, len(data), data)
    return bytes(buf)


PAYLOAD = b"@echo off\r\necho test\r\n"
NAMES = {"../../evil.cmd": PAYLOAD, "/etc/cron.d/evil": PAYLOAD,
         "C:\\Windows\\System32\\evil.dll": PAYLOAD, "readme.txt": b"hello\r\n"}


@pytest.fixture(scope="module")
def mailcase(tmp_path_factory):
    root = tmp_path_factory.mktemp("mail")
    ev = root / "evidence"
    ev.mkdir()

    def mail(name: str, att: str, data: bytes, mime: str = "application/zip") -> None:
        (ev / name).write_bytes(M.eml(f"Docs {name}", "Ops <ops@port.example>",
                                      "j.smith@corp.example", "see attached",
                                      [(att, data, mime)]))

    mail("bomb.eml", "manifest.zip", M.zip_bomb(64 * MiB))
    mail("nested.eml", "layers.zip", M.nested_zip(12))
    mail("zip.eml", "logs.zip", M.zip_with(NAMES))
    mail("tar.eml", "logs.tar.gz", _tgz(NAMES, {"link": "/etc/passwd", "../up": "/"}),
         "application/gzip")
    mail("7z.eml", "logs.7z", _seven_zip(NAMES), "application/x-7z-compressed")
    mail("name.eml", "../../../../tmp/evil.exe", b"MZ" + b"\x00" * 200,
         "application/octet-stream")
    mail("abs.eml", "/etc/cron.d/evil", PAYLOAD, "text/plain")
    before = _files(root)
    store = CaseStore(root / "case", create=True)
    tracemalloc.start()
    try:
        res = ingest([str(ev)], store, RunContext(), workers=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    rows = store.sql("SELECT * FROM mail_attachment").to_pylist()
    return root, store, res, rows, _files(root) - before, peak


def _by_mail(store: CaseStore, rows: list[dict]) -> dict[str, list[dict]]:
    name = {aid: rec["display"].rsplit("/", 1)[-1] for aid, rec in store.artefacts.items()}
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(name[r["_artefact"]], []).append(r)
    return out


def test_every_mail_is_read(mailcase):
    _, store, res, _, _, _ = mailcase
    assert res.failed == 0 and res.ingested == 7
    assert store.rows("mail") == 7


def test_nothing_is_written_outside_the_case(mailcase):
    root, _, _, _, new, _ = mailcase
    assert all(p.startswith("case") for p in new), sorted(p for p in new
                                                           if not p.startswith("case"))
    assert not list(Path("/tmp").glob("evil*")) and not list(Path("/etc/cron.d").glob("evil*"))
    copies = [p for p in (root / "case" / "extracted").rglob("*") if p.is_file()]
    assert copies and all(p.name == hashlib.sha256(p.read_bytes()).hexdigest()
                          for p in copies)  # content-addressed, never by a hostile name
    assert sum(p.stat().st_size for p in copies) < 4 * MiB  # none of the bomb's 64 MiB


def test_bomb_is_stopped_in_bounded_memory(mailcase):
    _, store, _, rows, _, peak = mailcase
    bomb = _by_mail(store, rows)["bomb.eml"]
    assert "archive_bomb" in (bomb[0]["indicators"] or "")
    assert all((r["size"] or 0) < 2 * MiB for r in bomb)
    assert peak < 48 * MiB, f"{peak / MiB:.0f} MiB for a 64 MiB bomb"


def test_deep_nesting_stops_at_the_limit(mailcase):
    _, store, _, rows, _, _ = mailcase
    nested = _by_mail(store, rows)["nested.eml"]
    assert max(r["depth"] for r in nested) == 5
    assert any("archive_too_deep" in (r["indicators"] or "") for r in nested)


@pytest.mark.parametrize("mail", ["zip.eml", "tar.eml", "7z.eml"])
def test_traversal_names_are_reported_and_members_analysed(mailcase, mail):
    _, store, _, rows, _, _ = mailcase
    got = _by_mail(store, rows)[mail]
    flagged = [r for r in got if "archive_traversal" in (r["indicators"] or "")]
    assert flagged, [r["indicators"] for r in got]
    raw = {r["filename_raw"] for r in got}
    assert {"../../evil.cmd", "/etc/cron.d/evil", "readme.txt"} <= raw  # each one read
    payload = hashlib.sha256(PAYLOAD).hexdigest()
    assert sum(1 for r in got if r["sha256"] == payload) >= 3
    assert all("/" not in (r["extracted"] or "x/").rsplit("/", 1)[-1] for r in got)


def test_attachment_names_that_are_paths(mailcase):
    _, store, _, rows, _, _ = mailcase
    by = _by_mail(store, rows)
    for mail, raw in (("name.eml", "../../../../tmp/evil.exe"), ("abs.eml", "/etc/cron.d/evil")):
        r = by[mail][0]
        assert r["filename_raw"] == raw  # kept verbatim for the analyst
        assert "/" not in r["filename"] and ".." not in r["filename"]
        assert r["extracted"] is None or r["extracted"].endswith(r["sha256"])
    json.dumps(rows, default=str)  # the rows serialise (no bytes smuggled into columns)
