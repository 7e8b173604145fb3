"""Turn rule hits into finding rows: one finding per (rule, event) for detection rules."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tidehunt.detect.sigma.plan import Plan
from tidehunt.detect.sigma.run import MatchResult, one_array, plain
from tidehunt.model.finding import EVIDENCE_TYPE, FINDINGS_SCHEMA, finding_ids
from tidehunt.model.rule import Severity

#: Declared columns shown under their Sigma/EVTX names in a finding's ``fields``.
SIGMA_NAMES = {
    "event_id": "EventID",
    "channel": "Channel",
    "host": "Computer",
    "provider": "Provider_Name",
    "record_id": "EventRecordID",
    "ts": "TimeCreated",
}
_HIDDEN = {"_source", "_artefact", "_locator", "source_file"}
USER_FIELDS = ("User", "TargetUserName", "SubjectUserName", "AccountName", "UserName")
SRC_FIELDS = ("SourceIp", "IpAddress", "SourceAddress", "ClientIP")
DST_FIELDS = ("DestinationIp", "DestinationHostname", "DestAddress")
#: Fields shown (in this order, if present) in a finding's one-line details.
DETAIL_FIELDS = (
    "CommandLine", "Image", "ParentImage", "TargetFilename", "TargetObject", "Details",
    "QueryName", "DestinationHostname", "DestinationIp", "DestinationPort", "ImageLoaded",
    "ScriptBlockText", "ServiceName", "ImagePath", "TaskName", "TargetUserName",
    "SubjectUserName", "IpAddress", "LogonType", "ProcessName", "Payload", "Data",
)
MAX_DETAIL = 240
#: A part to take matched rows from: its path, or the table matching read already.
Part: TypeAlias = "str | pa.Table"


@dataclass(frozen=True, slots=True)
class EventRows:
    """A part's :func:`event_rows` already made (by matching: ``run.HitKeeper``)."""

    table: pa.Table


def _detail_items(fields: dict[str, Any], limit: int) -> list[str]:
    """Hayabusa-style ``Key: value`` items of the most telling fields, in order.

    A finding's summary joins the first four with `` ¦ ``, its details line the first six.
    """
    out: list[str] = []
    for k in DETAIL_FIELDS:
        v = fields.get(k)
        if v in (None, "", "-"):
            continue
        s = " ".join(str(v).split())
        if len(s) > MAX_DETAIL:
            s = s[:MAX_DETAIL] + "…"
        out.append(f"{k}: {s}")
        if len(out) >= limit:
            break
    return out


def _first(fields: dict[str, Any], names: Sequence[str]) -> str | None:
    for n in names:
        v = fields.get(n)
        if v not in (None, "", "-"):
            return str(v)
    return None


def build_findings(plan: Plan, res: MatchResult, emit: set[int], *, with_hits: bool = True,
                   hit_rules: Collection[int] | None = None) -> tuple[pa.Table, pa.Table]:
    """Findings for hits of rules in ``emit``, and the hits correlations read: those of
    the rules in ``hit_rules`` (all rules when None).

    Work per matched event (its fields JSON and details line) is done once however many
    rules hit it; everything per hit or per rule is assembled with Arrow take/join.

    Returns (findings table in FINDINGS_SCHEMA, hit table with rule index and fields JSON;
    empty unless ``with_hits``: only correlation rules read it).
    """
    order = np.lexsort((res.row, res.part))
    rule, part, row = res.rule[order], res.part[order], res.row[order]
    ev_tables: list[pa.Table] = []
    per_event: dict[str, list[pa.Array]] = {k: [] for k in ("fields", "det", "det6", "user",
                                                            "src", "dst")}
    hit_event: list[np.ndarray] = []
    base = 0
    sources: list[Part | EventRows | None] = []  # each let go of once read
    wanted: list[tuple[np.ndarray, np.ndarray]] = []  # rows of the part, hit -> event
    for p in np.unique(part):
        sel = part == p
        uniq, inv = np.unique(row[sel], return_inverse=True)
        kept = res.tables.pop(int(p), None) if res.tables else None
        held = res.kept_rows.pop(int(p), None) if res.kept_rows and kept is not None \
            else None
        if held is None:
            sources.append(res.parts[int(p)] if kept is None else kept)
            wanted.append((uniq, inv))
        else:  # the event rows of the part's hits: where each wanted row is among them
            at = np.searchsorted(held, uniq)
            if not (at[-1] < len(held) and np.array_equal(held[at], uniq)):
                raise AssertionError("event rows kept while matching miss a hit")
            sources.append(EventRows(kept))
            wanted.append((at, inv))
    for t, (uniq, inv) in zip(_matched_rows(sources, [u for u, _ in wanted]), wanted,
                              strict=True):
        for key in per_event:
            per_event[key].append(one_array(t.column(_DERIVED + key)))
        ev_tables.append(t.select([c for c in _EVENT_COLS if c in t.column_names]))
        hit_event.append(inv.reshape(-1).astype(np.int64) + base)
        base += len(uniq)
        del t
    he = np.concatenate(hit_event) if hit_event else np.zeros(0, np.int64)
    # the fields JSON stays in its parts' arrays: hits are in event order, so each part's
    # hits take from its own array, which then goes (never one joined copy of them all)
    fields: list[pa.Array] = list(per_event.pop("fields"))
    starts = np.cumsum([0] + [len(f) for f in fields])
    ev = _event_table(ev_tables, per_event)
    ids = [r["id"] or r["title"] for r in plan.rules]
    arts = ev["artefact"].to_pylist()
    locs = ev["locator"].to_pylist()
    fids = pa.array(finding_ids(ids, rule.tolist(), [(str(a), str(lc)) for a, lc in
                                                     zip(arts, locs, strict=True)],
                                he.tolist()), pa.string())
    evidence = pa.StructArray.from_arrays(
        [pa.array(["windows"] * base, pa.string()), ev["source_file"], ev["artefact"],
         ev["record_id"], ev["locator"]],
        fields=list(EVIDENCE_TYPE))
    if not with_hits:
        hsel = np.zeros(0, np.int64)
    elif hit_rules is None:
        hsel = np.arange(len(he))
    else:  # a correlation reads only its rules' hits: the others' fields are not copied
        hsel = np.flatnonzero(np.isin(rule, np.fromiter(hit_rules, np.int64, len(hit_rules))))
    hidx = pa.array(he[hsel])
    sel = pa.array(hsel)
    hits = pa.table({
        "rule": pa.array(rule, pa.int32()).take(sel),
        "ts": ev["ts"].take(hidx),
        "host": ev["host"].take(hidx),
        "finding_id": fids.take(sel),
        "fields": _take_in_order(fields, starts, he[hsel]),
        "evidence": evidence.take(hidx),
    })
    del hidx, sel
    keep = np.flatnonzero(np.isin(rule, np.fromiter(emit, np.int64, len(emit))))
    found_ids = fids.take(pa.array(keep))
    del fids
    # the findings in the run's order (time, then finding ID: ``engine.sort_findings``):
    # their fields JSON, most of their bytes, is taken from the events once, in that
    # order, and the sort then finds these rows in place and copies nothing
    order = pc.sort_indices(pa.table({"ts": ev["ts"].take(pa.array(he[keep])),
                                      "id": found_ids}),
                            [("ts", "ascending"), ("id", "ascending")])
    keep = keep[order.to_numpy()]
    found_ids = found_ids.take(order)
    kev = pa.array(he[keep])
    found_evidence = evidence.take(kev)
    del evidence, arts, locs, order
    # each event column is dropped once taken per finding; the per-event fields JSON is
    # joined once, then let go of as soon as the findings' copy of it is taken
    used = ("ts", "host", "channel", "event_id", "det", "det6", "user", "src", "dst")
    per_finding: dict[str, pa.Array | pa.ChunkedArray] = {
        "fields": _take_by_slices(fields, he[keep])}
    del fields
    per_finding |= {k: ev.pop(k).take(kev) for k in used}
    ev.clear()
    return _findings(plan, rule[keep], per_finding, found_ids, found_evidence), hits


#: Rows per chunk of a finding column taken from its events (``_take_in_order``,
#: ``_take_by_slices``).
TAKE_ROWS = 16_384


def _take_in_order(chunks: list[pa.Array], starts: np.ndarray, indices: np.ndarray
                   ) -> pa.ChunkedArray:
    """The values at ``indices`` (ascending) of ``chunks`` put end to end (``starts``: where
    each begins), as chunks of at most TAKE_ROWS rows.

    One take of a large text column grows its output buffer by doubling and copying:
    the fields JSON of 110,600 findings (150 MiB) took ~300 MiB at the peak of the take.
    Chunks of it are sized once each and never joined.
    """
    out: list[pa.Array] = []
    bounds = np.searchsorted(indices, starts)
    for j, values in enumerate(chunks):
        lo, hi = int(bounds[j]), int(bounds[j + 1])
        for a in range(lo, hi, TAKE_ROWS):
            out.append(values.take(pa.array(indices[a:min(hi, a + TAKE_ROWS)] - starts[j])))
    return pa.chunked_array(out, pa.string())


def _take_by_slices(chunks: list[pa.Array], indices: np.ndarray) -> pa.ChunkedArray:
    """The values at ``indices`` (in any order) of the text arrays ``chunks`` put end to
    end, as chunks of at most TAKE_ROWS rows, each one take from the chunks joined once.

    ``chunks`` is emptied (each array goes once joined). They are joined as large strings
    (64-bit offsets: the events' JSON of a large case can pass 2 GiB, more than one
    ``string`` array holds) and each slice taken is a ``string`` array again. A take per
    slice sizes its output once, where one take of the whole column grows it by doubling
    and copying.
    """
    values = pa.concat_arrays([c.cast(pa.large_string()) for c in chunks]) if chunks \
        else pa.array([], pa.large_string())
    chunks.clear()
    return pa.chunked_array([values.take(pa.array(indices[a:a + TAKE_ROWS])).cast(pa.string())
                             for a in range(0, len(indices), TAKE_ROWS)], pa.string())


#: Parts made ready ahead of the one in use (each by a thread of its own; 2 took 0.3 s
#: less at 100x for 60 MiB more at the peak, which is this build).
AHEAD = 1
#: Cells (rows x columns) of a part read at once for its matched rows; a larger part is
#: read as groups of columns, each let go of once its rows are taken.
READ_CELLS = 1 << 22


def _matched_rows(sources: list[Part | EventRows | None], wanted: Sequence[np.ndarray]
                  ) -> Iterator[pa.Table]:
    """The :func:`event_rows` of each part's wanted rows in turn, the next parts' made
    while this one is used.

    ``sources[i]`` is a path, or the part as matching read it (``MatchResult.tables``).
    Reading a part (hundreds of columns), taking its rows and building their event
    columns run in Arrow with the GIL released, so AHEAD parts are made at once, beside
    the work on the current one; each part is let go of once its rows are taken, and a
    part of more than READ_CELLS cells is read a group of columns at a time.
    """
    def read(part: Part | EventRows, rows: np.ndarray) -> pa.Table:
        if isinstance(part, EventRows):
            if len(rows) == part.table.num_rows:  # rows ascending and distinct: all
                return part.table
            return part.table.take(pa.array(rows))
        idx = pa.array(rows)
        if not isinstance(part, str):
            return event_rows(part.take(idx))
        pf = pq.ParquetFile(part)
        names = pf.schema_arrow.names
        if pf.metadata.num_rows * len(names) <= READ_CELLS:
            return event_rows(pf.read().take(idx))
        # a large part is read a group of columns at a time, only its wanted rows kept
        # of each: it is never whole in memory (a 53k-row part of 344 columns is 100 MiB)
        step = max(1, READ_CELLS // max(1, pf.metadata.num_rows))
        cols: dict[str, pa.ChunkedArray] = {}
        for i in range(0, len(names), step):
            t = pf.read(columns=names[i:i + step]).take(idx)
            cols.update(zip(t.column_names, t.columns, strict=True))
            del t
        return event_rows(pa.table(cols))

    def submit(i: int) -> Future[pa.Table]:
        src = sources[i]
        sources[i] = None
        assert src is not None
        return pool.submit(read, src, wanted[i])

    with ThreadPoolExecutor(max_workers=AHEAD) as pool:
        pending = [submit(i) for i in range(min(AHEAD, len(sources)))]
        for i in range(len(sources)):
            t = pending.pop(0).result()
            if i + AHEAD < len(sources):
                pending.append(submit(i + AHEAD))
            yield t
            del t


#: Prefix of the derived columns in an :func:`event_rows` table.
_DERIVED = "\x00"


def event_rows(t: pa.Table) -> pa.Table:
    """What a finding takes from each event of ``t``: the declared columns it carries
    and the derived ones of :func:`event_columns` (named with a ``_DERIVED`` prefix).
    Dictionary-encoded columns (as matching reads them) are decoded first, but for the
    native helper, which reads the fields JSON's text from their dictionaries: only the
    columns kept and those the details and users are made of are decoded then."""
    if _native_fields is None:
        t = decoded(t)
    cols = {c: plain(t.column(c)) for c in _EVENT_COLS if c in t.column_names}
    cols |= {_DERIVED + k: v for k, v in event_columns(t).items()}
    return pa.table(cols)


def decoded(t: pa.Table) -> pa.Table:
    """``t`` with its dictionary-encoded columns as plain arrays of their values."""
    n = t.num_rows
    cols = []
    for f, col in zip(t.schema, t.columns, strict=True):
        if pa.types.is_dictionary(f.type) and col.null_count == n:  # no values to look up
            col = pa.chunked_array([pa.nulls(n, f.type.value_type)])
        cols.append(plain(col))
    return pa.Table.from_arrays(cols, names=t.column_names)


#: Event columns a finding carries (renamed below; ``fields`` holds the rest).
_EVENT_COLS = ("ts", "host", "channel", "event_id", "source_file", "_artefact", "_locator",
               "record_id")


def _event_fields(t: pa.Table) -> list[dict[str, Any]]:
    """Each row's non-null fields under Sigma names .

    Only non-null cells become Python objects: a part is hundreds of columns wide and
    nearly all of them are empty for any one event.
    """
    n = t.num_rows
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for name, col in zip(t.column_names, t.columns, strict=True):
        if name in _HIDDEN or col.null_count == n:
            continue
        key = SIGMA_NAMES.get(name, name)
        where: Iterable[int]
        if col.null_count:
            valid = pc.is_valid(col)
            where = np.flatnonzero(valid.to_numpy(zero_copy_only=False)).tolist()
            vals = col.filter(valid).to_pylist()
        else:
            where, vals = range(n), col.to_pylist()
        if name == "ts":
            vals = [v.isoformat().replace("+00:00", "Z") for v in vals]
        for i, v in zip(where, vals, strict=True):
            out[i][key] = v
    return out


def event_columns_py(t: pa.Table) -> dict[str, pa.Array]:
    """Per row of ``t``: fields JSON, details (4 and 6 items), user, source, destination.

    The reference: each row becomes a dict of its non-null fields, serialised by orjson.
    :func:`event_columns` gives the same arrays in bulk.
    """
    fields = _event_fields(t)
    det6 = [_detail_items(f, 6) for f in fields]
    # to Arrow part by part: the Python strings of one part at a time are alive
    return {key: pa.array(values, pa.string()) for key, values in (
        ("fields", [orjson.dumps(f, default=str).decode() for f in fields]),
        ("det", [" ¦ ".join(d[:4]) for d in det6]),
        ("det6", [" ¦ ".join(d) for d in det6]),
        ("user", [_first(f, USER_FIELDS) for f in fields]),
        ("src", [_first(f, SRC_FIELDS) for f in fields]),
        ("dst", [_first(f, DST_FIELDS) for f in fields]),
    )}


#: What ``str.split()`` splits on (``str.isspace``; a details value has its runs of it
#: made one space).
PY_SPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
            "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_SPACE_RUN = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in PY_SPACE) + "]+"


def _json_text(col: pa.Array) -> pa.Array:
    """Each string (none null) as a JSON string literal, escaped as orjson escapes it.

    Work is on the distinct values. Backslashes and quotes (every Windows path has some)
    are escaped in bulk; the few values with control characters go to orjson itself.
    """
    enc = pc.dictionary_encode(col)
    d = enc.dictionary
    esc = pc.replace_substring(pc.replace_substring(d, "\\", "\\\\"), '"', '\\"')
    quoted = pc.binary_join_element_wise('"', esc, '"', "")
    ctrl = pc.match_substring_regex(d, "[\\x00-\\x1f]")
    if pc.any(ctrl).as_py():
        fixed = [orjson.dumps(v).decode() for v in pc.filter(d, ctrl).to_pylist()]
        quoted = pc.replace_with_mask(quoted, ctrl, pa.array(fixed, pa.string()))
    return quoted.take(enc.indices)


def _iso_or_null(col: pa.Array) -> pa.Array:
    """``_iso_text`` of the times of ``col``, null where it is."""
    if not col.null_count:
        return _iso_text(col)
    text = _iso_text(col.fill_null(pa.scalar(0, col.type)))
    return pc.if_else(pc.is_valid(col), text, pa.scalar(None, pa.string()))


def _iso_text(col: pa.Array) -> pa.Array:
    """UTC timestamps (none null) as JSON strings of ``datetime.isoformat()`` with ``Z``
    (no fraction when it is 0)."""
    us = col.cast(pa.int64()).to_numpy().astype("datetime64[us]")
    text = pa.array(np.datetime_as_string(us, unit="us"), pa.string())
    return pc.binary_join_element_wise('"', pc.replace_substring_regex(
        text, r"\.0{6}$", ""), 'Z"', "")


def event_columns(t: pa.Table) -> dict[str, pa.Array]:
    """:func:`event_columns_py` in bulk, with Arrow kernels and no Python per row.

    The fields JSON is built from the non-null cells only (a part is hundreds of columns
    wide, nearly all empty for any one event): the text columns are put end to end and
    their nulls dropped in one pass, each distinct value is escaped once, each cell
    becomes its ``"key":value`` text, and the cells are ordered by row (by column within
    a row, as the dict keeps them) and joined per row. The details are built the same
    way over the detail fields put end to end. Falls back to the reference for a part it
    does not cover (a column type other than text and integers besides ``ts``, or two
    columns under one field name).
    """
    n = t.num_rows
    if not n:
        return event_columns_py(t)
    t = t.combine_chunks()
    keys: list[str] = []
    texts: list[tuple[int, pa.Array]] = []  # (key position, column) of the text columns
    others: list[tuple[int, pa.Array]] = []  # integers and ts
    text: dict[str, pa.Array] = {}  # the text of the fields details and users come from
    for name, col in zip(t.column_names, t.columns, strict=True):
        if name in _HIDDEN or col.null_count == n:
            continue
        key = SIGMA_NAMES.get(name, name)
        if key in keys:
            return event_columns_py(t)
        arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
        typ = arr.type
        # dictionary text as matching read it: the native helper reads it in place
        as_read = pa.types.is_dictionary(typ) and _native_fields is not None and \
            typ.index_type == pa.int32() and typ.value_type == pa.string() and \
            not arr.dictionary.null_count
        if pa.types.is_dictionary(typ) and not as_read:
            arr = plain(arr)
            typ = arr.type
        if as_read or typ == pa.string():
            texts.append((len(keys), arr))
            if as_read and (key in DETAIL_FIELDS or key in _WHO):
                arr = plain(arr)  # the details and users are made of the plain text
        elif pa.types.is_integer(typ):
            arr = arr.cast(pa.string())
            others.append((len(keys), arr))
        elif name == "ts" and pa.types.is_timestamp(typ) and typ.tz == "UTC":
            others.append((len(keys), arr))
        else:
            return event_columns_py(t)
        if key in DETAIL_FIELDS or key in _WHO:
            text[key] = arr
        keys.append(key)
    out: dict[str, pa.Array] = {"fields": _fields_json(n, keys, texts, others)}
    out.update(_details(n, text))
    for key, names in (("user", USER_FIELDS), ("src", SRC_FIELDS), ("dst", DST_FIELDS)):
        cands = [pc.if_else(pc.is_in(text[f], _BLANK), None, text[f])
                 for f in names if f in text]
        out[key] = pc.coalesce(*cands) if cands else pa.nulls(n, pa.string())
    return out


def _fields_json(n: int, keys: list[str], texts: list[tuple[int, pa.Array]],
                 others: list[tuple[int, pa.Array]]) -> pa.Array:
    """Each row's ``{"key":value,...}`` from its non-null cells, in column order: built
    by the native helper where it is (``_fields_json_native``), else in Arrow."""
    if not keys:
        return pa.array(["{}"] * n, pa.string())
    if _native_fields is not None:
        return _fields_json_native(n, keys, texts, others)
    return _fields_json_arrow(n, keys, texts, others)


def _native_fields_json() -> Any:
    """``_evtxflat.fields_json``, or None where the native helper is not built (or is a
    build from before it), or ``TIDEHUNT_NATIVE_FLATTEN=0`` turns native code off."""
    from tidehunt.sources import _wincolumnar

    native = getattr(_wincolumnar, "_evtxflat", None)
    return getattr(native, "fields_json", None) if _wincolumnar.native_flatten() else None


_native_fields = _native_fields_json()


def _fields_json_native(n: int, keys: list[str], texts: list[tuple[int, pa.Array]],
                        others: list[tuple[int, pa.Array]]) -> pa.Array:
    """``_fields_json`` by the native helper: one pass over the rows, the GIL released
    (the keeper's thread makes these beside the matching), text escaped as orjson does.
    The integers and times go as the JSON text ``_fields_json_arrow`` makes of them."""
    cols = sorted([(k, a, True) for k, a in texts] +
                  [(k, a if a.type == pa.string() else _iso_or_null(a), False)
                   for k, a in others], key=lambda c: c[0])
    spec: list[tuple[Any, ...]] = []
    for k, arr, quote in cols:
        prefix = orjson.dumps(keys[k]) + b":"
        if pa.types.is_dictionary(arr.type):  # int32 indices into text (event_columns)
            ind, d = arr.indices, arr.dictionary
            valid, indices = ind.buffers()
            _, d_offsets, d_data = d.buffers()
            spec.append((prefix, quote, valid if ind.null_count else None, indices, None,
                         ind.offset, len(ind), (d_offsets, d_data, d.offset, len(d))))
            continue
        if arr.type != pa.string():  # text columns are ``string`` (event_columns checks)
            arr = arr.cast(pa.string())
        valid, offsets, data = arr.buffers()
        spec.append((prefix, quote, valid if arr.null_count else None, offsets, data,
                     arr.offset, len(arr), None))
    offs, text = _native_fields(n, spec, pa.allocate_buffer)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offs), text])


def _fields_json_arrow(n: int, keys: list[str], texts: list[tuple[int, pa.Array]],
                       others: list[tuple[int, pa.Array]]) -> pa.Array:
    """``_fields_json`` in Arrow kernels: the cells put end to end, ordered by row and
    joined per row."""
    rows_of, key_of, pieces = [], [], []
    if texts:
        big = pa.concat_arrays([a for _, a in texts])
        valid = _valid(big)
        rows_of.append(np.tile(np.arange(n), len(texts))[valid])
        key_of.append(np.repeat(np.array([k for k, _ in texts]), n)[valid])
        pieces.append(_json_text(big.filter(pa.array(valid))))
    for k, a in others:
        valid = _valid(a)
        rows_of.append(np.flatnonzero(valid))
        key_of.append(np.full(int(valid.sum()), k))
        a = a.filter(pa.array(valid))
        pieces.append(a if a.type == pa.string() else _iso_text(a))
    row = np.concatenate(rows_of)
    key = np.concatenate(key_of)
    order = np.argsort(row * len(keys) + key, kind="stable")
    prefix = pa.array([orjson.dumps(k).decode() + ":" for k in keys], pa.string())
    cells = pc.binary_join_element_wise(prefix.take(pa.array(key[order])),
                                        pa.concat_arrays(pieces).take(pa.array(order)), "")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n), out=offsets[1:])
    body = pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets), cells), ",")
    return pc.binary_join_element_wise("{", body.cast(pa.string()), "}", "")


def _details(n: int, text: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """The details lines: the first 4 (``det``) and 6 (``det6``) ``Key: value`` items of
    the DETAIL_FIELDS present, as :func:`_detail_items` makes them."""
    dk = [k for k in DETAIL_FIELDS if k in text]
    if not dk:
        empty = pa.array([""] * n, pa.string())
        return {"det": empty, "det6": empty}
    big = pa.concat_arrays([text[k] for k in dk])
    present = _valid(big) & ~_np_bool(pc.is_in(big, _BLANK))
    s = pc.utf8_trim(pc.replace_substring_regex(big, _SPACE_RUN, " "), " ")
    s = pc.if_else(pc.greater(pc.utf8_length(s), MAX_DETAIL),
                   pc.binary_join_element_wise(pc.utf8_slice_codeunits(s, 0, MAX_DETAIL),
                                               "…", ""), s)
    prefix = pa.array([f"{k}: " for k in dk], pa.string())
    item = pc.binary_join_element_wise(prefix.take(pa.array(np.repeat(np.arange(len(dk)), n))),
                                       s, "")
    rank = np.cumsum(present.reshape(len(dk), n), axis=0).reshape(-1)
    out = {}
    for key, limit in (("det", 4), ("det6", 6)):
        kept = pc.if_else(pa.array(present & (rank <= limit)), item, None)
        out[key] = _join_present([kept.slice(i * n, n) for i in range(len(dk))], " ¦ ")
    return out


def _join_present(items: list[pa.Array], sep: str) -> pa.Array:
    """Per row, the non-null items joined by ``sep`` ("" when none is present)."""
    # a leading item present in every row, cut off after: Arrow 26 drops the rows where
    # every item of a "skip" join is null (its output comes out shorter than the input)
    joined = pc.binary_join_element_wise("\x00", *items, sep, null_handling="skip")
    return pc.if_else(pc.equal(joined, "\x00"), "",
                      pc.utf8_slice_codeunits(joined, 1 + len(sep)))


_BLANK = pa.array(["", "-"], pa.string())
_WHO = frozenset(USER_FIELDS + SRC_FIELDS + DST_FIELDS)


def _valid(a: pa.Array) -> np.ndarray:
    """The validity of an array as a bool array, read from its bitmap."""
    if a.null_count == 0:
        return np.ones(len(a), dtype=bool)
    if a.null_count == len(a):
        return np.zeros(len(a), dtype=bool)
    bitmap = np.frombuffer(a.buffers()[0], dtype=np.uint8)
    bits = np.unpackbits(bitmap, bitorder="little")
    return bits[a.offset:a.offset + len(a)].astype(bool)


def _np_bool(a: pa.Array | pa.ChunkedArray) -> np.ndarray:
    arr: np.ndarray = one_array(a).fill_null(False).to_numpy(zero_copy_only=False)
    return arr


def _event_table(tables: list[pa.Table], per_event: dict[str, list[pa.Array]]
                 ) -> dict[str, pa.Array]:
    """Per matched event: its declared columns and what was derived from its fields."""
    types = {"ts": pa.timestamp("us", tz="UTC"), "event_id": pa.int64(),
             "record_id": pa.int64()}
    cols: dict[str, pa.Array] = {}
    for c in _EVENT_COLS:
        typ = types.get(c, pa.string())
        # the arrays themselves: ``pa.chunked_array`` of ChunkedArrays converts them value
        # by value in Python (20 ms a column for the 71,400 events at 100x, against 0.3)
        chunks = [a for t in tables for a in (
            t.column(c).cast(typ).chunks if c in t.column_names else [pa.nulls(t.num_rows, typ)])]
        cols[c.lstrip("_")] = pa.concat_arrays(chunks) if chunks else pa.array([], typ)
    for k, v in per_event.items():
        cols[k] = pa.concat_arrays(v) if v else pa.array([], pa.string())
    return cols


def _findings(plan: Plan, rule: np.ndarray, ev: dict[str, pa.Array | pa.ChunkedArray],
              fids: pa.Array, evidence: pa.Array) -> pa.Table:
    """The findings table: rule attributes by take, event attributes from ``ev``."""
    rules = plan.rules
    ridx = pa.array(rule.astype(np.int64))

    def by_rule(values: list[Any], typ: pa.DataType) -> pa.Array:
        return pa.array(values, typ).take(ridx)

    title = by_rule([r["title"] for r in rules], pa.string())
    level = by_rule([r["level"] for r in rules], pa.string())
    host = ev["host"]
    on = pc.coalesce(host, pa.scalar("unknown host"))
    det = ev["det"]
    tail = pc.if_else(pc.equal(det, ""), pa.scalar(""),
                      pc.binary_join_element_wise(": ", det, ""))
    summary = pc.binary_join_element_wise(title, " on ", on, tail, "")
    n = len(rule)
    return pa.table({
        "finding_id": fids,
        "ts": ev["ts"],
        "ts_last": ev["ts"],
        "rule_id": by_rule([r["id"] for r in rules], pa.string()),
        "rule_title": title,
        "engine": pa.array(["sigma"] * n, pa.string()),
        "level": level,
        "severity": by_rule([int(Severity.parse(r["level"])) for r in rules], pa.int8()),
        "techniques": by_rule([r["techniques"] for r in rules], pa.list_(pa.string())),
        "tactics": by_rule([r["tactics"] for r in rules], pa.list_(pa.string())),
        "host": host,
        "user": ev["user"],
        "src": ev["src"],
        "dst": ev["dst"],
        "channel": ev["channel"],
        "event_id": ev["event_id"],
        "summary": summary,
        "details": ev["det6"],
        "evidence": pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)),
                                             evidence),
        "fields": ev["fields"],
    }, schema=FINDINGS_SCHEMA)


def concat(tables: Iterable[pa.Table]) -> pa.Table:
    """Concatenate finding tables (all in FINDINGS_SCHEMA)."""
    ts = [t for t in tables if t.num_rows]
    if not ts:
        return FINDINGS_SCHEMA.empty_table()
    return pa.concat_tables(ts)
