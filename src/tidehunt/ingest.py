"""Ingest: evidence paths -> sniffed artefacts -> tasks run in worker processes -> parts.

Small files are grouped into tasks so each worker builds a few large Arrow batches; a
large file is a task of its own. Each task's parts are committed to the case (renamed
into place, manifest saved) when the task ends, so a killed run resumes cleanly.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import logging
import multiprocessing
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.thread import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tidehunt import registry
from tidehunt.case.store import (
    CASE_INSIDE,
    OTHER_CASE,
    CaseStore,
    is_case_folder,
    utcnow,
    write_part,
)
from tidehunt.context import RunContext, not_regular, printable
from tidehunt.errors import CaseError, NoUsableInput, SourceError
from tidehunt.memory import (
    IngestLimits,
    IngestPlan,
    MemoryBudget,
    configure_arrow_memory,
    ingest_plan,
)
from tidehunt.model.warning import IngestWarning
from tidehunt.sources import _lines, _winrows
from tidehunt.sources._wincolumnar import native_flatten
from tidehunt.sources._winrows import WindowsRows, WindowsSource
from tidehunt.sources.base import Artefact
from tidehunt.sources.sniff import HEAD, readers, sniff

log = logging.getLogger("tidehunt.ingest")

PART_ROWS = 65_536
#: Bytes (of Arrow buffers) per table a task gathers before it writes a part, whatever its
#: rows: a part of large events (32 KB PowerShell script blocks) stays one that matching
#: can hold as a chunk and whose hits' fields JSON fits one Arrow string array (2 GiB).
#: The benchmark's parts (51k rows of 344 columns) are ~96 MiB and do not reach it.
PART_BYTES = 256 << 20
IN_PROCESS_BYTES = 16 << 20
#: Longest time between manifest saves while workers commit (a kill costs a re-read).
SAVE_SECONDS = 2.0
#: Errors that say the case's disk cannot take more: the run stops (exit 3), resumable.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
MAX_TASK_BYTES = 256 << 20
MIN_TASK_BYTES = 4 << 20
#: A task handed out takes the bytes left over this many times the workers (``stream_tasks``).
TASK_SPLIT = 1
#: ... and in one process, over this many: each task is committed when it ends.
IN_PROCESS_SPLIT = 3
#: Files hashed and sniffed ahead of the tasks handed out (their heads are held).
PLAN_AHEAD = 64
#: Files hashed per job of the hashing thread (one hand-off per file cost more than
#: hashing a small file).
SCAN_BATCH = 16
#: Bytes read (and hashed) at a time.
SCAN_BLOCK = 1 << 20
#: Tasks queued per worker: planning waits (backpressure) rather than run far ahead.
QUEUED_PER_WORKER = 4


@dataclass
class Planned:
    """One evidence file found on the command line."""

    id: str
    path: Path
    display: str
    size: int
    sha256: str
    source: str = ""


@dataclass
class IngestResult:
    """What an ingest did, for the summary and the run record."""

    found: int = 0
    skipped: int = 0
    ingested: int = 0
    failed: int = 0
    unsupported: int = 0
    records: int = 0
    warnings: int = 0
    seconds: float = 0.0
    parse_seconds: float = 0.0
    #: Version of the native EVTX flatten used, or None (Python flattened every record).
    native_flatten: str | None = None
    errors: list[str] = field(default_factory=list)
    #: Worker processes and buffers used (from ``--max-memory``; not in the run record).
    plan: IngestPlan | None = field(default=None, repr=False)


def artefact_id(path: Path, sha256: str) -> str:
    """Manifest id: same path and same content -> same id; a copy elsewhere is separate.

    Of the path's bytes as the file system has them (its UTF-8 for any name that is text).
    """
    return hashlib.sha256(os.fsencode(path) + b"\0" + sha256.encode()).hexdigest()[:16]


def iter_files(evidence: Iterable[str], ctx: RunContext, case: Path | None = None
               ) -> Iterator[tuple[Path, str, int]]:
    """Files named or found under folders (sorted): (real path, path as given, size).

    Folders are walked with ``os.scandir`` (file types from the directory entries, no
    extra stat per file) and resolved once: links are never followed inside them, so a
    file's real path is its folder's real path plus its relative path.

    ``case``: the case's folder, never read as evidence (``hunt . -o case`` run again in
    the evidence folder read the case's own manifest, tables and reports): a folder walked
    that holds it leaves it out, and a path given inside it is left out; a warning each.
    """
    case = case.resolve() if case is not None else None
    for given in evidence:
        p = Path(given)
        if p.is_dir():
            real_root = p.resolve()
            shown = str(p)
            if case is not None and real_root.is_relative_to(case):
                ctx.warn("-", "ingest", CASE_INSIDE, [given], path=given)
                continue
            skip = case.relative_to(real_root).as_posix() \
                if case is not None and case.is_relative_to(real_root) else None
            for rel, size in _walk(p, ctx, skip):
                # str(p / rel), without a second Path per file (rel is plain names)
                shown_rel = rel if shown == "." else os.path.join(shown, rel)  # noqa: PTH118
                yield real_root / rel, _shown(shown_rel, ctx), size
        elif p.is_file():
            real = p.resolve()
            if case is not None and real.is_relative_to(case):
                ctx.warn("-", "ingest", CASE_INSIDE, [given], path=given)
                continue
            yield real, _shown(given, ctx), p.stat().st_size
        elif (mode := _mode(p)) is not None:  # a FIFO given as evidence would block a read
            ctx.warn("-", "ingest", f"not a regular file ({not_regular(mode)}); not read",
                     [given], path=given)
        else:
            ctx.warn("-", "ingest", "evidence path does not exist or is not a file",
                     [given], path=given)


#: The warning for an evidence file of 0 bytes (a log collected empty, say).
EMPTY_FILE = "empty file (0 bytes); nothing to ingest"

def _nothing_in(head: bytes, size: int) -> str | None:
    """Why a file no reader takes holds nothing to read, when it is whole in ``head``
    and empty: 0 bytes, blank space only, or an empty JSON array or object (an export of
    no events is not a file of unknown type)."""
    if size == 0:
        return EMPTY_FILE
    if size > len(head):
        return None
    body = bytes(head).removeprefix(b"\xef\xbb\xbf").strip()
    if not body:
        return "file holds only blank space; nothing to ingest"
    if b"".join(body.split()) in (b"[]", b"{}"):
        return "file holds an empty JSON array or object; nothing to ingest"
    return None


#: The warning for a file whose name is not valid UTF-8 (``_shown``).
NOT_UTF8_NAME = "file name is not valid UTF-8: shown with its bytes as \\xNN"


def _shown(path: str, ctx: RunContext) -> str:
    """How a file's path is shown and recorded (``printable``): a name that is not UTF-8
    is a warning, and its file is read all the same, by its real name."""
    text = printable(path)
    if text != path:
        ctx.warn("-", "ingest", NOT_UTF8_NAME, [text], path=text)
    return text


def _walk(root: Path, ctx: RunContext, skip: str | None = None) -> Iterator[tuple[str, int]]:
    """Relative paths and sizes of the regular files under ``root`` (sorted, no links).

    One generator for the whole tree, folders on a stack of their sorted entries (with a
    generator per folder level, each file was passed up through every level); files come
    as they are found, so that the workers can be started early in the walk of a large
    tree. ``skip``: a folder (relative path) not walked, with a warning.
    """

    def entries(rel: str) -> Iterator[os.DirEntry[str]]:
        here = root / rel if rel else root
        try:
            with os.scandir(here) as it:
                listed = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            ctx.warn("-", "ingest", f"folder not readable: {exc.strerror}", [str(here)],
                     path=str(here))
            return iter(())
        if is_case_folder(here, (e.name for e in listed)):  # an earlier analysis, say
            ctx.warn("-", "ingest", OTHER_CASE, [str(here)], path=str(here))
            return iter(())
        return iter(listed)

    stack: list[tuple[str, Iterator[os.DirEntry[str]]]] = [("", entries(""))]
    while stack:
        rel, it = stack[-1]
        e = next(it, None)
        if e is None:
            stack.pop()
            continue
        sub = f"{rel}/{e.name}" if rel else e.name
        if e.is_symlink():
            ctx.warn("-", "ingest", "symbolic link not followed", [str(root / sub)],
                     path=str(root / sub))
        elif e.is_dir(follow_symlinks=False):
            if sub == skip:  # the case's own folder (``iter_files``)
                ctx.warn("-", "ingest", CASE_INSIDE, [str(root / sub)], path=str(root / sub))
                continue
            stack.append((sub, entries(sub)))
        elif e.is_file(follow_symlinks=False):
            try:
                size = e.stat(follow_symlinks=False).st_size
            except OSError:
                size = 0  # gone or unreadable: _scan reports it
            yield sub, size
        else:  # a FIFO (reading it would wait for a writer), a socket or a device
            ctx.warn("-", "ingest", f"not a regular file ({_kind(e)}); not read",
                     [str(root / sub)], path=str(root / sub))


def _mode(p: Path) -> int | None:
    """``st_mode`` of a path (links followed), None if it is gone or cannot be seen."""
    try:
        return p.stat().st_mode
    except OSError:
        return None


def _kind(e: os.DirEntry[str]) -> str:
    """What a directory entry that is neither a file, a folder nor a link is."""
    try:
        return not_regular(e.stat(follow_symlinks=False).st_mode)
    except OSError:
        return "gone"



def _scan(path: Path, buf: memoryview | None = None) -> tuple[int, str, bytes] | OSError:
    """Size, SHA-256 and the first bytes (for sniffing) of a file, in one read.

    ``buf``: a buffer to read into (one per scanning thread: no fresh allocation, and so
    no page faults, for each block of each file).
    """
    if buf is None or len(buf) < HEAD:
        buf = memoryview(bytearray(max(SCAN_BLOCK, HEAD)))
    try:
        with open(path, "rb", buffering=0) as fh:
            size = os.fstat(fh.fileno()).st_size
            n = 0
            while n < HEAD and (got := fh.readinto(buf[n:])):  # reads may come short
                n += got
            head = bytes(buf[:min(n, HEAD)])
            h = hashlib.sha256(buf[:n])  # large buffers: hashed with the GIL released
            while n := fh.readinto(buf):
                h.update(buf[:n])
    except OSError as exc:
        return exc
    return size, h.hexdigest(), head


def _head(path: Path) -> tuple[int, str, bytes] | OSError:
    """Size and the first bytes (for sniffing) of a file, its SHA-256 left to the task
    that reads it (an empty digest: ``hash_in_task``)."""
    try:
        with open(path, "rb", buffering=0) as fh:
            size = os.fstat(fh.fileno()).st_size
            head = b""
            while len(head) < HEAD and (got := fh.read(HEAD - len(head))):
                head += got
    except OSError as exc:
        return exc
    return size, "", head


def _scan_many(paths: list[tuple[Path, bool]]) -> list[tuple[int, str, bytes] | OSError]:
    """``_scan`` of each path (``_head`` of those marked to be hashed by their task),
    through one buffer."""
    buf = memoryview(bytearray(max(SCAN_BLOCK, HEAD)))
    return [_head(p) if later else _scan(p, buf) for p, later in paths]


def hash_in_task(item: Planned) -> bytes | None:
    """Hash a file planning left unhashed (``Planned.sha256`` empty), in the task that
    reads it: its digest and artefact id are set on ``item``. An EVTX file up to
    ``EvtxSource``'s IN_MEMORY_BYTES is read whole, and those bytes are returned for the
    reader to parse (one read of the file for both); otherwise None.

    Raises OSError if the file cannot be read (``item.id`` is then that of an unreadable
    file, as planning gives it).
    """
    from tidehunt.sources.evtx import IN_MEMORY_BYTES, MAGIC

    item.id = artefact_id(item.path, "")
    data: bytes | None = None
    if item.source == "evtx":
        with open(item.path, "rb", buffering=0) as fh:
            # its size now, not when it was planned: a file grown since is not read whole
            if os.fstat(fh.fileno()).st_size <= IN_MEMORY_BYTES:
                data = fh.readall()
    if data is not None:
        digest, size = hashlib.sha256(data).hexdigest(), len(data)
        if not data.startswith(MAGIC):  # changed since it was sniffed: the reader says
            data = None
    else:
        scanned = _scan(item.path)
        if isinstance(scanned, OSError):
            raise scanned
        size, digest, _ = scanned
    item.sha256, item.size = digest, size
    item.id = artefact_id(item.path, digest)
    return data


def plan(evidence: Iterable[str], store: CaseStore, ctx: RunContext,
         result: IngestResult, options: dict[str, Any] | None = None) -> list[Planned]:
    """Hash and sniff each file; skip what the case already holds."""
    files = list(iter_files(evidence, ctx, store.root))
    result.found = len(files)
    return list(plan_files(files, store, ctx, result, options))


def plan_files(files: list[tuple[Path, str, int]], store: CaseStore, ctx: RunContext,
               result: IngestResult, options: dict[str, Any] | None = None
               ) -> Generator[Planned, None, None]:
    """Hash and sniff each file (two threads), yielding the ones to read, in order.

    A generator, so that ingest can hand out work while the rest is still being hashed.
    ``options`` let the analyst's column mappings claim files (see ``Source.claims``).
    """
    seen: set[str] = set()
    sources = readers()
    # A file the case holds no ingested record of (same path, same size) cannot be one
    # to skip: only its head is read here, for sniffing, and the task that reads it
    # hashes it (one read of the file, in the worker, instead of a second one here).
    known = _known(store)
    later = [(printable(str(f[0])), f[2]) not in known for f in files]  # as recorded
    # one thread: hashing runs beside the worker processes, and on a machine they keep
    # busy a second hashing thread costs more CPU (GIL hand-offs) than it saves
    with ThreadPoolExecutor(max_workers=1) as pool:
        for (real, display, _), scanned in zip(files, _ahead(pool, files, later),
                                               strict=True):
            if not isinstance(scanned, OSError) and not scanned[1]:
                if str(real) in seen:  # the same file named twice
                    result.skipped += 1
                    continue
                seen.add(str(real))
                size, _, head = scanned
                item = Planned("", real, display, size, "")
                try:
                    src = sniff(Artefact(artefact_id(real, ""), real, display), head,
                                options, sources)
                except SourceError:
                    src = None
                if src is not None:
                    item.source = src.NAME
                    yield item
                    continue
                scanned = _scan(real)  # not to be read: hashed here, for its record
            if isinstance(scanned, OSError):
                msg = f"{display}: unreadable: {scanned.strerror or scanned}"
                _record_failed(store, Planned(artefact_id(real, ""), real, display, 0, ""),
                               "", msg)
                result.failed += 1
                result.errors.append(msg)
                log.error("%s", msg)
                continue
            size, digest, head = scanned
            aid = artefact_id(real, digest)
            if aid in seen or store.has_ingested(aid):
                result.skipped += 1
                continue
            seen.add(aid)
            item = Planned(aid, real, display, size, digest)
            try:
                src = sniff(Artefact(aid, real, display), head, options, sources)
            except SourceError as exc:
                _record_failed(store, item, "", str(exc))
                result.failed += 1
                result.errors.append(str(exc))
                log.error("%s", exc)
                continue
            if src is None:
                ctx.warn(aid, "ingest", _nothing_in(head, size) or
                         "no reader recognises this file; not ingested", path=display)
                store.artefacts[aid] = _record(item, "", "unsupported")
                result.unsupported += 1
                continue
            item.source = src.NAME
            yield item
    store.save()


def _ahead(pool: ThreadPoolExecutor, files: list[tuple[Path, str, int]],
           later: list[bool] | None = None) -> Iterator[tuple[int, str, bytes] | OSError]:
    """``_scan`` of each file in order (``_head`` where ``later`` says so), SCAN_BATCH
    files to a job and at most PLAN_AHEAD files in flight or waiting (each result holds
    a file's head: ``pool.map`` over the files would hold every file's at once)."""
    queue: deque[Future[list[tuple[int, str, bytes] | OSError]]] = deque()
    todo = iter(zip((f[0] for f in files), later or [False] * len(files), strict=True))

    def submit() -> None:
        batch = list(itertools.islice(todo, SCAN_BATCH))
        if batch:
            queue.append(pool.submit(_scan_many, batch))

    for _ in range(max(1, PLAN_AHEAD // SCAN_BATCH)):
        submit()
    try:
        while queue:
            got = queue.popleft().result()
            submit()
            yield from got
    finally:
        for fut in queue:
            fut.cancel()


def _record(item: Planned, reader: str, status: str, **extra: Any) -> dict[str, Any]:
    rec = {
        "path": printable(str(item.path)),
        "display": item.display,
        "size": item.size,
        "sha256": item.sha256,
        "reader": reader,
        "status": status,
        "records": {},
        "warnings": [],
        "ingested_at": utcnow(),
    }
    rec.update(extra)
    return rec


def no_evidence_found(reasons: Sequence[str], suffix: str = "") -> str:
    """The exit-3 error of a run that found no evidence file, naming why for the first
    paths (``path: reason``)."""
    return "no evidence files found at the given paths" + (
        " (" + "; ".join(reasons[:5]) + ("; ..." if len(reasons) > 5 else "") + ")"
        if reasons else " (the folders hold no files)") + suffix


def _about(display: str, error: object) -> str:
    """``display: error``, the path once (a reader's error most often names it)."""
    text = str(error)
    return text if text.startswith(f"{display}: ") else f"{display}: {text}"


def _record_failed(store: CaseStore, item: Planned, reader: str, error: str) -> None:
    store.artefacts[item.id] = _record(item, reader, "failed", error=error)


def stream_tasks(items: Iterable[Planned], total: int, split: int
                 ) -> Iterator[list[Planned]]:
    """Tasks as items arrive, each of about the bytes not yet handed out (of ``total``)
    over ``split``, between MIN_TASK_BYTES and MAX_TASK_BYTES; a file at least that large
    is a task by itself.

    Large tasks first, smaller ones as the evidence runs out (guided self-scheduling):
    a task has a fixed cost (its rows are flushed once per event type and written as a
    part of their own: ~0.1 s for a task of mixed EVTX), so few tasks is fast, and small
    last ones let the workers (``split``: TASK_SPLIT per worker) finish together. In one
    process ``split`` is IN_PROCESS_SPLIT: a task is also what a killed or failed run
    keeps.
    """
    left = total

    def target() -> int:
        return max(MIN_TASK_BYTES, min(MAX_TASK_BYTES, left // max(1, split)))

    want = target()
    cur: list[Planned] = []
    cur_bytes = 0
    for it in items:
        if it.size >= want:
            left -= it.size
            want = target()
            yield [it]
            continue
        cur.append(it)
        cur_bytes += it.size
        if cur_bytes >= want:
            left -= cur_bytes
            want = target()
            yield cur
            cur, cur_bytes = [], 0
    if cur:
        yield cur


def run_task(case_root: str, task: list[Planned], evtx_threads: int = 0,
             strict: bool = False, options: dict[str, Any] | None = None,
             limits: IngestLimits | None = None) -> dict[str, Any]:
    """Read every artefact of a task into temporary parts (runs in a worker process).

    ``limits`` bound what the task buffers (from ``--max-memory``); None: the defaults.
    """
    if limits is None:
        limits = IngestLimits(_winrows.FLUSH_ROWS, PART_ROWS, _lines.BLOCK_BYTES)
    with _lines.block_size(limits.block_bytes):
        return _run_task(case_root, task, evtx_threads, strict, options, limits)


def _run_task(case_root: str, task: list[Planned], evtx_threads: int, strict: bool,
              options: dict[str, Any] | None, limits: IngestLimits) -> dict[str, Any]:
    store = _PartWriter(case_root, limits.part_rows, PART_BYTES)
    ctx = RunContext(log=logging.getLogger("tidehunt.worker"))
    sinks: dict[str, WindowsRows] = {}
    recs: dict[str, dict[str, Any]] = {}
    parse_seconds = 0.0
    classes: dict[str, Any] = {}
    for item in task:
        t0 = time.perf_counter()
        cls = classes.get(item.source)
        if cls is None:
            cls = classes[item.source] = registry.load("sources", item.source)
        src = cls()
        src.options = dict(options or {})
        src.case_root = case_root
        if item.source == "evtx":
            src.threads = evtx_threads
        status, error = "ingested", None
        data: bytes | None = None
        try:
            if not item.sha256:
                data = hash_in_task(item)
            art = Artefact(item.id, item.path, item.display, data)
            if isinstance(src, WindowsSource):
                sink = sinks.get(item.source)
                if sink is None:  # one buffer for all of the task's files of a source
                    sink = sinks[item.source] = src.new_sink()
                sink.flush_rows = limits.flush_rows
                sink.begin(item.id, item.display)
                for b in src.read_rows(art, ctx, sink):
                    store.add(b.table, b.data)
            else:
                for b in src.read(art, ctx):
                    store.add(b.table, b.data)
        except SourceError as exc:
            status, error = "failed", str(exc)
        except CaseError:
            raise  # the case cannot be written: nothing of this task is committed
        except OSError as exc:
            if exc.errno in DISK_FULL:  # a source writing into the case ran out of space
                raise _disk_full(case_root, exc) from exc
            if strict:
                raise
            status = "failed"
            error = f"unreadable: {exc.strerror or exc} (the file changed or went away " \
                    "after it was planned, or the disk holding it is failing)"
        except Exception as exc:
            if strict:
                raise
            status = "failed"
            error = f"internal error while reading: {exc!r}"
            log.debug("%s", traceback.format_exc())
        seconds = time.perf_counter() - t0
        parse_seconds += seconds
        recs[item.id] = _record(item, item.source, status, seconds=round(seconds, 4),
                                warnings=[w.to_dict() for w in ctx.take_warnings()])
        line_stats = getattr(src, "stats", None)
        if line_stats is not None and hasattr(line_stats, "to_dict"):
            recs[item.id]["lines"] = line_stats.to_dict()
        if error:
            recs[item.id]["error"] = error
    for name, sink in sinks.items():
        for b in sink.flush():
            store.add(b.table, b.data)
        sink.report(ctx, name)
    for w in ctx.take_warnings():  # rows checked in bulk at flush: time and event ID defects
        recs[w.artefact]["warnings"].append(w.to_dict())
    parts = store.close()
    for part in parts:
        for aid, n in part.pop("counts").items():
            r = recs[aid]["records"]
            r[part["table"]] = r.get(part["table"], 0) + n
    for aid, rec in recs.items():
        if rec["status"] == "failed" and rec["records"]:
            # rows read before the error are committed with the rest of the task; the
            # evidence counts as read, so a re-run neither duplicates nor loses them
            n = sum(rec["records"].values())
            rec["status"], rec["partial"] = "ingested", True
            rec["warnings"].append(IngestWarning(
                aid, rec["reader"], f"reading stopped by an error after {n} records (they "
                f"are kept): {rec['error']}", path=rec["display"]).to_dict())
    return {"artefacts": recs, "parts": parts, "parse_seconds": parse_seconds}


def _disk_full(case_root: str | Path, exc: OSError) -> CaseError:
    """The error that stops a run whose case cannot be written (disk full, read-only)."""
    return CaseError(f"{case_root}: cannot write to the case: {exc.strerror or exc}; what "
                     "earlier tasks committed is kept: free space (or fix the case folder) "
                     "and run the same command again to resume")


class _PartWriter:
    """Collects batches per table and writes a temporary part every ``part_rows`` rows,
    or sooner once they hold ``part_bytes``."""

    def __init__(self, case_root: str, part_rows: int = PART_ROWS,
                 part_bytes: int | None = None) -> None:
        self.root = Path(case_root)
        self.part_rows = part_rows
        self.part_bytes = PART_BYTES if part_bytes is None else part_bytes
        self.pending: dict[str, list[pa.RecordBatch]] = {}
        self.rows: dict[str, int] = {}
        self.bytes: dict[str, int] = {}
        self.parts: list[dict[str, Any]] = []

    def add(self, table: str, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.pending.setdefault(table, []).append(batch)
        self.rows[table] = self.rows.get(table, 0) + batch.num_rows
        # the buffers' own sizes: 15x cheaper than ``nbytes`` (which walks each slice)
        self.bytes[table] = self.bytes.get(table, 0) + batch.get_total_buffer_size()
        if self.rows[table] >= self.part_rows or self.bytes[table] >= self.part_bytes:
            self._write(table)

    def _write(self, table: str) -> None:
        batches = self.pending.pop(table, [])
        self.rows[table] = self.bytes[table] = 0
        if not batches:
            return
        d = self.root / "tables" / table
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".tmp-{os.getpid()}-{time.time_ns()}.parquet"
        counts: dict[str, int] = {}
        for b in batches:
            vc = pc.value_counts(b.column("_artefact"))
            for v, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(),
                            strict=True):
                counts[v] = counts.get(v, 0) + c
        try:
            n, cols = write_part(tmp, batches, table)
        except OSError as exc:  # disk full, quota, read-only: the task is given up whole,
            for p in [tmp, *(Path(x["tmp"]) for x in self.parts)]:  # its parts freed
                with contextlib.suppress(OSError):
                    p.unlink()
            self.parts.clear()
            raise _disk_full(self.root, exc) from exc
        self.parts.append({"tmp": str(tmp), "table": table, "rows": n, "columns": cols,
                           "artefacts": sorted(counts), "counts": counts})

    def close(self) -> list[dict[str, Any]]:
        for table in list(self.pending):
            self._write(table)
        return self.parts


def _known(store: CaseStore) -> set[tuple[str | None, int | None]]:
    """(path, size) of every evidence file the case holds as ingested (the path as
    recorded: ``printable``)."""
    return {(rec.get("path"), rec.get("size")) for rec in store.artefacts.values()
            if rec.get("status") == "ingested"}


def fresh_bytes(files: list[tuple[Path, str, int]], store: CaseStore) -> int:
    """Bytes of the files the case does not seem to hold yet (no ingested record of the
    same path and size): what the tasks are sized by, before hashing tells for sure.

    A re-run that adds a little evidence to a large case cuts the new files into tasks
    for every worker, and reads a few new files in this process, rather than sizing its
    tasks by the evidence it will skip.
    """
    known = _known(store)
    if not known:
        return sum(f[2] for f in files)
    return sum(size for real, _, size in files if (printable(str(real)), size) not in known)


def _init_worker() -> None:
    """An ingest worker's start: Arrow's allocator, and the collector (``tune_gc``)."""
    from tidehunt.memory import tune_gc

    configure_arrow_memory()
    tune_gc()


def _worker_pool(workers: int) -> ProcessPoolExecutor:
    """The ingest worker processes, started now (an empty job each makes the pool spawn
    them) rather than when the first task is handed out."""
    mp = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp,
                               initializer=_init_worker)
    for _ in range(workers):
        pool.submit(time.sleep, 0)
    return pool


def _walk_starting_workers(evidence: Iterable[str], ctx: RunContext, workers: int,
                           case: Path | None = None
                           ) -> tuple[list[tuple[Path, str, int]], ProcessPoolExecutor | None]:
    """The evidence files (``iter_files``), and the worker processes, started while the
    folders are still walked once the files found exceed IN_PROCESS_BYTES: spawning and
    importing take a worker 0.3-0.5 s, which the walk of a large folder (0.5 s for the
    benchmark's 21,200 files) then hides."""
    files: list[tuple[Path, str, int]] = []
    pool = None
    seen = 0
    try:
        for f in iter_files(evidence, ctx, case):
            files.append(f)
            seen += f[2]
            if pool is None and workers > 1 and seen > IN_PROCESS_BYTES:
                pool = _worker_pool(workers)
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    return files, pool


def _in_workers(planned: Iterable[Planned], store: CaseStore, ctx: RunContext,
                absorb: Callable[[dict[str, Any]], None], total: int, workers: int,
                strict: bool, options: dict[str, Any] | None, limits: IngestLimits,
                started: ProcessPoolExecutor | None = None,
                under_way: Callable[[], None] | None = None) -> None:
    """Run tasks in worker processes as planning yields them; absorb each result.

    At most QUEUED_PER_WORKER tasks per worker are queued: beyond that, planning (hashing
    and sniffing the next files) waits for a task to finish. ``started``: the workers,
    if already started (``_walk_starting_workers``); ``under_way`` is called once every
    worker has a task, or every task is handed out if there are fewer.
    """
    # workers start on the first tasks while the rest is still hashed and sniffed
    with started or _worker_pool(workers) as pool:
        pending: set[Future[dict[str, Any]]] = set()
        handed = 0
        try:
            for task in stream_tasks(planned, total, workers * TASK_SPLIT):
                pending.add(pool.submit(run_task, str(store.root), task, 1, strict, options,
                                        limits))
                handed += 1
                if handed == workers and under_way is not None:
                    under_way()
                if len(pending) >= workers * QUEUED_PER_WORKER:
                    wait(pending, return_when=FIRST_COMPLETED)
                for fut in [f for f in pending if f.done()]:
                    pending.discard(fut)
                    absorb(fut.result())
                if ctx.should_stop():
                    break
            if handed < workers and under_way is not None:
                under_way()
            while pending and not ctx.should_stop():
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    absorb(fut.result())
        finally:
            for f in pending:  # stopped, or a task could not write: queued tasks do not run
                f.cancel()


def ingest(evidence: Iterable[str], store: CaseStore, ctx: RunContext, *,
           workers: int | None = None, strict: bool = False,
           options: dict[str, Any] | None = None,
           budget: MemoryBudget | None = None,
           under_way: Callable[[], None] | None = None,
           on_windows: Callable[[list[tuple[str, int]]], None] | None = None,
           save: bool = True, catalogue: bool = True) -> IngestResult:
    """Add evidence to the case; returns counts. Raises NoUsableInput if nothing is readable.

    The manifest is saved and the catalogue (``case.duckdb``) written at the end, unless
    ``save`` or ``catalogue`` is False: the caller then does it (``engine.run_ingest``
    saves once with its run record; ``hunt`` writes the catalogue after detection). Both
    are done whatever these say when the run raises NoUsableInput.

    ``options`` reach every reader (see :class:`tidehunt.sources.base.Source`): for mail,
    ``attachment_passwords``, ``unpack_limits``, ``extract_attachments`` and ``yara``;
    ``net_mapping`` (proxy, firewall and flow exports) and ``auth_mapping`` (sign-in CSV)
    column mappings, which may also claim files the readers would not recognise.

    ``budget`` (``--max-memory``) bounds the worker processes and what each buffers (see
    :meth:`tidehunt.memory.MemoryBudget.ingest`): ``workers`` is then the most.

    ``under_way`` is called once: when every worker process has its first task (or all
    tasks are handed out, if fewer), or before the evidence is read in this process.
    ``hunt`` loads the rule plan in a thread from then on, since before it the thread's
    Python competes for the GIL with the walk and the hashing that the workers wait for
    (the 100x walk took 0.5 s beside it, 0.21 s alone).

    ``on_windows`` is given the ``windows`` parts (path, rows) the case already holds, then
    those of each task as it is committed (``hunt`` matches them while ingest goes on).
    """
    t0 = time.perf_counter()
    result = IngestResult(native_flatten=native_flatten())
    result.plan = ingest_plan(budget, workers or min(2, os.cpu_count() or 1),
                              flush_rows=_winrows.FLUSH_ROWS, part_rows=PART_ROWS,
                              block_bytes=_lines.BLOCK_BYTES)
    workers, limits = result.plan.workers, result.plan.limits
    # the readers' modules (imports that planning needs before it sniffs the first file)
    # are imported beside the walk, not after it, while the workers start
    importing = threading.Thread(target=readers, name="import-readers", daemon=True)
    importing.start()
    files, pool = _walk_starting_workers(evidence, ctx, workers, store.root)
    importing.join()
    result.found = len(files)
    total = sum(f[2] for f in files)
    done_bytes = 0
    ctx.on_progress("ingest", 0, total)
    last_save = time.monotonic()

    def absorb(res: dict[str, Any]) -> None:
        nonlocal done_bytes, last_save
        # the manifest is rewritten at most every SAVE_SECONDS (it grows with the case)
        due = time.monotonic() - last_save >= SAVE_SECONDS
        placed = store.commit(res["artefacts"], res["parts"], save=due)
        if on_windows is not None:
            on_windows([(str(path), part["rows"]) for path, part in
                        zip(placed, res["parts"], strict=True) if part["table"] == "windows"])
        if due:
            last_save = time.monotonic()
        result.parse_seconds += res["parse_seconds"]
        for rec in res["artefacts"].values():
            done_bytes += rec["size"]
            result.records += sum(rec["records"].values())
            result.warnings += len(rec["warnings"])
            if rec["status"] == "ingested":
                result.ingested += 1
                if rec.get("partial"):
                    log.error("%s (the records read before it are kept)",
                              _about(rec["display"], rec.get("error")))
            else:
                result.failed += 1
                result.errors.append(_about(rec["display"], rec.get("error")))
                log.error("%s", result.errors[-1])
            for w in rec["warnings"]:
                ctx.log.info("%s: %s (%d)", rec["display"], w["message"], w["count"])
        ctx.on_progress("ingest", done_bytes, total)

    if on_windows is not None:
        rows = {k: v["rows"] for k, v in store.manifest.get("parts", {}).items()}
        on_windows([(str(path), rows[path.relative_to(store.root).as_posix()])
                    for path in store.parts("windows")])
    planned = plan_files(files, store, ctx, result, options)
    fresh = fresh_bytes(files, store)
    if pool is not None and fresh <= IN_PROCESS_BYTES:  # the case holds most of it
        pool.shutdown(wait=False)
        pool = None
    try:
        if workers <= 1 or fresh <= IN_PROCESS_BYTES:
            if under_way is not None:
                under_way()
            # planned whole first: the manifest is saved once planning ends, before
            # the first task commits
            for task in stream_tasks(list(planned), fresh, IN_PROCESS_SPLIT):
                if ctx.should_stop():
                    break
                absorb(run_task(str(store.root), task, 0, strict, options, limits))
        else:
            _in_workers(planned, store, ctx, absorb, fresh, workers, strict, options, limits,
                        pool, under_way)
    except CaseError:
        # the case cannot be written (disk full): keep the record of what was committed;
        # the task that failed left only temporary parts, removed when the case reopens
        planned.close()
        with contextlib.suppress(CaseError):
            store.save()
        raise
    planned.close()  # stopped early: end the hashing threads
    unusable: list[str] = []  # the paths given that led to no file, and why
    for w in ctx.take_warnings():  # warnings from planning (missing paths, unsupported)
        if w.artefact == "-" and w.path:
            unusable.append(f"{', '.join(w.locators) or w.path}: {w.message}")
        result.warnings += 1
        rec = store.artefacts.get(w.artefact)
        if rec is not None:
            rec.setdefault("warnings", []).append(w.to_dict())
        else:  # the case's own (a path given, a link, the case folder): once, however
            # many runs met it again
            case_warnings = store.manifest.setdefault("warnings", [])
            if (entry := w.to_dict()) not in case_warnings:
                case_warnings.append(entry)
    error = None
    if not result.found:
        error = no_evidence_found(unusable)
    elif not result.ingested and not result.skipped:
        error = "no evidence file could be read: " + "; ".join(
            result.errors[:5] or ["no reader recognises any of the files"])
        if result.errors and result.unsupported:  # the rest: named in the manifest
            error += (f"; and {result.unsupported} file(s) empty or of no type tidehunt "
                      f"reads (listed in {store.root / 'manifest.json'})")
    if save or error:
        store.save()
    if catalogue or error:
        store.write_catalogue()
    result.seconds = time.perf_counter() - t0
    if error:
        raise NoUsableInput(error)
    return result
