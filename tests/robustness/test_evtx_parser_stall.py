"""A damaged EVTX file is parsed in a child process, so a parser that loops forever on a
chunk (as the Rust ``evtx`` 0.14.0 does on a file the differential fuzz harness found)
cannot hang the run: after ``stall_seconds`` without a record the child is killed, the
records it sent are kept, and one warning names the file and the last record read.

The stall and the crash are played by stand-in children speaking the frame protocol of
``tidehunt.sources._evtx_child``; the real child is checked against the in-process parser
on the corpus's damaged files.
"""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.conftest import corpus_path
from tests.robustness.helpers import read
from tidehunt.errors import SourceError
from tidehunt.sources import evtx as evtx_mod
from tidehunt.sources.evtx import EvtxSource

#: An EVTX file whose header is cut short: damaged, so it is parsed in a child.
CUT = b"ElfFile\x00" + b"\x00" * 60


def _event(rid: int) -> bytes:
    return orjson.dumps({"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
        "EventID": 1, "EventRecordID": rid, "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "ws01.example", "TimeCreated": {"#attributes": {
            "SystemTime": "2026-11-30T10:00:00.000000Z"}}},
        "EventData": {"Image": f"C:\\Windows\\System32\\cmd{rid}.exe"}}})


def _frames(n: int) -> bytes:
    out = b""
    for rid in range(1, n + 1):
        data = _event(rid)
        out += struct.pack("<cI", b"R", len(data) + 8) + struct.pack("<Q", rid) + data
    return out


def _child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    """A stand-in child: writes ``FRAMES`` (the frames of two records) then runs ``body``."""
    script = tmp_path / "child.py"
    script.write_text(
        "import os, signal, sys, time\n"
        f"FRAMES = {_frames(2)!r}\n"
        "sys.stdout.buffer.write(FRAMES); sys.stdout.buffer.flush()\n" + body)
    monkeypatch.setattr(evtx_mod, "CHILD_COMMAND", [sys.executable, str(script)])
    path = tmp_path / "cut.evtx"
    path.write_bytes(CUT)
    return path


def test_a_child_that_stops_making_progress_is_killed_and_its_records_kept(
        tmp_path, monkeypatch):
    path = _child(tmp_path, monkeypatch, "time.sleep(600)\n")
    monkeypatch.setattr(EvtxSource, "stall_seconds", 1.0)
    t0 = time.monotonic()
    table, ctx, _ = read(path, display="cut.evtx", source=EvtxSource)
    assert time.monotonic() - t0 < 60  # not the child's 600 s
    assert sorted(table.column("record_id").to_pylist()) == [1, 2]
    assert table.column("Image").to_pylist()[0].endswith("cmd1.exe")
    stall = [w for w in ctx.warnings if "made no progress for 1 s" in w.message]
    assert len(stall) == 1, [w.message for w in ctx.warnings]
    assert stall[0].path == "cut.evtx"
    assert stall[0].locators == ("after record 2",)


def test_a_child_that_dies_gives_a_warning_with_its_signal(tmp_path, monkeypatch):
    path = _child(tmp_path, monkeypatch,
                  "sys.stderr.write('thread panicked at chunk 3\\n'); sys.stderr.flush()\n"
                  "os.kill(os.getpid(), signal.SIGKILL)\n")
    table, ctx, _ = read(path, display="cut.evtx", source=EvtxSource)
    assert table.num_rows == 2
    died = [w.message for w in ctx.warnings if "ended unexpectedly" in w.message]
    assert died == ["EVTX parser process ended unexpectedly (signal 9: thread panicked at "
                    "chunk 3); the rest of the file is not read"]


def test_parser_errors_from_the_child_are_warnings_and_the_parse_goes_on(
        tmp_path, monkeypatch):
    msg = b"Failed to parse record number 7: bad token"
    body = (f"sys.stdout.buffer.write({struct.pack('<cI', b'X', len(msg)) + msg!r} + FRAMES"
            f" + {struct.pack('<cI', b'E', 0)!r}); sys.stdout.buffer.flush()\n")
    path = _child(tmp_path, monkeypatch, body)
    table, ctx, _ = read(path, display="cut.evtx", source=EvtxSource)
    assert table.num_rows == 4  # two records, the error, the same two again
    assert any(w.message.startswith("record could not be parsed") and
               w.locators == ("record 7",) for w in ctx.warnings)
    assert not [w for w in ctx.warnings if "not read" in w.message]


def test_a_file_the_child_cannot_open_is_a_source_error(tmp_path, monkeypatch):
    msg = b"cannot open EVTX: bad header"
    body = (f"sys.stdout.buffer.write({struct.pack('<cI', b'O', len(msg)) + msg!r});"
            " sys.stdout.buffer.flush()\n")
    script = tmp_path / "child.py"
    script.write_text("import sys\n" + body)
    monkeypatch.setattr(evtx_mod, "CHILD_COMMAND", [sys.executable, str(script)])
    path = tmp_path / "cut.evtx"
    path.write_bytes(CUT)
    with pytest.raises(SourceError, match=r"cut\.evtx: cannot open EVTX: bad header"):
        read(path, display="cut.evtx", source=EvtxSource)


def test_the_child_reads_the_descriptor_it_is_given_not_the_path(tmp_path, monkeypatch):
    """The evidence is opened once, read-only; renaming it after planning changes nothing."""
    path = _child(tmp_path, monkeypatch,
                  "fd = int(sys.argv[1]); os.lseek(fd, 0, 0)\n"
                  "assert os.read(fd, 8) == b'ElfFile\\x00'\n"
                  "import fcntl; assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == "
                  "os.O_RDONLY\n"
                  f"sys.stdout.buffer.write({struct.pack('<cI', b'E', 0)!r})\n")
    table, ctx, _ = read(path, display="cut.evtx", source=EvtxSource)
    assert table.num_rows == 2
    assert not [w for w in ctx.warnings if "unexpectedly" in w.message]


@pytest.mark.parametrize("threads", [0, 1])
def test_the_real_child_gives_what_the_parser_gives_in_process(monkeypatch, threads):
    """On every damaged corpus file the child path (the default) and the in-process
    parser give the same rows and the same warnings."""
    folder = corpus_path("evtx-malformed")
    used: list[int] = []
    real = evtx_mod._ChildRecords.__init__

    def spy(self, *a, **k):  # records that the child ran
        used.append(1)
        real(self, *a, **k)

    monkeypatch.setattr(evtx_mod._ChildRecords, "__init__", spy)
    monkeypatch.setattr(EvtxSource, "threads", threads)
    for path in sorted(folder.glob("*.evtx")):
        monkeypatch.setattr(EvtxSource, "isolate", True)
        t_child, c_child, _ = read(path, display=path.name, source=EvtxSource)
        monkeypatch.setattr(EvtxSource, "isolate", False)
        t_self, c_self, _ = read(path, display=path.name, source=EvtxSource)
        assert t_child.sort_by("_locator").equals(t_self.sort_by("_locator")), path.name
        assert [w.to_dict() for w in c_child.warnings] == \
            [w.to_dict() for w in c_self.warnings], path.name
    assert len(used) >= 6  # most corpus files are damaged: the child really ran


#: A stand-in child: the real one, whose parser "loops" (sleeps) at record HANG when the
#: child is started at chunk 0, and parses normally when started at a later chunk.
LOOPING_CHILD = """
import sys, time
import evtx
from tidehunt.sources import _evtx_child
HANG = {hang}
ALWAYS = {always}
if ALWAYS or len(sys.argv) <= 3:  # no FIRST_CHUNK: the first child
    real = evtx.PyEvtxParser
    class Looping:
        def __init__(self, *a, **k):
            self.p = real(*a, **k)
        def records_json(self):
            for rec in self.p.records_json():
                rid = rec["event_record_id"]
                if rid == HANG or ALWAYS:  # at once: what came before is not waited for
                    time.sleep(600)
                yield rec
    evtx.PyEvtxParser = Looping
sys.exit(_evtx_child.main(sys.argv[1:]))
"""


def _looping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hang: int,
             always: bool = False) -> tuple[Path, list[int]]:
    """A damaged copy of a 26-chunk corpus file (its header checksum flipped: parsed in a
    child) and the record IDs the parser gives for it in process."""
    import evtx

    src = corpus_path("evtx-benign") / "security.evtx"
    data = bytearray(src.read_bytes())
    data[124] ^= 0xFF
    path = tmp_path / "looping.evtx"
    path.write_bytes(bytes(data))
    script = tmp_path / "looping_child.py"
    script.write_text(LOOPING_CHILD.format(hang=hang, always=always))
    monkeypatch.setattr(evtx_mod, "CHILD_COMMAND", [sys.executable, str(script)])
    monkeypatch.setattr(EvtxSource, "stall_seconds", 1.5)
    ids = [r["event_record_id"] for r in evtx.PyEvtxParser(str(path)).records_json()]
    return path, ids


def _chunk_ids(path: Path) -> list[tuple[int, int, int]]:
    data = path.read_bytes()
    out = []
    for i in range((len(data) - 4096) // 65536):
        off = 4096 + i * 65536
        if data[off:off + 8] == b"ElfChnk\x00":
            out.append((i, *struct.unpack_from("<QQ", data, off + 24)))
    return out


@pytest.mark.parametrize("where", ["mid-chunk", "chunk start"])
def test_after_a_looping_chunk_the_next_child_reads_on_from_the_chunk_after(
        tmp_path, monkeypatch, where):
    """A parser that loops in one chunk costs that chunk's records from the loop on, not
    the rest of the file: a child started at the next chunk reads them. Every record
    given before the loop arrives (the child writes each before asking for the next:
    the whole file parses in milliseconds, so a timed flush had sent none of them)."""
    probe = _chunk_ids(corpus_path("evtx-benign") / "security.evtx")
    assert len(probe) > 5
    _, lo, hi = probe[2] if where == "mid-chunk" else probe[3]
    hang = lo + (hi - lo) // 2 if where == "mid-chunk" else lo
    path, ids = _looping(tmp_path, monkeypatch, hang)
    stuck = 2 if where == "mid-chunk" else 3
    lost = set(range(hang, probe[stuck][2] + 1))
    table, ctx, _ = read(path, display="looping.evtx", source=EvtxSource)
    got = sorted(table.column("record_id").to_pylist())
    assert got == [i for i in ids if i not in lost]  # nothing else lost, none twice
    assert len(got) > len(ids) - 100  # the 22 chunks after it were read
    stops = [w for w in ctx.warnings if "made no progress" in w.message]
    assert len(stops) == 1, [w.message for w in ctx.warnings]
    assert stops[0].message.endswith(
        f"the rest of chunk {stuck} is skipped and reading resumes at chunk {stuck + 1}")
    assert stops[0].locators == (f"chunk {stuck} @ offset {4096 + stuck * 65536}",
                                 f"after record {hang - 1}")


def test_children_that_keep_looping_are_given_up_after_max_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(evtx_mod, "MAX_RESUMES", 2)
    path, _ = _looping(tmp_path, monkeypatch, hang=0, always=True)
    table, ctx, _ = read(path, display="looping.evtx", source=EvtxSource)
    assert table.num_rows == 0
    stops = [w for w in ctx.warnings if "made no progress" in w.message]
    assert [w.locators for w in stops] == [
        ("chunk 0 @ offset 4096", "before the first record"),
        ("chunk 1 @ offset 69632", "before the first record of chunk 1"),
        ("chunk 2 @ offset 135168", "before the first record of chunk 2")]
    assert stops[-1].message.endswith("after 2 such stops the rest of the file is not read")
    assert all("resumes at chunk" in w.message for w in stops[:-1])
