"""A ``windows`` row buffer that takes decoded EVTX events and builds columns in bulk.

:class:`EvtxRows` is a :class:`~tidehunt.sources._winrows.WindowsRows` with one more
entry point, :meth:`EvtxRows.add_event`. For the common record (a regular ``System``,
a flat ``EventData`` of text, integers, booleans and nulls, no ``UserData``) it builds
no row dict: it appends the six declared values to the partition's six lists and keeps
the other values, raw, in one tuple filed under the record's ``EventData`` key tuple
(its "shape": the template fixes it, so a partition of one event type holds one or a
few). At flush each shape becomes Arrow in one struct conversion (a column of mixed
types is converted on its own), integers and booleans cast to text as ``scalar_text``
writes them. What goes is the per-key Python of ``event_row`` + ``WindowsRows.add``.

The batches are those of the generic path by construction rather than by imitation:

* any other record (``UserData``, an ``EventData`` that is not an object or holds
  objects, lists or floats, keys starting with ``#``, a key renamed onto another or
  meeting a ``System`` column, an odd ``Provider``/``TimeCreated``/``Execution``) goes
  through ``event_row`` at once, as before, and is kept as its row dict in the same
  partition, so what ``event_row`` raises is raised where it was;
* a partition in which two column names differ only by case (or by lone surrogates),
  where the generic merge depends on the order in which keys first appeared, is
  rebuilt as the generic path's row dicts and built by ``WindowsRows._batch`` itself;
* the declared columns (time, event ID, record ID, host, channel, provider, source
  file, provenance) and their warnings are always built by ``WindowsRows._batch``;
* partitions, their order and the flush points are those of ``WindowsRows``.

``tests/unit/test_flatten_equivalence.py`` and ``bench/bench_flatten.py`` check it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tidehunt.model.batch import TableBatch
from tidehunt.sources import _winrows
from tidehunt.sources._winrows import (
    _RESERVED,
    WindowsRows,
    _clean,
    _key,
    _Part,
    _strings,
    event_row,
    scalar_text,
)

try:  # the native flatten (native/evtxflat), built by ``make`` where Rust is at hand
    from tidehunt import _evtxflat  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the build
    _evtxflat = None

#: Text held by the native buffer before a flush is due (its offsets are 32-bit).
NATIVE_BYTES = 256 << 20
#: Environment switch: ``0`` turns the native flatten off (the Python path takes all).
NATIVE_ENV = "TIDEHUNT_NATIVE_FLATTEN"


def native_flatten() -> str | None:
    """Version of the native flatten that ``EvtxRows`` uses; None when it is not built
    or ``TIDEHUNT_NATIVE_FLATTEN=0``."""
    if _evtxflat is None or os.environ.get(NATIVE_ENV, "1") == "0":
        return None
    return str(_evtxflat.__version__)

#: Order of the declared values kept per record (that of ``system_row``'s first keys).
DECL = ("provider", "event_id", "ts", "record_id", "channel", "host")
#: System values kept per record besides the declared ones, in ``system_row``'s order.
EXTRA = ("Level", "Task", "Opcode", "Keywords", "Version", "ExecutionProcessID",
         "ExecutionThreadID", "SecurityUserID")
_N_EXTRA = len(EXTRA)
_EXTRA_LOWER = frozenset(k.lower() for k in EXTRA)
_EMPTY: dict[str, Any] = {}
_NONE_T = type(None)
_FLAT = frozenset((str, int, bool, _NONE_T))
#: Arrow type a shape's column is first tried as, by the Python type of its first value.
_ARROW = {str: pa.string(), int: pa.int64(), bool: pa.bool_(), _NONE_T: pa.string()}
_STRUCTS: dict[tuple[type, ...], pa.StructType] = {}


class _Shape:
    """The records of one partition that share an ``EventData`` key tuple."""

    __slots__ = ("keys", "names", "rows", "vals")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys  #: EventData keys as in the record
        self.names = tuple(_key(k) for k in keys)  #: their column names
        self.rows: list[int] = []  #: row numbers in the partition
        self.vals: list[tuple[Any, ...]] = []  #: EXTRA values, then EventData values


def _shape(keys: tuple[str, ...]) -> _Shape:
    """A new shape for these EventData keys, or _INVALID if they need the generic flatten."""
    s = _Shape(keys)
    lowers = {n.lower() for n in s.names}
    if (
        any(k[:1] == "#" for k in keys)  # "#text" becomes "Data" or stays, by value type
        or len(lowers) != len(keys)  # renamed onto another key, or case variants
        or not lowers.isdisjoint(_EXTRA_LOWER)  # would meet a System value
    ):
        return _INVALID
    return s


_INVALID = _Shape(())


class _CPart:
    """One (channel, event ID) partition: a list per declared value (in DECL order), then
    shapes and the rows that came as dicts (``slow``)."""

    __slots__ = ("channel", "event_id", "host", "locators", "n", "owners", "provider",
                 "record_id", "shapes", "slow", "ts")

    def __init__(self) -> None:
        self.provider: list[Any] = []
        self.event_id: list[Any] = []
        self.ts: list[Any] = []
        self.record_id: list[Any] = []
        self.channel: list[Any] = []
        self.host: list[Any] = []
        self.shapes: dict[tuple[str, ...], _Shape] = {}  #: _INVALID: generic flatten
        self.slow: list[tuple[int, dict[str, Any]]] = []
        self.locators: list[str] = []
        self.owners: list[int] = []
        self.n = 0


class _Rows:
    """Owners and locators of a native partition, as lists only if a warning needs them."""

    def __init__(self, owners: pa.Array, locators: pa.Array) -> None:
        self._o, self._l = owners, locators

    @cached_property
    def owners(self) -> list[int]:
        return self._o.to_pylist()  # type: ignore[no-any-return]

    @cached_property
    def locators(self) -> list[str]:
        return self._l.to_pylist()  # type: ignore[no-any-return]


def _text_array(n: int, col: tuple[int, bytes | None, bytes, bytes]) -> pa.Array:
    nulls, valid, offsets, data = col
    arr = pa.Array.from_buffers(
        pa.string(), n, [None if valid is None else pa.py_buffer(valid),
                         pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls)
    arr.validate()
    return arr


def _int_array(n: int, col: tuple[int, bytes | None, bytes]) -> pa.Array:
    nulls, valid, values = col
    arr = pa.Array.from_buffers(
        pa.int64(), n, [None if valid is None else pa.py_buffer(valid),
                        pa.py_buffer(values)], null_count=nulls)
    arr.validate()
    return arr


class EvtxRows(WindowsRows):
    """``WindowsRows`` that also takes decoded EVTX ``Event`` objects (``add_event``) and,
    where the native flatten is built, the parser's records themselves (``add_records``).

    ``native``: use the native flatten (None: where it is built and not switched off).
    """

    def __init__(self, source: str, artefact: str = "", source_file: str = "",
                 native: bool | None = None) -> None:
        super().__init__(source, artefact, source_file)
        if native is None:
            native = native_flatten() is not None
        #: the native buffer (rows of the records it took), or None
        self.native: Any = _evtxflat.Buffer(sorted(_RESERVED)) if native and _evtxflat \
            else None

    def add_records(self, records: list[dict[str, Any]]) -> list[int]:
        """Buffer the parser's records the native flatten takes (all but those
        ``add_event`` would send to the generic flatten, or could not take at all);
        returns the indices of the others, which the caller flattens in Python."""
        return self.native.add(records, self._cur)  # type: ignore[no-any-return]

    def full(self) -> bool:
        """True when a flush is due (the native buffer's rows and text count too)."""
        nb = self.native
        if nb is None:
            return super().full()
        n: int = self.n + nb.n
        return n >= (self.flush_rows or _winrows.FLUSH_ROWS) or \
            nb.nbytes + self.nbytes >= NATIVE_BYTES

    def _more_batches(self, arts: pa.Array, files: pa.Array) -> Iterator[TableBatch]:
        nb = self.native
        if nb is None or not nb.n:
            return
        for t in nb.take():
            yield self._native_batch(t, arts, files)

    def _native_batch(self, t: tuple[Any, ...], arts: pa.Array, files: pa.Array
                      ) -> TableBatch:
        """One native partition as the batch ``_batch`` makes of the same rows."""
        n, prov, ts, chan, host, eid, rid, loc, owners, cols = t
        own = pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(owners)])
        locator = _text_array(n, loc)
        out = {name: _text_array(n, c) for name, c in cols}
        out["ts"] = self._ts_text(_text_array(n, ts), _Rows(own, locator))
        out["event_id"] = _int_array(n, eid)
        out["record_id"] = _int_array(n, rid)
        out["host"] = _text_array(n, host)
        out["channel"] = _text_array(n, chan)
        out["provider"] = _text_array(n, prov)
        out["source_file"] = files.take(own)
        return TableBatch.of("windows", out, source=self.source, artefact=arts.take(own),
                             locator=locator)

    def _part(self, channel: Any, event_id: Any) -> _CPart:
        parts: dict[Any, _CPart] = self._parts  # type: ignore[assignment]
        key: tuple[Any, Any] = (channel, event_id)
        try:
            part = parts.get(key)
        except TypeError:  # a JSON list or object as channel or event ID: by its text
            key = (repr(channel), repr(event_id))
            part = parts.get(key)
        if part is None:
            part = parts[key] = _CPart()
        return part

    def add(self, row: dict[str, Any], locator: str, size: int = 0) -> None:
        """Buffer one flattened row (declared keys plus extra string columns); ``size``
        as ``WindowsRows.add`` takes it."""
        self.nbytes += size
        g = row.get
        part = self._part(g("channel"), g("event_id"))
        i = part.n
        part.provider.append(g("provider"))
        part.event_id.append(g("event_id"))
        part.ts.append(g("ts"))
        part.record_id.append(g("record_id"))
        part.channel.append(g("channel"))
        part.host.append(g("host"))
        part.slow.append((i, row))
        part.locators.append(locator)
        part.owners.append(self._cur)
        part.n = i + 1
        self.n += 1

    def add_event(self, event: Any, locator: str, record_id: Any = None,
                  size: int = 0) -> bool:
        """Buffer one evtx_dump ``Event`` object; False if it is none or has no ``System``
        element (nothing is buffered then).

        ``record_id`` stands in for a missing ``EventRecordID`` (the parser's own);
        ``size``: the bytes of its JSON text (a flush is due at FLUSH_BYTES).
        """
        self.nbytes += size
        if type(event) is not dict:  # {"Event": null}
            return False
        s = event.get("System")
        if type(s) is not dict:
            return False
        g = s.get
        prov = g("Provider")
        provider = None
        if type(prov) is dict:
            a = prov.get("#attributes") or _EMPTY
            if type(a) is not dict:
                return self._generic(event, locator, record_id)
            provider = a.get("Name") or a.get("EventSourceName")
        eid = g("EventID")
        if type(eid) is dict:
            eid = eid.get("#text")
        tc = g("TimeCreated")
        if type(tc) is dict:
            a = tc.get("#attributes") or _EMPTY
            if type(a) is not dict:
                return self._generic(event, locator, record_id)
            tc = a.get("SystemTime")
        pid = tid = uid = None
        ex = g("Execution")
        if type(ex) is dict:
            a = ex.get("#attributes")
            if type(a) is dict:
                pid = a.get("ProcessID")
                tid = a.get("ThreadID")
                # system_row keeps str(v): the same text as scalar_text for these only
                if (pid is not None and type(pid) is not int and type(pid) is not str) or (
                        tid is not None and type(tid) is not int and type(tid) is not str):
                    return self._generic(event, locator, record_id)
        sec = g("Security")
        if type(sec) is dict:
            a = sec.get("#attributes")
            if type(a) is dict:
                uid = a.get("UserID")
        ed = event.get("EventData")
        if ed is None:
            keys: tuple[str, ...] = ()
            vals: Any = ()
        elif type(ed) is dict:
            keys = tuple(ed)
            vals = ed.values()
        else:
            return self._generic(event, locator, record_id)
        if event.get("UserData") is not None:
            return self._generic(event, locator, record_id)
        row = (g("Level"), g("Task"), g("Opcode"), g("Keywords"), g("Version"), pid, tid, uid,
               *vals)
        # anything but text, integers, booleans and nulls takes the generic flatten: objects
        # and lists (nested names, "#text", a recursion error where event_row raises it),
        # and floats (Arrow would take 1.5 for an integer column)
        if not _FLAT.issuperset(map(type, row)):
            return self._generic(event, locator, record_id)
        channel = g("Channel")
        parts: dict[Any, _CPart] = self._parts  # type: ignore[assignment]
        key = (channel, eid)
        try:
            part = parts[key]
        except KeyError:
            part = parts[key] = _CPart()
        except TypeError:  # unhashable channel or event ID
            part = self._part(channel, eid)
        shape = part.shapes.get(keys)
        if shape is None:
            shape = part.shapes[keys] = _shape(keys)
        if shape is _INVALID:
            return self._generic(event, locator, record_id)
        rid = g("EventRecordID")
        if rid is None:
            rid = record_id
        i = part.n
        part.provider.append(provider)
        part.event_id.append(eid)
        part.ts.append(tc)
        part.record_id.append(rid)
        part.channel.append(channel)
        part.host.append(g("Computer"))
        shape.rows.append(i)
        shape.vals.append(row)
        part.locators.append(locator)
        part.owners.append(self._cur)
        part.n = i + 1
        self.n += 1
        return True

    def _generic(self, event: dict[str, Any], locator: str, record_id: Any) -> bool:
        row = event_row(event)
        if row is None:
            return False
        if row.get("record_id") is None:
            row["record_id"] = record_id
        self.add(row, locator)
        return True

    def _batch(self, part: Any, arts: pa.Array, files: pa.Array) -> TableBatch:
        if not isinstance(part, _CPart):
            return super()._batch(part, arts, files)
        n = part.n
        segments: list[tuple[list[int], dict[str, pa.Array]]] = [
            (shape.rows, _shape_columns(shape))
            for shape in part.shapes.values() if shape.rows]
        if part.slow:
            segments.append(([i for i, _ in part.slow],
                             _dict_columns([r for _, r in part.slow])))
        names = {k for _, cols in segments for k in cols}
        if len({k.lower() for k in names}) != len(names) or len(
                {_clean(k) for k in names}) != len(names):
            return super()._batch(self._replay(part), arts, files)
        extras: dict[str, pa.Array] = {}
        if len(segments) == 1:
            extras = {_clean(k): a for k, a in segments[0][1].items()}
        else:  # back into arrival order: one concatenation and one take for all columns
            order = pa.array([i for rows, _ in segments for i in rows], pa.int64())
            whole = pa.concat_tables(
                [pa.table({_clean(k): a for k, a in cols.items()}) if cols
                 else pa.table({"": pa.nulls(len(rows))}) for rows, cols in segments],
                promote_options="default",
            ).take(pc.sort_indices(order))  # one chunk per column
            extras = {c: whole.column(c).chunk(0) for c in map(_clean, names)}
        # the declared columns, provenance and their warnings: exactly WindowsRows' own
        base = _Part()
        base.n = n
        base.cols = {k: getattr(part, k) for k in DECL}
        base.locators = part.locators
        base.owners = part.owners
        tb = super()._batch(base, arts, files)
        data = tb.data
        cols_out = dict(extras)
        cols_out.update(zip(data.schema.names, data.columns, strict=True))
        return TableBatch.of("windows", cols_out, source=self.source, artefact=arts,
                             locator=data.column("_locator"))

    def _replay(self, part: _CPart) -> _Part:
        """The partition as ``WindowsRows.add`` would have buffered it."""
        rows: list[dict[str, Any]] = [_EMPTY] * part.n
        for i, r in part.slow:
            rows[i] = r
        for shape in part.shapes.values():
            for i, v in zip(shape.rows, shape.vals, strict=True):
                rows[i] = _row(tuple(getattr(part, k)[i] for k in DECL), shape, v)
        tmp = WindowsRows(self.source)
        for r, loc in zip(rows, part.locators, strict=True):
            tmp.add(r, loc)
        (out,) = tmp._parts.values()
        out.owners = part.owners
        return out


def _row(decl: tuple[Any, ...], shape: _Shape, vals: tuple[Any, ...]) -> dict[str, Any]:
    """The dict ``event_row`` makes of a record kept as tuples."""
    row = dict(zip(DECL, decl, strict=True))
    for k, v in zip(EXTRA[:5], vals[:5], strict=True):  # as system_row: Level .. Version
        if v is not None:
            t = type(v)
            row[k] = v if t is str else str(v) if t is int else scalar_text(v)
    if (v := vals[5]) is not None:
        row["ExecutionProcessID"] = str(v)
    if (v := vals[6]) is not None:
        row["ExecutionThreadID"] = str(v)
    if (v := vals[7]) is not None:
        row["SecurityUserID"] = v
    data = event_row({"System": {}, "EventData": dict(zip(shape.keys, vals[_N_EXTRA:],
                                                          strict=True))})
    for k, v in (data or {}).items():
        if k not in row:  # the declared six are there already (None from the empty System)
            row[k] = v
    return row


def _shape_columns(shape: _Shape) -> dict[str, pa.Array]:
    """Extra columns of a shape's rows (values are text, integers, booleans or None).

    One struct conversion types each column by its first value; a column that mixes
    types makes it fail, and then each column is converted on its own.
    """
    vals = shape.vals
    sig = tuple(map(type, vals[0]))
    st = _STRUCTS.get(sig)
    if st is None:
        if len(_STRUCTS) >= 4096:  # hostile input with endless shapes: keep the cache small
            _STRUCTS.clear()
        st = _STRUCTS[sig] = pa.struct([pa.field(str(i), _ARROW[t]) for i, t in enumerate(sig)])
    try:
        fields = pa.array(vals, st).flatten()
    except (pa.ArrowTypeError, pa.ArrowInvalid, OverflowError, UnicodeEncodeError):
        fields = [_text(c) for c in zip(*vals, strict=True)]
    out: dict[str, pa.Array] = {}
    # system_row sets an EXTRA key when the value is not None; event_row skips None data
    for name, arr in zip(EXTRA + shape.names, fields, strict=True):
        if arr.null_count != len(arr):
            out[name] = arr if arr.type == pa.string() else arr.cast(pa.string())
    return out


def _text(col: tuple[Any, ...]) -> pa.Array:
    """``_strings`` of the values, i.e. their ``scalar_text``, in as few passes as may be."""
    try:
        return pa.array(col, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid, UnicodeEncodeError):
        pass
    types = set(map(type, col))
    types.discard(_NONE_T)
    if types == {int}:
        for typ in (pa.int64(), pa.uint64()):  # a UInt64 substitution may pass 2**63
            try:
                return pa.array(col, typ).cast(pa.string())
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                pass
    elif types == {bool}:
        return pa.array(col, pa.bool_()).cast(pa.string())
    return _strings(list(col))


def _dict_columns(rows: list[dict[str, Any]]) -> dict[str, pa.Array]:
    """Extra columns of rows that came as dicts, as ``WindowsRows`` builds them."""
    n = len(rows)
    cols: dict[str, list[Any]] = {}
    for i, row in enumerate(rows):
        for k, v in row.items():
            lst = cols.get(k)
            if lst is None:
                lst = cols[k] = [None] * i
            elif len(lst) < i:
                lst.extend([None] * (i - len(lst)))
            lst.append(v)
    out: dict[str, pa.Array] = {}
    for k, lst in cols.items():
        if k in WindowsRows.DECLARED:
            continue
        if len(lst) < n:
            lst.extend([None] * (n - len(lst)))
        out[k] = _strings(lst)
    return out
