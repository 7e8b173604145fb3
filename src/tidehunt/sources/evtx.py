"""Windows XML event log files (.evtx), parsed by the Rust ``evtx`` library (pyevtx-rs).

Corrupt input is salvaged: the parser's iterator is resumed after each error, and the
file and chunk headers are checked for truncation, dirty state and checksum defects,
so each defect becomes one warning with its file offset while every readable record
is kept.
"""

from __future__ import annotations

import io
import os
import re
import struct
import sys
import zlib
from collections.abc import Iterator
from typing import Any, ClassVar

import orjson

from tidehunt.context import RunContext
from tidehunt.errors import SourceError, UnsupportedArtefact
from tidehunt.model.batch import TableBatch
from tidehunt.sources._evtx_child import CHUNK_SIZE, HEADER_BLOCK
from tidehunt.sources._wincolumnar import EvtxRows
from tidehunt.sources._winrows import WindowsRows, WindowsSource, event_row
from tidehunt.sources.base import Artefact, Source

MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
_CHUNK_NO = re.compile(r"chunk number (\d+)")
_RECORD_NO = re.compile(r"record number (\d+)")
#: A whole decimal number in a parser message (offsets, sizes, record numbers).
_NUMBER = re.compile(r"\b\d+\b")
MAX_ERRORS = 10_000
#: Children started again after one stalled or died, each at the chunk after its stop.
MAX_RESUMES = 8
#: Files up to this size are read whole, then checked and parsed from memory.
IN_MEMORY_BYTES = 64 << 20
#: Records handed to the native flatten at a time.
NATIVE_CHUNK = 2048


class EvtxSource(WindowsSource, Source):
    """EVTX files; one ``windows`` row per event record."""

    NAME: ClassVar[str] = "evtx"
    MAGIC: ClassVar[bytes | None] = MAGIC
    FORMAT: ClassVar[str] = "Windows XML event log (EVTX)"
    WRITES: ClassVar[tuple[str, ...]] = ("windows",)
    #: Rust worker threads per file; 0 lets the library decide (set to 1 in worker processes).
    threads: int = 0
    #: Flatten through ``EvtxRows`` (columns built per record shape); False: the generic
    #: row dicts of ``event_row``. Both give the same batches (bench/bench_flatten.py).
    columnar: ClassVar[bool] = True
    #: Parse files whose headers show damage (checksums, truncation) in a child process,
    #: so a parser that stops making progress on a damaged chunk can be stopped.
    isolate: ClassVar[bool] = True
    #: Seconds without a record from the child before it is killed.
    stall_seconds: ClassVar[float] = 30.0

    def new_sink(self) -> WindowsRows:
        """An ``EvtxRows`` buffer (a plain ``WindowsRows`` if ``columnar`` is off)."""
        return EvtxRows(self.NAME) if self.columnar else WindowsRows(self.NAME)

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """EVTX files start with ``ElfFile\\0``."""
        return head.startswith(MAGIC)

    def read_rows(self, artefact: Artefact, ctx: RunContext,
                  sink: WindowsRows) -> Iterator[TableBatch]:
        """Parse every record the parser can give; report each defect once."""
        import evtx  # heavy native module, imported when used

        data = artefact.data
        if data is not None:  # read (and hashed) whole by the task already
            yield from self._read(None, data, evtx, artefact, ctx, sink)
            return
        with artefact.open() as fh:
            size = os.fstat(fh.fileno()).st_size
            # most files are small (a few chunks): read at once, their chunk headers are
            # checked and their records parsed from memory, with no read or seek calls
            # (through Python) for each chunk; large files are read as they are parsed
            yield from self._read(fh, fh.read() if size <= IN_MEMORY_BYTES else None, evtx,
                                  artefact, ctx, sink)

    def _read(self, fh: Any, data: bytes | None, evtx: Any, artefact: Artefact,
              ctx: RunContext, sink: WindowsRows) -> Iterator[TableBatch]:
        """``read_rows`` of the file open as ``fh`` or held as ``data`` (or both)."""
        if fh is None:
            head = data[:HEADER_BLOCK]  # type: ignore[index]
        else:
            head = fh.read(HEADER_BLOCK) if data is None else data[:HEADER_BLOCK]
        if not head.startswith(MAGIC):
            raise UnsupportedArtefact(f"{artefact.display}: not an EVTX file")
        chunks: list[tuple[int, int, int]] = []
        damaged = self._check_headers(artefact, fh, head, ctx, chunks, data)
        if damaged and self.isolate:  # the child parses from a file descriptor
            if fh is None:
                with artefact.open() as fh:
                    yield from self._in_children(fh, artefact, ctx, sink, chunks)
                return
            fh.seek(0)
            yield from self._in_children(fh, artefact, ctx, sink, chunks)
            return
        if data is None:
            fh.seek(0)
        try:
            parser = evtx.PyEvtxParser(fh if data is None else io.BytesIO(data),
                                       number_of_threads=self.threads)
        except (RuntimeError, OSError, ValueError) as exc:
            raise SourceError(f"{artefact.display}: cannot open EVTX: {exc}") from exc
        yield from self.read_records(iter(parser.records_json()), artefact, ctx, sink)

    def _in_children(self, fh: Any, artefact: Artefact, ctx: RunContext, sink: WindowsRows,
                     chunks: list[tuple[int, int, int]]) -> Iterator[TableBatch]:
        """The records of a damaged file, parsed in a child process; when a child stalls
        or dies, another starts at the chunk after the one it stopped in (``resume_at``),
        up to MAX_RESUMES times. Each stop is one warning naming the chunk skipped."""
        first = 0
        for resumes in range(MAX_RESUMES + 1):
            child = _ChildRecords(fh, self.threads, self.stall_seconds, artefact, first)
            try:
                yield from self.read_records(child, artefact, ctx, sink)
            finally:
                child.close()
            stuck = resume_at(chunks, first, child.last_id if child.n else None) \
                if child.stopped else None
            if stuck is not None and resumes == MAX_RESUMES:
                child.report(ctx, self.NAME, stuck=stuck, last=True)
                return
            child.report(ctx, self.NAME, stuck=stuck)
            if stuck is None:
                return
            first = stuck + 1

    def read_records(self, it: Iterator[Any], artefact: Artefact, ctx: RunContext,
                     sink: WindowsRows) -> Iterator[TableBatch]:
        """The parser's records (dicts of ``data``, the record's JSON text, and
        ``event_record_id``) into ``sink``; an error from the iterator is a warning and
        the next record is asked for."""
        rows = sink
        native = isinstance(sink, EvtxRows) and sink.native is not None
        pending: list[Any] = []  # records for the native flatten, a chunk at a time
        errors = 0
        while True:
            try:
                rec = next(it)
            except StopIteration:
                break
            except (RuntimeError, OSError, ValueError) as exc:
                errors += 1
                self._parser_error(artefact, str(exc), ctx)
                if errors >= MAX_ERRORS:
                    ctx.warn(artefact.id, self.NAME, "too many parse errors; rest of file "
                             "not read", path=artefact.display)
                    break
                continue
            if rec is None:  # the stub allows it; the parser ends with StopIteration
                break
            if native:
                pending.append(rec)
                if len(pending) < NATIVE_CHUNK:
                    continue
                self._native(pending, artefact, ctx, sink)  # type: ignore[arg-type]
                pending = []
            else:
                self._take(rec, artefact, ctx, sink)
            if rows.full():
                yield from rows.flush()
        if pending:
            self._native(pending, artefact, ctx, sink)  # type: ignore[arg-type]
            if rows.full():
                yield from rows.flush()

    def _native(self, recs: list[Any], artefact: Artefact, ctx: RunContext,
                sink: EvtxRows) -> None:
        """Records through the native flatten; those it does not take, through Python."""
        for i in sink.add_records(recs):
            self._take(recs[i], artefact, ctx, sink)

    def _take(self, rec: Any, artefact: Artefact, ctx: RunContext, rows: WindowsRows) -> None:
        """Flatten one parser record into ``rows`` (a warning if it is not an event)."""
        try:
            event = orjson.loads(rec["data"])["Event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            ctx.warn(artefact.id, self.NAME, "record is not a valid event",
                     [rec.get("event_record_id")], path=artefact.display)
            return
        if isinstance(rows, EvtxRows):  # columnar: the same checks, no row dict
            rid = rec.get("event_record_id")
            if not rows.add_event(event, str(rid), rid, len(rec["data"])):
                ctx.warn(artefact.id, self.NAME, "record has no System element",
                         [rid], path=artefact.display)
            return
        row = event_row(event) if type(event) is dict else None  # {"Event": null}
        if row is None:
            ctx.warn(artefact.id, self.NAME, "record has no System element",
                     [rec.get("event_record_id")], path=artefact.display)
            return
        if row.get("record_id") is None:
            row["record_id"] = rec.get("event_record_id")
        rows.add(row, str(rec.get("event_record_id")), len(rec["data"]))

    def _parser_error(self, artefact: Artefact, msg: str, ctx: RunContext) -> None:
        first = msg.split(": ", 1)[0] if msg.startswith("Failed to parse") else msg
        where: list[str] = []
        if m := _CHUNK_NO.search(msg):
            n = int(m.group(1))
            where.append(f"chunk {n} @ offset {HEADER_BLOCK + n * CHUNK_SIZE}")
            kind = "chunk could not be parsed; its records are lost"
        elif m := _RECORD_NO.search(msg):
            where.append(f"record {m.group(1)}")
            kind = "record could not be parsed"
        else:
            kind = "parse error"
        # the bytes a check found vary per record: one warning per kind of defect. Whole
        # numbers only: the magic values expected (`2a2a0000`, `ElfChnk0`) stay as written
        detail = _NUMBER.sub("N", re.sub(r"found `\[[^`]*\]`", "found `[...]`", first))[:160]
        ctx.warn(artefact.id, self.NAME, f"{kind}: {detail}", where, path=artefact.display)

    def _check_headers(self, artefact: Artefact, fh: object, head: bytes,
                       ctx: RunContext, chunks: list[tuple[int, int, int]] | None = None,
                       data: bytes | None = None) -> bool:
        """File header: truncation and dirty flag; chunk headers: checksums. True when
        a defect means the chunks cannot be trusted (their records are then parsed in a
        child process). ``chunks`` receives (index, first and last event record ID) of
        each chunk that starts with the chunk magic. ``data``: the whole file, if it was
        read (the chunks are then taken from it rather than read from ``fh``)."""

        size = len(data) if data is not None \
            else os.fstat(fh.fileno()).st_size  # type: ignore[attr-defined]
        if len(head) < 128:
            ctx.warn(artefact.id, self.NAME, "file header truncated", ["offset 0"],
                     path=artefact.display)
            return True
        damaged = False
        (n_chunks,) = struct.unpack_from("<H", head, 42)
        (flags,) = struct.unpack_from("<I", head, 120)
        (crc,) = struct.unpack_from("<I", head, 124)
        if crc and zlib.crc32(head[:120]) != crc:
            damaged = True
            ctx.warn(artefact.id, self.NAME, "file header checksum mismatch", ["offset 124"],
                     path=artefact.display)
        if flags & 1:
            ctx.warn(artefact.id, self.NAME, "file is marked dirty (not closed cleanly); the "
                     "header may not list the newest chunks", ["offset 120"],
                     path=artefact.display)
        whole = (size - HEADER_BLOCK) // CHUNK_SIZE
        if (size - HEADER_BLOCK) % CHUNK_SIZE or whole < n_chunks:
            damaged = True
            ctx.warn(artefact.id, self.NAME,
                     f"file is truncated: {size} bytes, header lists {n_chunks} chunks",
                     [f"offset {size}"], path=artefact.display)
        bad_hdr: list[str] = []
        bad_data: list[str] = []
        no_crc: list[str] = []
        view = None if data is None else memoryview(data)
        for i in range(max(whole, 0)):
            off = HEADER_BLOCK + i * CHUNK_SIZE
            if view is None:
                fh.seek(off)  # type: ignore[attr-defined]
                chunk = fh.read(CHUNK_SIZE)  # type: ignore[attr-defined]
            else:
                chunk = view[off:off + CHUNK_SIZE]
            if chunk[:8] != CHUNK_MAGIC:
                continue  # the parser reports bad chunk magic itself
            if chunks is not None and len(chunk) >= 40:
                chunks.append((i, *struct.unpack_from("<QQ", chunk, 24)))
            (free,) = struct.unpack_from("<I", chunk, 48)
            (data_crc,) = struct.unpack_from("<I", chunk, 52)
            (hdr_crc,) = struct.unpack_from("<I", chunk, 124)
            if hdr_crc == 0 and data_crc == 0:
                no_crc.append(f"chunk {i} @ offset {off}")
                continue
            if zlib.crc32(chunk[128:512], zlib.crc32(chunk[:120])) != hdr_crc:
                bad_hdr.append(f"chunk {i} @ offset {off}")
            if 512 <= free <= CHUNK_SIZE and zlib.crc32(chunk[512:free]) != data_crc:
                bad_data.append(f"chunk {i} @ offset {off}")
        for locs, msg in (
            (bad_hdr, "chunk header checksum mismatch (string or template tables may be "
                      "damaged)"),
            (bad_data, "chunk record data checksum mismatch (records may be damaged)"),
            (no_crc, "chunk checksums not set"),
        ):
            if locs:
                damaged = True
                ctx.warn(artefact.id, self.NAME, msg, locs, count=len(locs),
                         path=artefact.display)
        return damaged


class _ChildRecords:
    """The records of one EVTX file, parsed in a child process (``_evtx_child``).

    An iterator like the parser's own: ``next`` gives ``{"event_record_id", "data"}``
    dicts and raises ``RuntimeError`` for a parser error, after which it can be resumed.
    When no frame comes for ``stall`` seconds the child is killed and the iteration ends;
    so it does when the child dies. ``report`` then gives the warning, with the last record
    read. The child gets the open file's descriptor, not its path.
    """

    def __init__(self, fh: Any, threads: int, stall: float, artefact: Artefact,
                 first_chunk: int = 0) -> None:
        import subprocess
        import tempfile

        self.artefact, self.stall = artefact, stall
        self.buf = b""
        self.pos = 0
        self.ended = False
        self.stopped: str | None = None
        self.last_id: int | None = None
        self.n = 0
        fd = fh.fileno()
        # stderr to a file: a child writing much there must not block on a full pipe
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.first_chunk = first_chunk
        self.proc = subprocess.Popen(
            [*CHILD_COMMAND, str(fd), str(threads), *([str(first_chunk)] if first_chunk
                                                      else [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.err,
            pass_fds=(fd,))

    def __iter__(self) -> _ChildRecords:
        return self

    def __next__(self) -> dict[str, Any]:
        head = _FRAME.size
        while True:
            if len(self.buf) - self.pos >= head:
                kind, n = _FRAME.unpack_from(self.buf, self.pos)
                end = self.pos + head + n
                if len(self.buf) >= end:
                    start, self.pos = self.pos + head, end
                    if kind == b"R":
                        (rid,) = _RID.unpack_from(self.buf, start)
                        self.n += 1
                        self.last_id = None if rid == _NO_ID else rid
                        return {"event_record_id": self.last_id,
                                "data": self.buf[start + 8:end].decode("utf-8",
                                                                        "surrogatepass")}
                    msg = self.buf[start:end].decode("utf-8", "replace")
                    if kind == b"X":
                        raise RuntimeError(msg)
                    if kind == b"O":
                        raise SourceError(f"{self.artefact.display}: {msg}")
                    self.ended = True  # b"E"
                    raise StopIteration
            if self.ended or self.stopped or not self._fill():
                raise StopIteration

    def _fill(self) -> bool:
        """Read what the child wrote; False (with ``stopped`` set) if it stalled or died."""
        import select

        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], self.stall)
        if not ready:
            self.proc.kill()
            self.stopped = (f"EVTX parser made no progress for {self.stall:g} s (a damaged "
                            "chunk it loops on) and was stopped")
            return False
        data = os.read(fd, 1 << 20)
        if not data:
            code = self.proc.wait()
            self.err.seek(0)
            err = self.err.read().decode("utf-8", "replace")
            tail = err.strip().splitlines()[-1:] if err.strip() else []
            how = f"signal {-code}" if code < 0 else f"status {code}"
            self.stopped = (f"EVTX parser process ended unexpectedly ({how}"
                            + (f": {tail[0][:200]}" if tail else "") + ")")
            return False
        self.buf = self.buf[self.pos:] + data
        self.pos = 0
        return True

    def close(self) -> None:
        """Stop the child if it still runs, and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.err.close()

    def report(self, ctx: RunContext, reader: str, stuck: int | None = None,
               last: bool = False) -> None:
        """The warning for a child that stalled or died, after the last record read:
        ``stuck``, the chunk it stopped in, is skipped and the next child starts after it
        (None: the chunk is not known, and the rest of the file is not read; ``last``: no
        child is started again)."""
        if not self.stopped:
            return
        where = [f"after record {self.last_id}" if self.n else
                 ("before the first record" if not self.first_chunk
                  else f"before the first record of chunk {self.first_chunk}")]
        if stuck is None:
            tail = "the rest of the file is not read"
        else:
            where.insert(0, f"chunk {stuck} @ offset {HEADER_BLOCK + stuck * CHUNK_SIZE}")
            tail = (f"its records from there on are lost, and after {MAX_RESUMES} such "
                    "stops the rest of the file is not read") if last else \
                f"the rest of chunk {stuck} is skipped and reading resumes at chunk {stuck + 1}"
        ctx.warn(self.artefact.id, reader, f"{self.stopped}; {tail}", where,
                 path=self.artefact.display)


def resume_at(chunks: list[tuple[int, int, int]], first: int, last_id: int | None
              ) -> int | None:
    """The chunk a child stopped in, from the chunks' (index, first and last record ID)
    and the last record it gave (None: none), when it started at chunk ``first``.

    The parser gives the records in chunk order: the child stopped in the chunk that holds
    its last record, or in the next one if that record ended its chunk; with no record, in
    the first chunk it was to read. None when that cannot be told (the last record in no
    chunk's range, or no chunk after it)."""
    later = [c for c in chunks if c[0] >= first]
    if last_id is None:
        return later[0][0] if later else None
    for k, (i, lo, hi) in enumerate(later):
        if lo <= last_id <= hi:
            if last_id < hi:
                return i
            return later[k + 1][0] if k + 1 < len(later) else None
    return None


#: The child that parses damaged files (tests swap in others).
CHILD_COMMAND: list[str] = [sys.executable, "-m", "tidehunt.sources._evtx_child"]
_FRAME = struct.Struct("<cI")
_RID = struct.Struct("<Q")
_NO_ID = 0xFFFF_FFFF_FFFF_FFFF
