"""Files in the evidence that are not regular files: a named pipe (opening it would wait
for a writer for ever), a socket, a link to a device. None is read, each is named in a
warning in the case's manifest, and the regular files beside them are ingested."""

from __future__ import annotations

import os
import socket

import pytest

from tests.fuzz._contract import no_hang
from tests.robustness.helpers import log_bytes
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.ingest import ingest


def _case_warnings(store: CaseStore) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for w in store.manifest.get("warnings", []):
        out.setdefault(w["message"], []).extend(w["locators"])
    return out


def test_fifo_socket_and_device_link_are_named_not_read(tmp_path):
    ev = tmp_path / "evidence"
    (ev / "sub").mkdir(parents=True)
    (ev / "access.log").write_bytes(log_bytes("access_log", 20))
    os.mkfifo(ev / "sub" / "pipe.json")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(ev / "agent.sock"))
    except OSError as exc:  # pragma: no cover - some sandboxes forbid it
        pytest.skip(f"cannot bind a Unix socket here: {exc}")
    (ev / "zero.evtx").symlink_to("/dev/zero")
    try:
        store = CaseStore(tmp_path / "case", create=True)
        with no_hang(60):
            res = ingest([str(ev)], store, RunContext(), workers=1)
    finally:
        sock.close()
    assert (res.ingested, res.failed, res.records) == (1, 0, 20)
    got = _case_warnings(store)
    assert got["not a regular file (named pipe); not read"] == [str(ev / "sub" / "pipe.json")]
    assert got["not a regular file (socket); not read"] == [str(ev / "agent.sock")]
    assert got["symbolic link not followed"] == [str(ev / "zero.evtx")]
    displays = {a["display"] for a in store.artefacts.values()}
    assert not any(d.endswith(("pipe.json", "agent.sock", "zero.evtx")) for d in displays)


def test_fifo_given_by_name_is_refused_with_its_kind(tmp_path):
    ev = tmp_path / "evidence"
    ev.mkdir()
    (ev / "access.log").write_bytes(log_bytes("access_log", 5))
    os.mkfifo(ev / "pipe.json")
    store = CaseStore(tmp_path / "case", create=True)
    with no_hang(60):
        res = ingest([str(ev / "pipe.json"), str(ev / "access.log")], store, RunContext(),
                     workers=1)
    assert (res.ingested, res.records) == (1, 5)
    got = _case_warnings(store)
    assert got["not a regular file (named pipe); not read"] == [str(ev / "pipe.json")]


def test_empty_files_are_named_as_empty_and_errors_name_their_file_once(tmp_path):
    """A 0-byte log, a file of blank space or an empty JSON array is said to hold nothing,
    not "no reader recognises this file"; a file no reader can open is named once in the
    run's error (the reader's message already names it), with the others counted."""
    from tidehunt.errors import NoUsableInput

    ev = tmp_path / "evidence"
    ev.mkdir()
    (ev / "Security.evtx").write_bytes(b"")
    (ev / "export.json").write_bytes(b"")
    (ev / "tiny.evtx").write_bytes(b"ElfFile\x00")  # a header cut short
    (ev / "none.json").write_bytes(b"\xef\xbb\xbf [\r\n]\r\n")  # an export of no events
    (ev / "blank.jsonl").write_bytes(b"\n \n\t\n")
    store = CaseStore(tmp_path / "case", create=True)
    with pytest.raises(NoUsableInput) as exc:
        ingest([str(ev)], store, RunContext(), workers=1)
    msg = str(exc.value)
    assert msg.count(str(ev / "tiny.evtx")) == 1, msg
    assert "4 file(s) empty or of no type tidehunt reads" in msg
    store = CaseStore(tmp_path / "case")
    got = {a["display"]: [w["message"] for w in a["warnings"]]
           for a in store.artefacts.values()}
    assert got[str(ev / "Security.evtx")] == got[str(ev / "export.json")] \
        == ["empty file (0 bytes); nothing to ingest"]
    assert got[str(ev / "none.json")] == [
        "file holds an empty JSON array or object; nothing to ingest"]
    assert got[str(ev / "blank.jsonl")] == ["file holds only blank space; nothing to ingest"]
