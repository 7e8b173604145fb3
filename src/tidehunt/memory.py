"""Process-wide memory settings for Arrow, and how ``--max-memory`` is split.

Arrow's default pool here (mimalloc) keeps freed pages, so a run's resident memory is the
sum of every stage's peak. jemalloc with a short decay (DEFAULT_DECAY_MS) hands them back
shortly after a stage lets go of its tables: on the 100x benchmark case, detection peaked
at 982 MiB against 1,302 MiB (see docs/PERFORMANCE.md). ``TIDEHUNT_JEMALLOC_DECAY_MS``
sets the decay (0: lowest peak, about 20% more CPU in the stages that allocate most);
``ARROW_DEFAULT_MEMORY_POOL`` set by the user wins over both. Worker processes set the
same pool when they start.

``--max-memory`` (:class:`MemoryBudget`) is the whole run's: the main process and its
workers together. :meth:`MemoryBudget.ingest` and :meth:`MemoryBudget.match` say how many
worker processes fit and how many rows each may buffer; every DuckDB connection of the
run gets ``DUCKDB_SHARE`` of it as its ``memory_limit`` and spills into the case beyond.
The default budget (2GB on up to 2 workers) gives the buffers their full default sizes,
so only smaller budgets (or more workers) change anything, and then only resource use:
the rows read, matched and written are the same.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("tidehunt")


#: jemalloc's own settings, read once when Arrow's jemalloc starts: when pyarrow is loaded.
JEMALLOC_CONF = "JE_ARROW_MALLOC_CONF"


def preset_jemalloc_conf() -> bool:
    """Put tidehunt's decay settings in ``JE_ARROW_MALLOC_CONF`` while that still counts.

    Arrow's jemalloc reads its settings once, on its first allocation, which pyarrow makes
    when it is imported; from then on only arenas created later can take another decay.
    ``tidehunt/__init__.py`` calls this, so every process that imports tidehunt before
    pyarrow (the CLI, its worker processes, which inherit the variable) gets them. A
    user's own ``JE_ARROW_MALLOC_CONF`` is left alone. Returns whether the settings in the
    variable will be in effect (pyarrow not loaded yet).

    (Setting the variable only in :func:`configure_arrow_memory`, as before, came too late
    with pyarrow 26: the run had Arrow's compiled-in 1,000 ms for dirty and muzzy pages,
    and ~300 MiB of freed pages resident at the 100x hunt's peak.)
    """
    import sys

    if "pyarrow" in sys.modules:
        return False
    if JEMALLOC_CONF not in os.environ:
        os.environ[JEMALLOC_CONF] = f"dirty_decay_ms:{_decay_ms()},muzzy_decay_ms:0"
    _PRESET.append(True)
    return True


_PRESET: list[bool] = []

#: The BLAS that NumPy's wheels bundle (OpenBLAS), and its thread count.
BLAS_THREADS = "OPENBLAS_NUM_THREADS"


def preset_blas_threads() -> None:
    """One OpenBLAS thread, unless the user set a number: tidehunt does no linear
    algebra, but NumPy's OpenBLAS starts a thread per core when it loads, and those
    threads took 0.1-0.2 s of CPU in a 100x hunt (``blas_thread_server`` in ``perf``) on
    cores that ingest and matching were using. Set before NumPy loads
    (``tidehunt/__init__.py``); worker processes inherit it."""
    os.environ.setdefault(BLAS_THREADS, "1")


def configure_arrow_memory() -> str:
    """Use jemalloc where this pyarrow build has it; returns the pool.

    Freed pages go back to the system DEFAULT_DECAY_MS after a stage lets go of them
    (``TIDEHUNT_JEMALLOC_DECAY_MS``), straight from "dirty" (kept for reuse) to purged:
    no "muzzy" stage, whose lazily freed pages still count as resident. That is set in
    ``JE_ARROW_MALLOC_CONF`` before pyarrow is loaded (:func:`preset_jemalloc_conf`);
    where pyarrow came first, only the arenas jemalloc creates later (one per thread
    that allocates, up to eight) can take the decay, both stages alike.

    Also stops pyarrow importing pandas just to ask whether a list is a pandas object
    (see :func:`skip_pandas_probe`): the CLI's process and the workers call this first.
    """
    import pyarrow as pa

    skip_pandas_probe()
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return str(pa.default_memory_pool().backend_name)
    try:
        pool = pa.jemalloc_memory_pool()
        if not _PRESET and not _STARTED:
            pa.jemalloc_set_decay_ms(_decay_ms())
        _STARTED.append(True)
    except (NotImplementedError, pa.ArrowNotImplementedError) as exc:
        log.debug("jemalloc not available in this pyarrow build: %s", exc)
        return str(pa.default_memory_pool().backend_name)
    pa.set_memory_pool(pool)
    return str(pool.backend_name)


_STARTED: list[bool] = []


#: Container allocations between collections of the youngest generation (``tune_gc``).
GC_YOUNG = 20_000


def tune_gc() -> None:
    """Python's cyclic collector for a tidehunt process (the command, its ingest workers).

    A run holds a million long-lived objects (the rule plan, the manifest): at the
    default threshold (700 allocations) the collector went through all of them in 7-8
    full passes of a 100x hunt, 0.9-1.0 s of the main process, and each ingest worker
    spent 0.11-0.13 s in it. Young objects are still collected every GC_YOUNG.
    """
    import gc

    gc.set_threshold(GC_YOUNG, 10, 10)


def release_freed_memory() -> None:
    """Hand the pages freed so far back to the system, between stages.

    Arrow's jemalloc purges what its decay has not yet (``release_unused``), and glibc's
    heap gives back its free pages (``malloc_trim``): numpy arrays and large Python
    objects come from it, and once one large block has been freed glibc stops mapping
    such blocks separately, so its heap keeps every stage's high-water mark. On the 100x
    benchmark hunt that was 110-165 MiB of free heap held through the findings and the
    write stage. A few milliseconds a call; nothing happens where neither is present.
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _malloc_trim() -> Any:
    if not _TRIM:
        fn = None
        try:
            import ctypes

            # the symbols already loaded (glibc's, where there is one): no search, since
            # ctypes.util.find_library runs ldconfig in a subprocess, from a process that
            # by then holds hundreds of MiB
            fn = getattr(ctypes.CDLL(None), "malloc_trim", None)
            if fn is not None:
                fn.argtypes = [ctypes.c_size_t]
                fn.restype = ctypes.c_int
        except (OSError, TypeError):  # TypeError: no CDLL(None) on Windows
            fn = None
        _TRIM.append(fn)
    return _TRIM[0]


_TRIM: list[Any] = []


def skip_pandas_probe() -> None:
    """Tell pyarrow's lazy pandas shim, before anything asks it, that pandas is absent.

    The first ``pa.array(a_list)`` that infers a type (and ``Table.from_pylist``,
    ``pa.scalar``...) imports pandas when it is installed, to recognise pandas' interval and
    null types among the values: 0.2-0.5 s of every process's start-up, for values that are
    never pandas objects here. Both places (the Cython shim and the C++ type inference)
    remember the answer of their first look, so one probe of each, made while ``import
    pandas`` fails, settles it for the process. pyarrow imports pandas again where it is
    really needed (``Table.to_pandas()``, ``Table.from_pandas()``), so those still work.
    Nothing is done if pandas is already imported (someone uses it) or pyarrow has no
    such shim.
    """
    import sys

    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    shim = getattr(pa.lib, "_pandas_api", None)
    if shim is None:
        return
    hide = _HidePandas()
    sys.meta_path.insert(0, hide)  # makes `import pandas` fail, for the probe only
    try:
        shim.have_pandas  # noqa: B018 - the probe: the shim records "not available"
        pa.array([0])  # and the type inference, its (pandas-less) interval types
    except ImportError:
        pass
    finally:
        sys.meta_path.remove(hide)


class _HidePandas:
    """An import finder that refuses pandas (and nothing else)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


#: How long (ms) jemalloc keeps pages Arrow freed before handing them back. 0 gives the
#: lowest peak but costs a page fault on nearly every large allocation: on the 100x
#: detect, 250 was 2.3 s faster (12.2 s -> 9.9 s) for 0-45 MiB more peak (841-890 MiB
#: against 846), and 1000 or more grew the peak by 100-330 MiB for no more speed.
DEFAULT_DECAY_MS = 250


def _decay_ms() -> int:
    raw = os.environ.get("TIDEHUNT_JEMALLOC_DECAY_MS", str(DEFAULT_DECAY_MS))
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        log.warning("TIDEHUNT_JEMALLOC_DECAY_MS=%r is not a number of milliseconds; using %d",
                    raw, DEFAULT_DECAY_MS)
        return DEFAULT_DECAY_MS
    return value


_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}


def size_bytes(text: str) -> int:
    """Bytes of a size such as 512MB, 2GiB or 1.5GB."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B)\s*", text, re.I)
    if not m:
        raise ValueError(f"not a size: {text!r}")
    return int(float(m[1]) * _UNITS[m[2].upper()])


#: The budget when none is given (``--max-memory``'s default).
DEFAULT_MAX_MEMORY = "2GB"
#: Share of the budget given to a DuckDB connection (``memory_limit``); the rest is the
#: Python process around it (Arrow tables of findings, the interpreter, the plan)...
DUCKDB_SHARE = 0.7
#: ... and at most this share of what MAIN_RESERVE leaves, which is the smaller one below
#: about 2.1 GB (measured: the intel join over 8M events took its 667 MiB limit and 10%
#: more next to a 350 MiB main process, 1,090 MiB against a 1GB budget).
DUCKDB_OF_FREE = 0.9
#: What the main process holds while workers run: interpreter and libraries, the rule
#: plan, the manifest (measured: 300-360 MiB during a hunt's ingest and match).
MAIN_RESERVE = 384 << 20
#: The smallest budget taken (``--max-memory``): the main process's reserve and a little
#: room for one worker's buffers. Below it no setting could keep the run inside the budget.
MIN_BUDGET = MAIN_RESERVE + (64 << 20)
#: An ingest worker before it buffers anything (interpreter, pyarrow, the readers).
INGEST_BASE = 192 << 20
#: Memory per buffered Windows row: its Python values, then its Arrow batch and the
#: part being gathered (measured ~3 KiB for 1.2 KB evtx_dump events; some headroom).
INGEST_ROW_BYTES = 3584
#: In-process ingest adds the readers to the main process (no second interpreter).
IN_PROCESS_BASE = 96 << 20
#: The fewest rows a Windows buffer flushes at, and the fewest for a worker to be worth
#: starting (below it, fewer workers with larger buffers).
MIN_FLUSH_ROWS = 4096
MIN_WORKER_FLUSH_ROWS = 16384
#: The fewest rows a part is cut at, whatever the buffer: a scan of a table keeps a
#: Parquet reader per part (DuckDB, outside its memory_limit: ~0.2 MiB each), and the
#: manifest and catalogue grow with the parts (8M events in 4,096-row parts: 1,953
#: parts, 1.2 GiB at the analytics against a 512MB budget).
MIN_PART_ROWS = 32768
#: Memory per row of a part being gathered (its Arrow batches only: ~1.2 KB events).
PART_ROW_BYTES = 1536
#: A match worker before its chunk: interpreter, pyarrow, Polars and the loaded plan.
MATCH_BASE = 256 << 20
#: Memory per matched row: the chunk's columns, their lower-cased dictionaries and the
#: rule bitmaps. Measured: 3.9 KB a row for SigmaHQ's rules (keyword rules read all 336
#: columns) over EVTX-ATTACK-SAMPLES, 0.9 KB for the bundled pack over Windows JSON.
MATCH_ROW_BYTES = 4096
MIN_CHUNK_ROWS = 8192
MIN_WORKER_CHUNK_ROWS = 32768


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """What one ingest task may buffer (passed to each worker)."""

    #: Rows a Windows buffer holds before it becomes Arrow batches (``WindowsRows``).
    flush_rows: int
    #: Rows per table a task gathers before it writes a Parquet part.
    part_rows: int
    #: Bytes of text a line reader parses as one block.
    block_bytes: int


@dataclass(frozen=True, slots=True)
class IngestPlan:
    """Worker processes for ingest, and what each may buffer."""

    workers: int
    limits: IngestLimits


@dataclass(frozen=True, slots=True)
class MatchPlan:
    """Worker processes for Sigma matching, the rows of a chunk, and the threads that
    match chunks side by side in the main process (sharing one ValueCache)."""

    workers: int
    chunk_rows: int
    threads: int = 1
    #: ``hunt`` matches the windows parts while ingest still runs (``run.StreamMatch``).
    stream: bool = False


@dataclass(frozen=True, slots=True)
class MemoryBudget:
    """A run's memory budget in bytes (the main process and its workers together)."""

    total: int

    @classmethod
    def parse(cls, text: str | None) -> MemoryBudget | None:
        """The budget of ``--max-memory`` (``"2GB"``, ``"512MiB"``); None for none."""
        return cls(size_bytes(text)) if text else None

    def duckdb_limit(self, fraction: float = 1.0) -> str:
        """DuckDB's ``memory_limit`` for this budget, in MiB: ``DUCKDB_SHARE`` of it, but
        at most ``DUCKDB_OF_FREE`` of what the main process leaves (a DuckDB connection
        lives in the main process, and goes a little past its limit at its peak); times
        ``fraction`` for a connection that shares that room (at least 64 MiB)."""
        free = int((self.total - MAIN_RESERVE) * DUCKDB_OF_FREE)
        share = int(min(int(self.total * DUCKDB_SHARE), free) * fraction)
        return f"{max(64, share >> 20)}MiB"

    def ingest(self, workers: int, *, flush_rows: int, part_rows: int,
               block_bytes: int) -> IngestPlan:
        """At most ``workers`` ingest workers, each with an equal share of what the main
        process leaves (``(total - MAIN_RESERVE) / workers``); the defaults given are the
        largest buffers. Workers are dropped while a share cannot hold
        ``MIN_WORKER_FLUSH_ROWS`` rows; one worker means ingest in the main process."""
        free = self.total - MAIN_RESERVE

        def limits(share: int) -> IngestLimits:
            rows = min(flush_rows, max(MIN_FLUSH_ROWS, _rows(share, INGEST_ROW_BYTES)))
            if rows >= flush_rows:
                return IngestLimits(rows, part_rows, block_bytes)
            # a smaller buffer gathers smaller parts too (the two stack up in a worker),
            # but not below MIN_PART_ROWS, whose Arrow rows beyond the buffer's come out
            # of the share
            part = min(part_rows, max(rows, MIN_PART_ROWS))
            if part > rows:  # rows * ROW + (part - rows) * PART_ROW <= share
                rows = max(MIN_FLUSH_ROWS, _rows(share - part * PART_ROW_BYTES,
                                                 INGEST_ROW_BYTES - PART_ROW_BYTES))
            return IngestLimits(rows, part, max(1 << 20, min(block_bytes, share // 32)))

        while workers > 1 and limits(free // workers - INGEST_BASE).flush_rows \
                < MIN_WORKER_FLUSH_ROWS:
            workers -= 1
        share = free // workers - INGEST_BASE if workers > 1 else free - IN_PROCESS_BASE
        return IngestPlan(workers, limits(max(share, 0)))

    def match(self, workers: int, *, chunk_rows: int) -> MatchPlan:
        """At most ``workers`` match workers, each with an equal share of what the main
        process leaves; fewer while a share cannot hold ``MIN_WORKER_CHUNK_ROWS`` rows (one:
        matching in the main process, which already holds the plan)."""
        free = self.total - MAIN_RESERVE
        while workers > 1 and _rows(free // workers - MATCH_BASE,
                                    MATCH_ROW_BYTES) < MIN_WORKER_CHUNK_ROWS:
            workers -= 1
        share = free // workers - MATCH_BASE if workers > 1 else free
        # two chunks in memory at once: 150-330 MiB more at 100x, for 0.2-0.5 s less
        threads = 2 if workers > 1 and self.total >= THREADED_MATCH_BYTES else 1
        return MatchPlan(workers, min(chunk_rows, max(MIN_CHUNK_ROWS,
                                                      _rows(share, MATCH_ROW_BYTES))), threads,
                         stream=workers > 1 and self.total >= STREAM_MATCH_BYTES)


#: From this ``--max-memory`` on (and with two workers or more), the main process matches
#: two chunks at a time, in threads (the default budget keeps one: the 100x benchmark's
#: peak went from 800-840 to 970-990 MiB).
THREADED_MATCH_BYTES = 4_000_000_000  # "4GB"


#: From this ``--max-memory`` on (and with two workers or more), ``hunt`` matches the
#: ``windows`` parts as ingest commits them, in a thread of the main process, which the
#: ingest workers leave mostly idle: 100x hunt 12.5-12.8 -> 11.1-11.2 s, but the match's
#: working set then sits beside the workers' (peak 960-1,100 MiB against 840-860).
STREAM_MATCH_BYTES = 4_000_000_000  # "4GB"


def _rows(share: int, per_row: int) -> int:
    """Whole thousands (1,024) of rows that fit in ``share`` bytes."""
    return max(0, share // per_row) // 1024 * 1024


def ingest_plan(budget: MemoryBudget | None, workers: int, *, flush_rows: int,
                part_rows: int, block_bytes: int) -> IngestPlan:
    """The budget's ingest plan, or the defaults unchanged when there is no budget."""
    if budget is None:
        return IngestPlan(workers, IngestLimits(flush_rows, part_rows, block_bytes))
    return budget.ingest(workers, flush_rows=flush_rows, part_rows=part_rows,
                         block_bytes=block_bytes)


def match_plan(budget: MemoryBudget | None, workers: int, *, chunk_rows: int) -> MatchPlan:
    """The budget's match plan, or the defaults unchanged when there is no budget."""
    if budget is None:
        return MatchPlan(workers, chunk_rows)
    return budget.match(workers, chunk_rows=chunk_rows)


def limit_duckdb(con: Any, budget: MemoryBudget | None, spill: Path | None = None,
                 fraction: float = 1.0) -> None:
    """Bound a DuckDB connection by ``budget``: ``memory_limit`` (``DUCKDB_SHARE`` of it,
    times ``fraction``) and, if given, ``temp_directory`` ``spill`` to spill into (DuckDB
    creates that folder, but not its parent, when it first spills, and removes it when the
    connection closes). Nothing without a budget (DuckDB's own default: 80% of the
    machine's memory)."""
    if budget is None:
        return
    con.execute(f"SET memory_limit = '{budget.duckdb_limit(fraction)}'")
    if spill is not None:
        con.execute("SET temp_directory = '" + str(spill).replace("'", "''") + "'")
