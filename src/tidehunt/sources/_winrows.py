"""Shared helpers for Sources that write the ``windows`` table.

Flattening is the only per-event Python in tidehunt; it is kept to one pass over
each record's keys. Rows are buffered per (channel, event_id) so each partition's
columns are built from a small key set, then turned into Arrow in bulk.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from tidehunt.model.batch import TableBatch
from tidehunt.model.tables import WINDOWS

FLUSH_ROWS = 65_536
#: Bytes of events (their text as read) a buffer holds before a flush is due, whatever
#: its rows: 65,536 PowerShell script blocks of 32 KB are 2 GB (see ``ingest.PART_BYTES``).
FLUSH_BYTES = 256 << 20
BAD_TS = "unreadable event time (kept with no time)"
BAD_EID = "unreadable event ID (kept with no event ID)"
CASE_CLASH = ("fields of one record meet in one column (names differing only by case, or a "
              "reserved name renamed onto another): kept the value of the name first in "
              "code-point order, dropped the other")

#: Declared column names (lower case) that an EventData key must not shadow.
_RESERVED = {f.name.lower() for f in WINDOWS.fields}

_ISO = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?$"


def scalar_text(v: Any) -> str | None:
    """Text of a JSON scalar or list as Sigma compares it."""
    if v is None:
        return None
    if type(v) is str:
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        parts = [scalar_text(x) for x in v]
        return "\n".join(p for p in parts if p is not None)
    if isinstance(v, dict):
        t = v.get("#text")
        return scalar_text(t) if t is not None else None
    return str(v)


def flatten_into(out: dict[str, str], node: Mapping[str, Any]) -> None:
    """Flatten EventData/UserData into ``out`` by leaf name (first spelling wins)."""
    for k, v in node.items():
        if type(v) is dict:
            if "#text" in v or not v:
                t = scalar_text(v.get("#text"))
                if t is not None:
                    _put(out, k, t)
                attrs = v.get("#attributes")
                if isinstance(attrs, dict):
                    flatten_into(out, attrs)
            else:
                flatten_into(out, v)
        elif k == "#attributes" and isinstance(v, dict):
            flatten_into(out, v)
        else:
            t = scalar_text(v)
            if t is not None:
                _put(out, "Data" if k == "#text" else k, t)


def _put(out: dict[str, str], key: str, value: str) -> None:
    key = _key(key)
    if key not in out:
        out[key] = value


_KEYS: dict[str, str] = {}
_SYS_EXTRA = ("Level", "Task", "Opcode", "Keywords", "Version")


def _key(k: str) -> str:
    """Column name for an EventData key (reserved names get a trailing underscore)."""
    v = _KEYS.get(k)
    if v is None:
        v = _KEYS[k] = k + "_" if k.lower() in _RESERVED else k
    return v


def system_row(system: Mapping[str, Any]) -> dict[str, Any]:
    """Columns from an evtx_dump-shaped ``System`` element."""
    g = system.get
    prov = g("Provider")
    eid = g("EventID")
    if type(eid) is dict:
        eid = eid.get("#text")
    tc = g("TimeCreated")
    if type(tc) is dict:
        tc = (tc.get("#attributes") or {}).get("SystemTime")
    row: dict[str, Any] = {
        "provider": None,
        "event_id": eid,
        "ts": tc,
        "record_id": g("EventRecordID"),
        "channel": g("Channel"),
        "host": g("Computer"),
    }
    if type(prov) is dict:
        a = prov.get("#attributes") or {}
        row["provider"] = a.get("Name") or a.get("EventSourceName")
    for k in _SYS_EXTRA:
        v = g(k)
        if v is not None:
            t = type(v)
            row[k] = v if t is str else str(v) if t is int else scalar_text(v)
    ex = g("Execution")
    if type(ex) is dict:
        a = ex.get("#attributes")
        if type(a) is dict:
            if (v := a.get("ProcessID")) is not None:
                row["ExecutionProcessID"] = str(v)
            if (v := a.get("ThreadID")) is not None:
                row["ExecutionThreadID"] = str(v)
    sec = g("Security")
    if type(sec) is dict:
        a = sec.get("#attributes")
        if type(a) is dict and (uid := a.get("UserID")) is not None:
            row["SecurityUserID"] = uid
    return row


def event_row(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """One windows row from an evtx_dump ``Event`` object (or one without the wrapper)."""
    system = event.get("System")
    if type(system) is not dict:
        return None
    row = system_row(system)
    for name in ("EventData", "UserData"):
        node = event.get(name)
        if node is None:
            continue
        if type(node) is not dict:
            text = scalar_text(node)
            if text:
                row.setdefault("Data", text)
            continue
        for k, v in node.items():
            t = type(v)
            if t is str:
                row.setdefault(_key(k), v)
            elif v is None:
                continue
            elif t is int:
                row.setdefault(_key(k), str(v))
            else:
                sub: dict[str, str] = {}
                flatten_into(sub, {k: v})
                for sk, sv in sub.items():
                    row.setdefault(sk, sv)
    return row


class _Part:
    """Column lists of one (channel, event ID) partition, padded with None lazily."""

    __slots__ = ("cols", "locators", "n", "owners")

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {}
        self.locators: list[str] = []
        self.owners: list[int] = []
        self.n = 0


class WindowsRows:
    """Buffers flattened rows and yields ``windows`` TableBatches of up to FLUSH_ROWS rows.

    One buffer may collect rows of many artefacts (call ``begin`` before each), so a
    worker that reads hundreds of small EVTX files builds a few large batches rather
    than hundreds of tiny ones: per-batch Arrow costs dominate otherwise.
    """

    DECLARED = ("ts", "host", "channel", "provider", "event_id", "record_id")

    def __init__(self, source: str, artefact: str = "", source_file: str = "") -> None:
        self.source = source
        self._parts: dict[tuple[Any, Any], _Part] = {}
        self._arts: list[tuple[str, str]] = []
        self._cur = -1
        self.n = 0
        #: Bytes of the rows held, as the readers count them (the events' own text).
        self.nbytes = 0
        #: Rows held before a flush is due; None: FLUSH_ROWS (an ingest worker sets it
        #: from its share of ``--max-memory``).
        self.flush_rows: int | None = None
        #: (artefact id, source_file, message) -> [count, first locators]; filled at flush,
        #: because values are checked in bulk when a batch is built.
        self._defects: dict[tuple[str, str, str], list[Any]] = {}
        if artefact:
            self.begin(artefact, source_file)

    def begin(self, artefact: str, source_file: str) -> None:
        """Rows added from now on belong to this artefact."""
        self._arts.append((artefact, source_file))
        self._cur = len(self._arts) - 1

    def add(self, row: dict[str, Any], locator: str, size: int = 0) -> None:
        """Buffer one flattened row (declared keys plus extra string columns); ``size``:
        the bytes of the event it came from (a flush is due at FLUSH_BYTES)."""
        self.nbytes += size
        key: tuple[Any, Any] = (row.get("channel"), row.get("event_id"))
        try:
            part = self._parts.get(key)
        except TypeError:  # a JSON list or object as channel or event ID: by its text
            key = (repr(key[0]), repr(key[1]))
            part = self._parts.get(key)
        if part is None:
            part = self._parts[key] = _Part()
        n = part.n
        cols = part.cols
        for k, v in row.items():
            lst = cols.get(k)
            if lst is None:
                lst = cols[k] = [None] * n
            elif len(lst) < n:
                lst.extend([None] * (n - len(lst)))
            lst.append(v)
        part.locators.append(locator)
        part.owners.append(self._cur)
        part.n = n + 1
        self.n += 1

    def full(self) -> bool:
        """True when a flush is due: FLUSH_ROWS rows (or ``flush_rows``), or FLUSH_BYTES
        of events (a batch of large events stays one a part can be cut by)."""
        return self.n >= (self.flush_rows or FLUSH_ROWS) or self.nbytes >= FLUSH_BYTES

    def flush(self) -> Iterator[TableBatch]:
        """Yield one batch per buffered partition and clear the buffer."""
        parts = self._parts
        self._parts, self.n, self.nbytes = {}, 0, 0
        arts = pa.array([a for a, _ in self._arts], pa.string())
        files = pa.array([f for _, f in self._arts], pa.string())
        for part in parts.values():
            idx = pa.array(part.owners, pa.int32())
            yield self._batch(part, arts.take(idx), files.take(idx))
        yield from self._more_batches(arts, files)
        if self._cur >= 0:
            self._arts = [self._arts[self._cur]]
            self._cur = 0

    def _more_batches(self, arts: pa.Array, files: pa.Array) -> Iterator[TableBatch]:
        """Batches of rows buffered elsewhere than ``_parts`` (``EvtxRows``' native ones);
        ``arts`` and ``files`` by owner number."""
        return iter(())

    def _batch(self, part: _Part, arts: pa.Array, files: pa.Array) -> TableBatch:
        n = part.n
        raw = part.cols
        for lst in raw.values():
            if len(lst) < n:
                lst.extend([None] * (n - len(lst)))
        # merge spellings that differ only by case (DuckDB and Sigma treat them as one)
        canon: dict[str, str] = {}
        for k in raw:
            canon.setdefault(k.lower(), k)
        groups: dict[str, list[str]] = {}
        for k in raw:
            if k not in self.DECLARED:
                groups.setdefault(_clean(canon[k.lower()]), []).append(k)
        cols: dict[str, pa.Array] = {}
        for target, keys in groups.items():
            if len(keys) == 1:
                cols[target] = _strings(raw[keys[0]])
                continue
            # a record holding two of the spellings keeps one value: the same one whatever
            # else its batch holds (the first name in code-point order), with a warning
            arrs = [_strings(raw[k]) for k in sorted(keys)]
            merged, lost = arrs[0], None
            for arr in arrs[1:]:
                clash = pc.fill_null(pc.not_equal(merged, arr), False)
                lost = clash if lost is None else pc.or_(lost, clash)
                merged = pc.coalesce(merged, arr)
            if pc.any(lost).as_py():
                self._note(part, CASE_CLASH, pc.indices_nonzero(lost).to_pylist())
            cols[target] = merged
        none = [None] * n
        locators = part.locators
        cols["ts"] = self._ts(raw.get("ts", none), part)
        cols["event_id"] = self._eid(raw.get("event_id", none), part)
        rec = raw.get("record_id", none)
        try:
            cols["record_id"] = pa.array(rec, pa.int64())
        except (pa.ArrowTypeError, pa.ArrowInvalid, TypeError, OverflowError):
            cols["record_id"] = pa.array([_int_or_none(v) for v in rec], pa.int64())
        for k in ("host", "channel", "provider"):
            cols[k] = _strings(raw.get(k, none))
        cols["source_file"] = files
        return TableBatch.of(
            "windows",
            cols,
            source=self.source,
            artefact=arts,
            locator=pa.array(locators, pa.string()),
        )

    def _note(self, part: Any, message: str, rows: list[int]) -> None:
        """Count rows kept with a defect against the artefact each came from."""
        for i in rows:
            art, path = self._arts[part.owners[i]]
            d = self._defects.setdefault((art, path, message), [0, []])
            d[0] += 1
            if len(d[1]) < 20:
                d[1].append(part.locators[i])

    def report(self, ctx: Any, source: str) -> None:
        """Turn the defects found by flushes so far into warnings (one per kind and file)."""
        for (art, path, message), (count, locs) in self._defects.items():
            ctx.warn(art, source, message, locs, count, path=path)
        self._defects.clear()

    def _ts(self, vals: list[Any], part: Any) -> pa.Array:
        return self._ts_text(_strings([None if v is None else str(v) for v in vals]), part)

    def _ts_text(self, arr: pa.Array, part: Any) -> pa.Array:
        """Event times from their text; ``part`` has the rows' ``owners`` and ``locators``
        (for the warning about those that cannot be read)."""
        try:
            return arr.cast(pa.timestamp("us", tz="UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        arr = pc.replace_substring_regex(arr, r" ", "T", max_replacements=1)
        ok = pc.match_substring_regex(arr, _ISO)
        bad = pc.and_kleene(pc.invert(ok), pc.is_valid(arr))
        if pc.any(bad).as_py():
            self._note(part, BAD_TS, pc.indices_nonzero(bad).to_pylist())
        clean = pc.if_else(ok, arr, pa.scalar(None, pa.string()))
        # values with no zone are UTC by the formats' definition (evtx SystemTime, @timestamp)
        has_zone = pc.match_substring_regex(clean, r"(Z|[+-]\d{2}:?\d{2})$")
        clean = pc.if_else(has_zone, clean, pc.binary_join_element_wise(clean, "Z", ""))
        clean = pc.replace_substring_regex(clean, r"(\.\d{6})\d+", r"\1")
        try:
            return clean.cast(pa.timestamp("us", tz="UTC"))
        except pa.ArrowInvalid:
            return self._ts_slow(clean, part)

    def _ts_slow(self, clean: pa.Array, part: Any) -> pa.Array:
        """Per-value parse for the rare batch with an impossible date (e.g. month 13)."""
        out: list[datetime | None] = []
        bad: list[int] = []
        for i, v in enumerate(clean.to_pylist()):
            try:
                out.append(None if v is None else datetime.fromisoformat(v))
            except ValueError:
                out.append(None)
                bad.append(i)
        self._note(part, BAD_TS, bad)
        return pa.array(out, pa.timestamp("us", tz="UTC"))

    def _eid(self, vals: list[Any], part: _Part) -> pa.Array:
        try:
            return pa.array(vals, pa.int64())
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            pass
        out: list[int | None] = []
        bad: list[int] = []
        for i, v in enumerate(vals):
            iv = _int_or_none(v)
            if iv is None and v is not None:
                bad.append(i)
            out.append(iv)
        self._note(part, BAD_EID, bad)
        return pa.array(out, pa.int64())


def _int_or_none(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, dict):
        return _int_or_none(v.get("#text"))
    try:
        i = v if type(v) is int else int(str(v).strip())
    except ValueError:
        return None
    return i if -(1 << 63) <= i < 1 << 63 else None  # beyond int64: unreadable


def _strings(vals: list[Any]) -> pa.Array:
    """Values as a string column: JSON lists and objects as their text, lone UTF-16
    surrogates (``"\\ud800"`` escapes in JSON exports of damaged logs) as U+FFFD."""
    try:
        return pa.array(vals, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid, UnicodeEncodeError):
        pass
    out: list[str | None] = []
    for v in vals:
        t = scalar_text(v)
        out.append(None if t is None else _clean(t))
    return pa.array(out, pa.string())


def _clean(t: str) -> str:
    """``t`` with lone UTF-16 surrogates replaced by U+FFFD (Arrow text is UTF-8)."""
    try:
        t.encode("utf-8")
    except UnicodeEncodeError:
        return t.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return t


class WindowsSource:
    """Mixin for Sources that write ``windows`` rows through a (possibly shared) buffer.

    Subclasses implement ``read_rows``; ``read`` wraps it with a buffer of its own. The
    ingest worker passes one buffer through all artefacts of a task instead.
    """

    NAME: ClassVar[str]

    @abc.abstractmethod
    def read_rows(self, artefact: Any, ctx: Any, sink: WindowsRows) -> Iterator[TableBatch]:
        """Add the artefact's rows to ``sink``; yield batches whenever it is full."""

    def new_sink(self) -> WindowsRows:
        """The buffer this Source's rows go through (one per Source in an ingest task)."""
        return WindowsRows(self.NAME)

    def read(self, artefact: Any, ctx: Any) -> Iterator[TableBatch]:
        """Read one artefact into batches of its own."""
        sink = self.new_sink()
        sink.begin(artefact.id, artefact.display)
        yield from self.read_rows(artefact, ctx, sink)
        yield from sink.flush()
        sink.report(ctx, self.NAME)
