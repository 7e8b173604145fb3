"""Run a Plan over the ``windows`` table in bulk.

For each chunk of rows (a few Parquet parts, up to CHUNK_ROWS) and each rule group
(partition), the group's rows are selected once. Each column a group's rules read is
lower-cased and dictionary-encoded once, and predicates are evaluated over the distinct
values only, then mapped back to rows. All plain string tests of one column
(equals/contains/startswith/endswith, for every rule of the group) run in one
Aho-Corasick pass (Polars ``extract_many``) with start/end sentinels. Rule conditions are
boolean combinations of those bitmaps, short-circuited on all-false inputs. There is no
per-event Python loop.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tidehunt.case.store import CaseStore
from tidehunt.detect.sigma.compile import Tree
from tidehunt.detect.sigma.logsource import AUDIT_4688, AUDIT_FIELDS
from tidehunt.detect.sigma.plan import Group, Plan, regex_of
from tidehunt.memory import MatchPlan, MemoryBudget, configure_arrow_memory, match_plan
from tidehunt.model.tables import WINDOWS_ALIASES

log = logging.getLogger("tidehunt.sigma")

CHUNK_ROWS = 98_304
_AC_OPS = ("eq", "contains", "startswith", "endswith")


def _ac_kind(p: dict[str, Any]) -> bool:
    """A string test the Aho-Corasick pass evaluates (of a field, or a keyword's)."""
    return p["kind"] == "str" and p["op"] in _AC_OPS and not p["cased"]


_START, _END = "\x02", "\x03"
FULLTEXT = "\x00fulltext"

# A bitmap is np.ndarray[bool], or the constants below for all-false / all-true.
ALL_FALSE = False
ALL_TRUE = True
Bits = Any


@dataclass
class Hits:
    """Rule hits of one chunk: parallel arrays of rule index and row position."""

    rules: list[np.ndarray] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)

    def add(self, rule: int, rows: np.ndarray) -> None:
        self.rules.append(np.full(len(rows), rule, dtype=np.int32))
        self.rows.append(rows.astype(np.int64, copy=False))


class _ChunkColumn:
    """One column of a whole chunk, lower-cased and dictionary-encoded once for all groups.

    The column may come dictionary-encoded (``_read_chunk`` reads text columns so): its
    indices and dictionary are used as they are, and only the dictionary (the distinct
    values) is encoded again, to have each value once whatever the parts it came from.
    """

    __slots__ = ("_arr", "_codes", "_orig_dict", "_orig_idx", "_to_orig", "dict", "gids",
                 "idx", "name")

    def __init__(self, arr: pa.Array, name: str | None = None) -> None:
        if pa.types.is_dictionary(arr.type):
            if not pa.types.is_string(arr.type.value_type):
                arr = arr.cast(pa.string())
        elif not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
            arr = arr.cast(pa.string())
        self._arr = arr
        #: the physical column (None: a column of the engine's own, not cached by value)
        self.name = name
        #: per "lower" / "orig": position in this chunk's distinct values of each id of
        #: the ValueCache space (-1: absent), None if the space is full
        self.gids: dict[str, np.ndarray | None] = {}
        # one pass over the rows: encode as is, then lower-case only the distinct values
        # and merge those that differ by case alone
        n, nulls = len(arr), arr.null_count
        self._codes: np.ndarray | None = None
        self._orig_idx: np.ndarray | None = None
        if pa.types.is_dictionary(arr.type):
            enc = pc.dictionary_encode(arr.dictionary)  # each distinct value once
            #: code -> position among the distinct values (-1, the last: null)
            self._to_orig = np.append(enc.indices.fill_null(-1).to_numpy(
                zero_copy_only=False), -1).astype(np.int32)
            codes = arr.indices.fill_null(-1) if nulls else arr.indices
            self._codes = codes.to_numpy(zero_copy_only=False)
        elif nulls * 2 > n:  # most columns belong to few event types: encode the values only
            valid = pc.is_valid(arr)
            enc = pc.dictionary_encode(arr.filter(valid))
            self._orig_idx = np.full(n, -1, dtype=np.int32)
            self._orig_idx[np.flatnonzero(_np(valid))] = enc.indices.to_numpy(
                zero_copy_only=False)
        else:
            enc = pc.dictionary_encode(arr)
            self._orig_idx = enc.indices.fill_null(-1).to_numpy(
                zero_copy_only=False).astype(np.int32, copy=False)
        self._orig_dict: pa.Array = enc.dictionary
        low = pc.dictionary_encode(pc.utf8_lower(self._orig_dict))
        self.dict: pa.Array = low.dictionary
        remap = np.append(low.indices.to_numpy(zero_copy_only=False), -1).astype(np.int32)
        if self._codes is not None:  # one pass over the rows; the cased positions if asked
            self.idx: np.ndarray = remap[self._to_orig][self._codes]
        else:
            self.idx = remap[self._orig_idx]

    @property
    def arr(self) -> pa.Array:
        """The column's values, as text (decoded, if it came dictionary-encoded)."""
        if pa.types.is_dictionary(self._arr.type):
            self._arr = self._arr.cast(self._arr.type.value_type)
        return self._arr

    def orig(self) -> tuple[pa.Array, np.ndarray]:
        """Distinct values with their case kept (for cased and regex predicates)."""
        if self._orig_idx is None:
            assert self._codes is not None
            self._orig_idx = self._to_orig[self._codes]
        return self._orig_dict, self._orig_idx

    def distinct(self, which: str) -> pa.Array:
        """The distinct values predicates see: "orig" (case kept) or "lower"."""
        return self._orig_dict if which == "orig" else self.dict


class _Column:
    """A chunk column seen through one group's rows (indices into the chunk's dictionary)."""

    __slots__ = ("_orig_idx", "base", "dict", "idx", "n", "rows")

    def __init__(self, base: _ChunkColumn, rows: np.ndarray) -> None:
        self.base = base
        self.rows = rows
        self.dict = base.dict
        self.idx: np.ndarray = base.idx[rows]
        self.n = len(rows)
        self._orig_idx: np.ndarray | None = None

    @property
    def arr(self) -> pa.Array:
        return self.base.arr.take(pa.array(self.rows))

    def orig(self) -> tuple[pa.Array, np.ndarray]:
        d, idx = self.base.orig()
        if self._orig_idx is None:
            self._orig_idx = idx[self.rows]
        return d, self._orig_idx

    @staticmethod
    def to_rows(on_dict: Bits, idx: np.ndarray) -> Bits:
        """Map a bitmap over distinct values back to rows (nulls are False)."""
        if on_dict is ALL_FALSE or not on_dict.any():
            return ALL_FALSE
        ext = np.append(on_dict, False)  # index -1 (null) -> False
        return _bits(ext[idx])


class ValueCache:
    """Predicate results over distinct values, kept across the chunks of one match.

    A predicate on a column depends on the value alone, and the chunks of a case share
    most of their distinct values (the same images, paths, hosts, accounts), so each
    distinct value of a column is evaluated once per match instead of once per chunk.
    A column's values ("lower": lower-cased, for plain and uncased predicates; "orig":
    as they are, for cased and regex ones; and the values keyword rules search) get
    ids as they are first met; a predicate's hits among them (the ids of the values it
    is true for: few, so thousands of predicates on one column stay small) are extended,
    for the new values only, whenever a chunk asks for it. A space past MAX_VALUES
    values or MAX_BYTES of text, or that would take the cache past ``max_total`` bytes
    (values and hit ids of every space), is dropped: its later chunks are evaluated on
    their own, as without a cache.
    """

    MAX_VALUES = 500_000
    MAX_BYTES = 32 << 20
    MAX_TOTAL_BYTES = 128 << 20

    def __init__(self, max_total: int | None = None) -> None:
        self.spaces: dict[tuple[str, str], _Space] = {}
        self.max_total = self.MAX_TOTAL_BYTES if max_total is None else max_total
        self.used = 0  # bytes held by every space
        #: chunks matched in threads share the cache: this guards the spaces' creation
        #: and ``used``; each space has its own lock for its values and hits
        self.lock = threading.Lock()

    @classmethod
    def for_budget(cls, budget: MemoryBudget | None) -> ValueCache:
        """A cache of at most MAX_TOTAL_BYTES, and a 16th of ``--max-memory`` if less."""
        if budget is None:
            return cls()
        return cls(min(cls.MAX_TOTAL_BYTES, budget.total // 16))

    def space(self, column: str, which: str) -> _Space:
        key = (column, which)
        got = self.spaces.get(key)
        if got is None:
            with self.lock:
                got = self.spaces.get(key)
                if got is None:
                    got = self.spaces[key] = _Space(self.MAX_VALUES, self.MAX_BYTES, self)
        return got


class _Space:
    """The distinct values met in one column space, and predicate hits among them.

    Chunks matched in threads share a space: a caller holds ``lock`` from ``ids`` or
    ``extend`` to the ``bits`` it reads after (a space dropped meanwhile would give no
    hits). The first chunk to extend a predicate evaluates every value met so far, those
    of the other thread's chunk too, so no value is evaluated twice.
    """

    __slots__ = ("_all", "chunks", "done", "full", "hits", "limit", "lock", "max_bytes",
                 "n", "nbytes", "owner", "pairs")

    def __init__(self, limit: int, max_bytes: int, owner: ValueCache | None = None) -> None:
        self.chunks: list[pa.Array] = []
        self._all: pa.Array | None = None
        self.n = 0
        self.nbytes = 0  # bytes held: values and hit ids
        self.limit = limit
        self.max_bytes = max_bytes
        self.owner = owner
        self.full = False
        self.hits: dict[int, np.ndarray] = {}  # per predicate: ids of the values it hits
        #: per evaluation of many predicates (``extend_pairs``): (predicate, value id) of
        #: each hit, sorted by predicate, in the pieces the chunks added
        self.pairs: dict[Any, list[tuple[np.ndarray, np.ndarray]]] = {}
        self.done: dict[Any, int] = {}  # per evaluation: values evaluated so far
        self.lock = threading.Lock()

    def values(self) -> pa.Array:
        if self._all is None:
            self._all = self.chunks[0] if len(self.chunks) == 1 else pa.concat_arrays(
                self.chunks)
            self.chunks = [self._all]
        return self._all

    def ids(self, d: pa.Array) -> np.ndarray | None:
        """Ids of the (distinct, non-null) values ``d``, new ones added; None when full."""
        if self.full:
            return None
        gid: np.ndarray
        if self.n:
            gid = pc.index_in(d, value_set=self.values()).fill_null(-1).to_numpy(
                zero_copy_only=False).astype(np.int64)
        else:
            gid = np.full(len(d), -1, dtype=np.int64)
        new = np.flatnonzero(gid < 0)
        if len(new):
            fresh = d.take(pa.array(new))
            uniq = pc.unique(fresh)
            size = uniq.nbytes
            if self.n + len(uniq) > self.limit or not self._grow(size):
                self._drop()
                return None
            gid[new] = self.n + pc.index_in(fresh, value_set=uniq).to_numpy(
                zero_copy_only=False).astype(np.int64)
            self.chunks.append(uniq)
            self._all = None
            self.n += len(uniq)
        return gid

    def _grow(self, size: int) -> bool:
        """Account ``size`` more bytes, if this space and the cache have room for them."""
        if self.nbytes + size > self.max_bytes:
            return False
        if self.owner is not None:
            with self.owner.lock:
                if self.owner.used + size > self.owner.max_total:
                    return False
                self.owner.used += size
        self.nbytes += size
        return True

    def _drop(self) -> None:
        """Give up caching this space: what it held is freed, it is never used again."""
        if self.owner is not None:
            with self.owner.lock:
                self.owner.used -= self.nbytes
        self.full = True
        self.chunks, self._all, self.hits, self.done, self.pairs = [], None, {}, {}, {}
        self.nbytes = 0

    def extend(self, key: Any, pids: Sequence[int], fn: Any) -> bool:
        """Bring the hits of ``pids`` up to every value met; ``fn(values)`` evaluates
        them together over the new values (a dict of pid -> bits, or ALL_FALSE).

        False when the space is (or, for want of room for the hits, now goes) full: the
        caller evaluates its chunk's values itself.
        """
        if self.full:
            return False
        start = self.done.get(key, 0)
        if start >= self.n:
            return True
        vals = self.values().slice(start, self.n - start)
        got = fn(vals)
        new: dict[int, np.ndarray] = {}
        for pid in pids:
            b = got.get(pid, ALL_FALSE)
            if b is ALL_FALSE:
                new[pid] = np.zeros(0, dtype=np.int32)
            elif b is ALL_TRUE:
                new[pid] = np.arange(start, self.n, dtype=np.int32)
            else:
                new[pid] = (np.flatnonzero(b) + start).astype(np.int32)
        if not self._grow(sum(a.nbytes for a in new.values())):
            self._drop()
            return False
        for pid, ids in new.items():
            old = self.hits.get(pid)
            self.hits[pid] = ids if old is None or not len(old) else np.concatenate([old, ids])
        self.done[key] = self.n
        return True

    def bits(self, pid: int, where: np.ndarray, n: int) -> Bits:
        """A predicate's bits over a chunk's ``n`` distinct values, ``where`` giving each
        id's position among them (-1: not in the chunk); ALL_FALSE when none is hit."""
        ids = self.hits.get(pid)
        if ids is None or not len(ids):
            return ALL_FALSE
        if ids[-1] >= len(where):  # values another chunk added since: not in this one
            ids = ids[ids < len(where)]
        loc = where[ids]
        loc = loc[loc >= 0]
        if not len(loc):
            return ALL_FALSE
        on = np.zeros(n, dtype=bool)
        on[loc] = True
        return on

    def extend_pairs(self, key: Any, fn: Any) -> bool:
        """``extend`` for an evaluation of many predicates at once whose ``fn(values)``
        gives its hits as (predicate ids, value positions) arrays: they are kept as such,
        so no work is done per predicate that hits nothing (most of a column's)."""
        if self.full:
            return False
        start = self.done.get(key, 0)
        if start >= self.n:
            return True
        pid, pos = fn(self.values().slice(start, self.n - start))
        order = np.argsort(pid, kind="stable")
        pid = pid[order].astype(np.int32, copy=False)
        ids = (pos[order] + start).astype(np.int32, copy=False)
        if not self._grow(pid.nbytes + ids.nbytes):
            self._drop()
            return False
        self.pairs.setdefault(key, []).append((pid, ids))
        self.done[key] = self.n
        return True

    def pair_bits(self, key: Any, where: np.ndarray, n: int) -> dict[int, np.ndarray]:
        """The bits over a chunk's ``n`` distinct values of each predicate of ``key``'s
        evaluation that hits one of them (``where``: as for ``bits``); the others, none."""
        pieces = self.pairs.get(key)
        if not pieces:
            return {}
        if len(pieces) > 1:  # once per chunk with new values, not per predicate
            pid = np.concatenate([p for p, _ in pieces])
            ids = np.concatenate([i for _, i in pieces])
            order = np.argsort(pid, kind="stable")
            pieces[:] = [(pid[order], ids[order])]
        pid, ids = pieces[0]
        if len(ids) and int(ids.max()) >= len(where):  # values another chunk added since
            keep = ids < len(where)
            pid, ids = pid[keep], ids[keep]
        loc = where[ids]
        keep = loc >= 0
        pid, loc = pid[keep], loc[keep]
        if not len(pid):
            return {}
        bounds = np.flatnonzero(np.diff(pid)) + 1
        out: dict[int, np.ndarray] = {}
        for p, at in zip(pid[np.r_[0, bounds]].tolist(), np.split(loc, bounds), strict=True):
            on = np.zeros(n, dtype=bool)
            on[at] = True
            out[p] = on
        return out


class ChunkEval:
    """Predicate results over one chunk's distinct values, shared by every rule group.

    A predicate on a column depends only on the column's distinct values, so it is
    evaluated once per chunk whatever the number of groups whose rules use it; all plain
    string predicates of one column, over all groups, run in one Aho-Corasick pass.
    """

    def __init__(self, plan: Plan, groups: Sequence[Group], table: pa.Table,
                 resolve: dict[str, str | None], cache: ValueCache | None = None) -> None:
        self.plan = plan
        self.table = table
        self.resolve = resolve
        self.cache = cache
        self.cols: dict[str, _ChunkColumn] = {}
        self.on_dict: dict[int, Bits] = {}
        self.ac_done: set[str | None] = set()
        self.by_field = _merge_by_field(plan, groups)
        self._kw: dict[int, list[tuple[_ChunkColumn, np.ndarray]]] | None = None

    def column(self, name: str) -> _ChunkColumn | None:
        """The physical column a rule field names (Sigma names resolved), or None.

        Cached by physical column, so spellings of one field share one encoding.
        """
        phys = self.resolve.get(name.lower())
        if phys is None:
            return None
        got = self.cols.get(phys)
        if got is None:
            arr = self.table.column(phys)
            arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
            got = self.cols[phys] = _ChunkColumn(arr, phys)
        return got

    def where(self, col: _ChunkColumn, which: str) -> tuple[_Space, np.ndarray] | None:
        """The ValueCache space of a column's distinct values ("lower" or "orig") and,
        per id in it, the value's position in this chunk's dictionary (-1: absent); None
        without a cache, for a column of the engine's own, or once the space is full."""
        if self.cache is None or col.name is None:
            return None
        if which not in col.gids:
            space = self.cache.space(col.name, which)
            with space.lock:
                gid = space.ids(col.distinct(which))
            if gid is None:
                col.gids[which] = None
            else:
                at = np.full(space.n, -1, dtype=np.int64)
                at[gid] = np.arange(len(gid))
                col.gids[which] = at
        pos = col.gids[which]
        return None if pos is None else (self.cache.space(col.name, which), pos)

    def dict_bits(self, pi: int, col: _ChunkColumn, which: str, fn: Any) -> Bits:
        """``fn`` (values -> bool array) over a column's distinct values, through the
        ValueCache when it has the column."""
        d = col.distinct(which)
        got = self.where(col, which)
        if got is None:
            return fn(d)
        space, pos = got
        with space.lock:
            if space.extend(pi, [pi], lambda vals: {pi: fn(vals)}):
                return space.bits(pi, pos, len(d))
        return fn(d)

    def ac(self, fieldname: str, pi: int) -> Bits:
        """Bitmap over the column's distinct values for a plain string predicate."""
        if fieldname not in self.ac_done:
            self.ac_done.add(fieldname)
            preds = self.by_field.get(fieldname, [])
            col = self.column(fieldname)
            if col is None or len(col.dict) == 0:
                for i in preds:
                    self.on_dict[i] = ALL_FALSE
            else:
                got = self.where(col, "lower")
                done = False
                if got is not None:
                    space, pos = got
                    with space.lock:
                        done = space.extend_pairs(("ac", fieldname), lambda vals: ac_pairs(
                            vals, [self.plan.preds[i] for i in preds], preds))
                        if done:  # the predicates that hit nothing here stay absent
                            self.on_dict.update(space.pair_bits(("ac", fieldname), pos,
                                                                len(col.dict)))
                if not done:
                    self.on_dict.update(
                        ac_on_dict(col.dict, [self.plan.preds[i] for i in preds], preds))
        return self.on_dict.get(pi, ALL_FALSE)

    def keyword_hits(self, pi: int) -> list[tuple[_ChunkColumn, np.ndarray]]:
        """Per text column, the distinct values a keyword ``contains`` predicate hits.

        Every keyword of every group is searched in one pass over the distinct values of
        all text columns put end to end (the same as searching each event's fields).
        """
        if self._kw is None:
            kws = self.by_field.get(None, [])
            names = [n for n in self.table.column_names
                     if not n.startswith("_") and n not in ("ts", "source_file")]
            self._kw = {i: [] for i in kws}
            if not kws:
                return []
            # distinct values only: a column is encoded in full (and kept) only if hit
            dicts = []
            for n in names:
                col = self.table.column(n)
                if col.null_count == len(col):
                    continue
                known = self.cols.get(n)
                if known is not None:
                    dicts.append((n, known.dict))
                    continue
                if pa.types.is_dictionary(col.type):  # the parts' dictionaries: its values
                    vals = pa.concat_arrays([c.dictionary for c in col.chunks])
                    if not pa.types.is_string(vals.type):
                        vals = vals.cast(pa.string())
                    dicts.append((n, pc.unique(pc.utf8_lower(vals)).drop_null()))
                    continue
                if not pa.types.is_string(col.type):
                    col = col.cast(pa.string())
                dicts.append((n, pc.unique(pc.utf8_lower(pc.unique(col).drop_null()))))
            if dicts:
                big = pa.concat_arrays([d for _, d in dicts])
                bounds = np.cumsum([0] + [len(d) for _, d in dicts])
                got = self._keyword_bits(big, kws)
                for i, bits in got.items():
                    if bits is ALL_FALSE:
                        continue
                    for k, (n, d) in enumerate(dicts):
                        seg = bits[bounds[k]:bounds[k + 1]]
                        if not seg.any():
                            continue
                        c = self.column(n)
                        assert c is not None
                        # map the hit values onto this column's own dictionary order
                        on = _np(pc.is_in(c.dict, value_set=d.filter(pa.array(seg))))
                        self._kw[i].append((c, on))
        return self._kw.get(pi, [])


    def _keyword_bits(self, big: pa.Array, kws: list[int]) -> dict[int, Bits]:
        """``ac_on_dict`` of the keywords over the text columns' distinct values put end
        to end, through the ValueCache (one space for every column: a keyword hits a
        value whichever column holds it)."""
        def run(vals: pa.Array) -> dict[int, Bits]:
            return ac_on_dict(vals, [self.plan.preds[i] for i in kws], kws)

        if self.cache is None:
            return run(big)
        space = self.cache.space(FULLTEXT, "lower")
        with space.lock:
            gid = space.ids(big)  # big repeats values of several columns: each has its id
            if gid is None or not space.extend("keywords", kws, run):
                gid = None
            else:
                hit = {i: space.hits.get(i) for i in kws}
        if gid is None:
            return run(big)
        out: dict[int, Bits] = {}
        for i in kws:
            ids = hit[i]
            out[i] = ALL_FALSE if ids is None or not len(ids) else _np(
                pc.is_in(pa.array(gid), value_set=pa.array(ids)))
            if out[i] is not ALL_FALSE and not out[i].any():
                out[i] = ALL_FALSE
        return out


def _merge_by_field(plan: Plan, groups: Sequence[Group]) -> dict[str | None, list[int]]:
    out: dict[str | None, dict[int, None]] = {}
    for g in groups:
        for f, ids in ac_preds_by_field(plan, g).items():
            out.setdefault(f, {}).update(dict.fromkeys(ids))
    return {f: list(d) for f, d in out.items()}


class GroupRun:
    """Evaluates one group's rules over its selected rows, memoising predicates."""

    def __init__(self, chunk: ChunkEval, group: Group, rows: np.ndarray,
                 all_columns: Sequence[str]) -> None:
        self.chunk = chunk
        self.plan = chunk.plan
        self.group = group
        self.table = chunk.table
        self.rows = rows
        self.n = len(rows)
        self.all_columns = all_columns
        self.cols: dict[str, _Column | None] = {}
        self.memo: dict[int, Bits] = {}

    def column(self, name: str) -> _Column | None:
        if name not in self.cols and name == FULLTEXT:
            keep = [c for c in self.all_columns
                    if not c.startswith("_") and c not in ("ts", "source_file")]
            sub = self.table.select(keep).take(pa.array(self.rows))
            texts = []
            for t in sub.columns:
                if t.null_count == len(t):
                    continue  # most columns belong to other event types
                t = t.combine_chunks()
                texts.append(t if pa.types.is_string(t.type) else t.cast(pa.string()))
            if not texts:
                self.cols[name] = None
                return None
            joined = pc.binary_join_element_wise(*texts, "\x1f", null_handling="skip")
            if isinstance(joined, pa.ChunkedArray):
                joined = joined.combine_chunks()
            self.cols[name] = _Column(_ChunkColumn(joined), np.arange(self.n))
        if name not in self.cols:
            base = self.chunk.column(name)
            self.cols[name] = None if base is None else _Column(base, self.rows)
        return self.cols[name]

    def pred(self, pi: int) -> Bits:
        r = self.memo.get(pi)
        if r is not None:
            return r
        p = self.plan.preds[pi]
        if p.get("field") is None:
            r = self._keyword(pi)
        elif _ac_kind(p):
            col = self.column(p["field"])
            r = ALL_FALSE if col is None else col.to_rows(self.chunk.ac(p["field"], pi),
                                                          col.idx)
        else:
            r = self._eval(pi, p)
        self.memo[pi] = r
        return r

    def _keyword(self, pi: int) -> Bits:
        """A keyword: matched against all text fields of the event."""
        p = self.plan.preds[pi]
        if not _ac_kind(p):
            return self._eval(pi, {**p, "field": FULLTEXT}, shared=False)
        acc: Bits = ALL_FALSE
        for base, seg in self.chunk.keyword_hits(pi):
            acc = _or(acc, _Column.to_rows(seg, base.idx[self.rows]))
            if acc is ALL_TRUE:
                break
        return acc

    def _dict_bits(self, pi: int, shared: bool, col: _Column, which: str, fn: Any) -> Bits:
        """A predicate over a column's distinct values ("lower" or "orig"), computed once
        per chunk (and through the ValueCache, once per value) when ``shared``."""
        if not shared:
            return fn(col.base.distinct(which))
        got = self.chunk.on_dict.get(pi)
        if got is None:
            got = self.chunk.on_dict[pi] = self.chunk.dict_bits(pi, col.base, which, fn)
        return got

    def _eval(self, pi: int, p: dict[str, Any], shared: bool = True) -> Bits:
        kind = p["kind"]
        col = self.column(p["field"])
        if kind == "null":
            if col is None:
                return ALL_TRUE
            return _bits(col.idx == -1)
        if kind == "exists":
            present = ALL_FALSE if col is None else _bits(col.idx != -1)
            return present if p["value"] else _not(present)
        if col is None:
            return ALL_FALSE
        if kind == "str":
            if p["cased"]:
                _, idx = col.orig()
                return col.to_rows(self._dict_bits(pi, shared, col, "orig",
                                                   lambda v: _np(_cased(v, p))), idx)
            # uncased glob: the pattern is lower-case, match the lower-cased values
            return col.to_rows(self._dict_bits(pi, shared, col, "lower", lambda v: _np(
                pc.match_substring_regex(v, regex_of(p)))), col.idx)
        if kind == "re":
            _, idx = col.orig()
            return col.to_rows(self._dict_bits(pi, shared, col, "orig", lambda v: _np(
                pc.match_substring_regex(v, regex_of(p)))), idx)
        if kind == "num":
            return col.to_rows(self._dict_bits(pi, shared, col, "lower",
                                               lambda v: _num(v, p)), col.idx)
        if kind == "fieldref":
            other = self.column(p["other"])
            if other is None:
                return ALL_FALSE
            return _bits(_np(pc.equal(pc.utf8_lower(col.arr), pc.utf8_lower(other.arr))))
        raise ValueError(f"unknown predicate kind {kind!r}")

    def rule(self, tree: Tree) -> Bits:
        op = tree[0]
        if op == "p":
            return self.pred(tree[1])
        if op == "and":
            acc: Bits = ALL_TRUE
            for t in tree[1]:
                b = self.rule(t)
                acc = _and(acc, b)
                if acc is ALL_FALSE:
                    return ALL_FALSE
            return acc
        if op == "or":
            acc = ALL_FALSE
            for t in tree[1]:
                acc = _or(acc, self.rule(t))
                if acc is ALL_TRUE:
                    return ALL_TRUE
            return acc
        if op == "not":
            return _not(self.rule(tree[1]))
        if op == "true":
            return ALL_TRUE
        return ALL_FALSE


def _cased(d: pa.Array, p: dict[str, Any]) -> pa.Array:
    v = p["value"]
    op = p["op"]
    if op == "eq":
        return pc.equal(d, v)
    if op == "contains":
        return pc.match_substring(d, v)
    if op == "startswith":
        return pc.starts_with(d, v)
    if op == "endswith":
        return pc.ends_with(d, v)
    return pc.match_substring_regex(d, regex_of(p))


def _num(d: pa.Array, p: dict[str, Any]) -> np.ndarray:
    v = p["value"]
    if p["op"] == "eq":
        text = str(v) if isinstance(v, float) and not v.is_integer() else str(int(v))
        return _np(pc.equal(pc.utf8_trim_whitespace(d), text))
    ok = pc.match_substring_regex(d, r"^\s*-?\d+(\.\d+)?\s*$")
    # Arrow's cast takes no blanks around a number (" 7" raised and ended the hunt)
    nums = pc.if_else(ok, pc.utf8_trim_whitespace(d), pa.scalar(None, pa.string())).cast(
        pa.float64())
    fn = {"lt": pc.less, "lte": pc.less_equal, "gt": pc.greater,
          "gte": pc.greater_equal}[p["op"]]
    return _np(fn(nums, float(v)))


def ac_preds_by_field(plan: Plan, group: Group) -> dict[str | None, list[int]]:
    """Plain string predicates of a group's rules per field (memoised per plan and group)."""
    key = ("ac_by_field", tuple(group.rules))
    got: dict[str | None, list[int]] | None = plan.memo.get(key)
    if got is not None:
        return got
    by: dict[str | None, dict[int, None]] = {}
    for ri in group.rules:
        for pi in _pred_ids(plan.rules[ri]["condition"]):
            p = plan.preds[pi]
            if _ac_kind(p):
                by.setdefault(p["field"], {})[pi] = None
    out = {f: list(d) for f, d in by.items()}
    plan.memo[key] = out
    return out


def _is_plain(p: dict[str, Any]) -> bool:
    """A plain string predicate of a field (the Aho-Corasick pass evaluates it)."""
    return p.get("field") is not None and _ac_kind(p)


def requirements(tree: Tree, preds: list[dict[str, Any]]) -> list[list[int]]:
    """Clauses of plain string predicates a row must meet for ``tree`` to be true: in each
    clause, at least one predicate true (no clause: nothing is known).

    A predicate is a clause of itself; ``and`` needs its operands' clauses; ``or`` needs,
    of its operands, one clause each (the shortest) put together, and nothing if any
    operand needs nothing. ``not`` and other predicates need nothing: a plain predicate
    is true only on a value the column's Aho-Corasick pass hit, the others are not known
    before they are evaluated.
    """
    op = tree[0]
    if op == "p":
        return [[tree[1]]] if _is_plain(preds[tree[1]]) else []
    if op == "and":
        return [c for t in tree[1] for c in requirements(t, preds)]
    if op == "or":
        union: dict[int, None] = {}
        for t in tree[1]:
            got = requirements(t, preds)
            if not got:
                return []
            shortest = got[0]
            for c in got[1:]:
                if len(c) < len(shortest):
                    shortest = c
            union.update(dict.fromkeys(shortest))
        return [list(union)] if union else []
    return []


@dataclass
class Requirements:
    """Every detection rule's :func:`requirements`, flat, to test them all at once."""

    #: rules that have clauses, ascending
    rules: np.ndarray
    #: where each of those rules' clauses start in ``clause_starts``
    rule_starts: np.ndarray
    #: where each clause's predicates start in ``preds``
    clause_starts: np.ndarray
    preds: np.ndarray
    #: fields of each rule's clauses
    fields: dict[int, set[str]]


def rule_requirements(plan: Plan) -> Requirements:
    """:class:`Requirements` of the plan's detection rules (memoised per plan)."""
    got: Requirements | None = plan.memo.get("requirements")
    if got is not None:
        return got
    rules: list[int] = []
    rule_starts: list[int] = []
    clause_starts: list[int] = []
    flat: list[int] = []
    fields: dict[int, set[str]] = {}
    for ri in plan.detection_rules():
        clauses = requirements(plan.rules[ri]["condition"], plan.preds)
        if not clauses:
            continue
        rules.append(ri)
        rule_starts.append(len(clause_starts))
        for c in clauses:
            clause_starts.append(len(flat))
            flat.extend(c)
        fields[ri] = {plan.preds[pi]["field"] for c in clauses for pi in c}
    out = Requirements(np.array(rules, np.int64), np.array(rule_starts, np.int64),
                       np.array(clause_starts, np.int64), np.array(flat, np.int64), fields)
    plan.memo["requirements"] = out
    return out


def possible_rules(plan: Plan, chunk: ChunkEval, groups: Sequence[Group]) -> np.ndarray:
    """Per rule of the plan, whether it can be true on some row of the chunk: False when
    one of its :func:`requirements` clauses has no predicate that hits any value of the
    chunk. The Aho-Corasick pass of every field those clauses read is run first (each
    runs once per chunk anyway, for every group); then all rules are tested at once.

    Most rules are for event types or values a chunk does not have: on the 100x
    benchmark, 15,291 of the 18,459 rule evaluations that found nothing are ruled out
    so, and their trees are never walked.
    """
    req = rule_requirements(plan)
    possible = np.ones(len(plan.rules), dtype=bool)
    if not len(req.rules):
        return possible
    fields: set[str] = set()
    for g in groups:
        for ri in g.rules:
            fields |= req.fields.get(ri, set())
    for f in sorted(fields):
        chunk.ac(f, -1)  # the field's pass, for all its plain predicates
    alive = np.zeros(len(plan.preds), dtype=bool)
    hit = [pi for pi, b in chunk.on_dict.items() if b is not ALL_FALSE and pi >= 0]
    alive[hit] = True
    clause_ok = np.logical_or.reduceat(alive[req.preds], req.clause_starts)
    possible[req.rules] = np.logical_and.reduceat(clause_ok, req.rule_starts)
    return possible


def warm_up(plan: Plan) -> None:
    """Import the matcher's libraries and build per-group tables ahead of matching."""
    import polars as pl

    pl.Series("w", ["x"]).str.extract_many(["x"], overlapping=True)
    for g in plan.groups:
        ac_preds_by_field(plan, g)
    rule_requirements(plan)


def ac_pairs(d: pa.Array, preds: list[dict[str, Any]], ids: list[int]
             ) -> tuple[np.ndarray, np.ndarray]:
    """Plain string predicates over distinct values, in one multi-pattern pass.

    Returns the hits as two arrays: predicate id and position in ``d``, each pair once.
    """
    import polars as pl

    pats: dict[str, list[int]] = {}
    every: list[int] = []  # contains "": every value
    for pid, p in zip(ids, preds, strict=True):
        v = p["value"]
        op = p["op"]
        if op == "contains" and v == "":
            every.append(pid)
            continue
        pat = {"eq": _START + v + _END, "startswith": _START + v,
               "endswith": v + _END, "contains": v}[op]
        pats.setdefault(pat, []).append(pid)
    n = len(d)
    pid_parts: list[np.ndarray] = []
    pos_parts: list[np.ndarray] = []
    if every and n:
        pid_parts.append(np.repeat(np.array(every, np.int64), n))
        pos_parts.append(np.tile(np.arange(n, dtype=np.int64), len(every)))
    if pats and n:
        if pc.any(pc.match_substring_regex(d, "[\x02\x03]")).as_py():
            d = pc.replace_substring_regex(d, "[\x02\x03]", "\ufffd")
        wrapped = pc.binary_join_element_wise(_START, d, _END, "")
        patterns = list(pats)
        series = cast(pl.Series, pl.from_arrow(wrapped))
        found = series.str.extract_many(patterns, overlapping=True).to_arrow()
        if isinstance(found, pa.ChunkedArray):
            found = found.combine_chunks()
        flat = pc.list_flatten(found)
        if len(flat):
            pos = pc.list_parent_indices(found).to_numpy().astype(np.int64)
            pat = pc.index_in(flat, value_set=pa.array(patterns, flat.type)).to_numpy(
                zero_copy_only=False).astype(np.int64)
            first = np.array([pats[q][0] for q in patterns], np.int64)
            pid_parts.append(first[pat])
            pos_parts.append(pos)
            for k, q in enumerate(patterns):  # a pattern shared by predicates: the others
                if len(pats[q]) > 1:
                    at = pos[pat == k]
                    for other in pats[q][1:]:
                        pid_parts.append(np.full(len(at), other, np.int64))
                        pos_parts.append(at)
    if not pid_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # a pattern found twice in one value (overlapping matches): that pair once
    both = np.unique(np.concatenate(pid_parts) * max(n, 1) + np.concatenate(pos_parts))
    return both // max(n, 1), both % max(n, 1)


def ac_on_dict(d: pa.Array, preds: list[dict[str, Any]], ids: list[int]) -> dict[int, Bits]:
    """:func:`ac_pairs` as, per predicate id, a bool array over ``d`` (or ALL_FALSE when
    nothing hit)."""
    out: dict[int, Bits] = dict.fromkeys(ids, ALL_FALSE)
    pid, pos = ac_pairs(d, preds, ids)
    if not len(pid):
        return out
    bounds = np.flatnonzero(np.diff(pid)) + 1
    for p, at in zip(pid[np.r_[0, bounds]].tolist(), np.split(pos, bounds), strict=True):
        on = np.zeros(len(d), dtype=bool)
        on[at] = True
        out[p] = on
    return out


def _np(m: pa.Array) -> np.ndarray:
    arr: np.ndarray = m.fill_null(False).to_numpy(zero_copy_only=False)
    return arr


def _bits(a: np.ndarray) -> Bits:
    if not a.any():
        return ALL_FALSE
    if a.all():
        return ALL_TRUE
    return a


def _and(a: Bits, b: Bits) -> Bits:
    if a is ALL_FALSE or b is ALL_FALSE:
        return ALL_FALSE
    if a is ALL_TRUE:
        return b
    if b is ALL_TRUE:
        return a
    return _bits(a & b)


def _or(a: Bits, b: Bits) -> Bits:
    if a is ALL_TRUE or b is ALL_TRUE:
        return ALL_TRUE
    if a is ALL_FALSE:
        return b
    if b is ALL_FALSE:
        return a
    return _bits(a | b)


def _not(a: Bits) -> Bits:
    if a is ALL_FALSE:
        return ALL_TRUE
    if a is ALL_TRUE:
        return ALL_FALSE
    return ~a


def _pred_ids(tree: Tree) -> Iterator[int]:
    op = tree[0]
    if op == "p":
        yield tree[1]
    elif op in ("and", "or"):
        for t in tree[1]:
            yield from _pred_ids(t)
    elif op == "not":
        yield from _pred_ids(tree[1])


@dataclass
class MatchResult:
    """Hits over the whole table: rule index, part index and row in part, per hit."""

    rule: np.ndarray
    part: np.ndarray
    row: np.ndarray
    parts: list[str]
    events: int
    #: Worker processes and chunk size used (None: not matched here, e.g. on Spark).
    plan: MatchPlan | None = None
    #: Parts as read for matching, by part index, for the findings to take their rows
    #: from instead of reading the parts again: kept only when matched in this process
    #: with every column read; a whole part when the case was one chunk (no more than
    #: what matching held anyway), else the part's hit rows only (``kept_rows``), up to
    #: a bound in bytes, as the findings' event rows (``HitKeeper``). None: nothing kept.
    tables: dict[int, pa.Table] | None = None
    #: For a part of ``tables`` that holds the event rows of its hits (not the part as
    #: read): those rows (ascending rows of the part); a part absent from it is whole.
    kept_rows: dict[int, np.ndarray] | None = None


class HitKeeper:
    """What the findings take from the events that rules hit (``findings.event_rows``:
    the fields JSON, details, user...), made while matching holds each part, so that the
    findings need not read the parts again (reading a 50k-row part of 340 columns costs
    ~65 ms, and a case was read twice: to match, then for the hit rows).

    At most ``max_bytes`` are kept (by Arrow's count of the event-rows tables); once that
    is reached, the later parts are read again by the findings, as without a keeper.
    Event rows are kept rather than the taken slices of the parts: a 7,500-row slice of
    a part 246 columns wide is mostly offsets of empty cells. For the 100x benchmark case
    the event rows of all 16 parts come to ~122 MiB; the default 96 MiB keeps 11 of them,
    which costs ~35 MiB less peak memory than keeping all for ~0.2 s more findings time.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.full = False
        self.tables: dict[int, pa.Table] = {}
        self.rows: dict[int, np.ndarray] = {}
        self.lock = threading.Lock()  # chunks matched in threads add to one keeper
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Any] = []

    @classmethod
    def for_budget(cls, budget: MemoryBudget | None) -> HitKeeper:
        """KEEP_HIT_BYTES, and a sixteenth of ``--max-memory`` if less."""
        if budget is None:
            return cls(KEEP_HIT_BYTES)
        return cls(min(KEEP_HIT_BYTES, budget.total // 16))

    def add(self, part: int, table: pa.Table, rows: np.ndarray) -> None:
        """Keep the event rows of ``rows`` (ascending, distinct) of ``part`` as read.

        The rows are taken here (the part is let go of with its chunk), and their event
        rows made in the keeper's thread, beside the matching of the next chunk (Arrow
        kernels, mostly without the GIL): in submission order, so the parts kept are
        those :meth:`close` would keep made one by one.
        """
        if self.full or not len(rows):
            return
        taken = table.take(pa.array(rows))
        with self.lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keeper")
            self._pending.append(self._pool.submit(self._keep, part, taken, rows))
            wait = self._pending[:-KEEP_PENDING]
            del self._pending[:-KEEP_PENDING]
        del taken
        for f in wait:  # a taken part holds its part's dictionaries: a few at a time
            f.result()

    def _keep(self, part: int, taken: pa.Table, rows: np.ndarray) -> None:
        from tidehunt.detect.sigma.findings import event_rows

        if self.full:
            return
        made = event_rows(taken)
        del taken
        size = made.nbytes
        with self.lock:
            if self.full or self.used + size > self.max_bytes:
                self.full = True  # the parts matched after this one are read again
                return
            self.used += size
            self.tables[part] = made
            self.rows[part] = rows

    def close(self) -> None:
        """Wait for the event rows being made (an error in one is raised here); the
        keeper's ``tables`` and ``rows`` are then complete."""
        with self.lock:
            pending, self._pending = self._pending, []
            pool, self._pool = self._pool, None
        try:
            for f in pending:
                f.result()
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


#: Above this many rows, chunks are matched in parallel worker processes.
PARALLEL_MATCH_ROWS = 2_000_000
#: Parts whose hit rows are taken and not yet made event rows, at most (``HitKeeper``).
KEEP_PENDING = 2
#: Bytes of hit rows matching keeps for the findings at most (``HitKeeper``).
KEEP_HIT_BYTES = 96 << 20


def match(plan: Plan, store: CaseStore, rules: Sequence[int] | None = None, *,
          since: datetime | None = None, until: datetime | None = None,
          on_progress: Any = None, workers: int | None = None,
          budget: MemoryBudget | None = None) -> MatchResult:
    """Evaluate the plan's detection rules over the case's ``windows`` table.

    Chunks of parts are matched in this process, or, for large cases, in up to ``workers``
    processes that each load the plan once (spawn start-up costs about a second, so small
    cases stay in-process). ``budget`` (``--max-memory``) may lower both the workers and
    the rows of a chunk (:meth:`tidehunt.memory.MemoryBudget.match`); a chunk is still at
    least one part.
    """
    import os

    active = sorted(set(plan.detection_rules() if rules is None else rules))
    parts = [str(p) for p in store.parts("windows")]
    total = store.rows("windows")
    mplan = match_plan(budget, workers or min(2, os.cpu_count() or 1), chunk_rows=CHUNK_ROWS)
    chunks = list(_chunks(store, parts, mplan.chunk_rows))
    workers = mplan.workers
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
    if on_progress:
        on_progress("match", 0, total)
    events = 0
    if workers > 1 and len(chunks) > 1 and total >= PARALLEL_MATCH_ROWS:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        mp = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=mp,
                                 initializer=_init_worker,
                                 initargs=(plan.to_json(), ValueCache.for_budget(budget)
                                           .max_total // min(workers, len(chunks)))) as pool:
            for res in pool.map(_match_chunk_in_worker,
                                [(c, active, since, until) for c in chunks]):
                out.append(res)
                events += res[3]
                if on_progress:
                    on_progress("match", events, total)
    else:
        kept: dict[int, pa.Table] | None = {} if len(chunks) == 1 else None
        keeper = HitKeeper.for_budget(budget) if len(chunks) > 1 else None
        cache = ValueCache.for_budget(budget)

        def one(c: list[tuple[int, str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
            return match_chunk(plan, c, active, since, until, keep=kept, cache=cache,
                               keeper=keeper)

        threads = min(mplan.threads, len(chunks))
        try:
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="match") \
                    if threads > 1 else contextlib.nullcontext() as tpool:
                for res in (tpool.map(one, chunks) if tpool is not None
                            else map(one, chunks)):
                    out.append(res)
                    events += res[3]
                    if on_progress:
                        on_progress("match", events, total)
        finally:
            if keeper is not None:
                keeper.close()
        if keeper is not None and keeper.tables:
            kept, kept_rows = keeper.tables, keeper.rows
        else:
            kept_rows = None
        return _result(out, parts, mplan, kept or None, kept_rows)
    return _result(out, parts, mplan)


def _result(out: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]], parts: list[str],
            mplan: MatchPlan, kept: dict[int, pa.Table] | None = None,
            kept_rows: dict[int, np.ndarray] | None = None) -> MatchResult:
    """The MatchResult of the chunks' ``match_chunk`` results, in order."""
    return MatchResult(_cat([o[0] for o in out], np.int32), _cat([o[1] for o in out], np.int32),
                       _cat([o[2] for o in out], np.int64), parts, sum(o[3] for o in out),
                       mplan, kept, kept_rows)


class StreamMatch:
    """Matches ``windows`` parts as ingest commits them, in a thread of its own: while the
    ingest workers parse, the main process is mostly idle, and matching there takes the
    stage off the end of the run (``hunt``). Parts are matched in chunks of up to
    ``chunk_rows`` rows, in the order they are given (``add``); ``close`` matches what is
    left and returns the hits as :func:`match` would (part indices into the order given).
    """

    def __init__(self, plan: Plan, active: Sequence[int], *, since: datetime | None = None,
                 until: datetime | None = None, budget: MemoryBudget | None = None,
                 workers: int = 1, chunk_rows: int | None = None) -> None:
        import queue

        self.plan = plan
        self.active = list(active)
        self.since, self.until = since, until
        self.mplan = match_plan(budget, workers, chunk_rows=chunk_rows or CHUNK_ROWS)
        self.cache = ValueCache.for_budget(budget)
        self.keeper = HitKeeper.for_budget(budget)
        self.parts: list[str] = []
        self.out: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
        self.queue: queue.SimpleQueue[list[tuple[str, int]] | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.aborted = False
        self.thread = threading.Thread(target=self._run, name="stream-match", daemon=True)
        self.thread.start()

    def add(self, parts: list[tuple[str, int]]) -> None:
        """Parts (path, rows) committed to the case, to be matched."""
        if parts:
            self.queue.put(parts)

    def _run(self) -> None:
        pending: list[tuple[int, str]] = []
        rows = 0
        try:
            while True:
                got = self.queue.get()
                if got is None or self.aborted:
                    break
                for path, n in got:  # chunk_runs' rule, as the parts come
                    if pending and rows + n > self.mplan.chunk_rows:
                        self._chunk(pending)
                        pending, rows = [], 0
                    pending.append((len(self.parts), path))
                    self.parts.append(path)
                    rows += n
            if pending and not self.aborted:
                self._chunk(pending)
        except BaseException as exc:  # noqa: BLE001 - handed to close(), which raises it
            self.error = exc

    def _chunk(self, chunk: list[tuple[int, str]]) -> None:
        self.out.append(match_chunk(self.plan, chunk, self.active, self.since, self.until,
                                    cache=self.cache, keeper=self.keeper))

    def abort(self) -> None:
        """Stop (the run failed): the chunk being matched ends, no other starts."""
        self.aborted = True
        self.queue.put(None)
        self.thread.join()

    def close(self) -> MatchResult:
        """Match what is left; the hits of every part given."""
        self.queue.put(None)
        self.thread.join()
        self.keeper.close()
        if self.error is not None:
            raise self.error
        kept = self.keeper.tables or None
        return _result(self.out, self.parts, self.mplan, kept,
                       self.keeper.rows if kept else None)


def match_chunk(plan: Plan, chunk: list[tuple[int, str]], active: Sequence[int],
                since: datetime | None, until: datetime | None, *,
                keep: dict[int, pa.Table] | None = None, cache: ValueCache | None = None,
                keeper: HitKeeper | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Match one chunk of parts: (rule, part index, row in part) per hit, and its rows.

    ``keep``, if given, receives each part as read when every column of it was;
    ``keeper``, the rows of each part that rules hit (when every column was read).
    """
    groups = active_groups(plan, active)
    read: dict[int, pa.Table] | None = keep
    if keeper is not None and not keeper.full and read is None:
        read = {}
    table, part_of_row, row_in_part = _read_chunk(chunk, groups, plan, read)
    hits = run_groups(plan, groups, table, since, until, cache)
    rule = _cat(hits.rules, np.int32)
    rows = _cat(hits.rows, np.int64)
    part, row = part_of_row[rows], row_in_part[rows]
    if keeper is not None and read:
        for i, _ in chunk:
            got = read.pop(i, None)
            if got is not None:
                keeper.add(i, got, np.unique(row[part == i]))
    return rule, part, row, table.num_rows


_WORKER_PLAN: list[Plan] = []
_WORKER_CACHE: list[ValueCache] = []


def _init_worker(plan_json: bytes, cache_bytes: int | None = None) -> None:
    configure_arrow_memory()
    plan = Plan.from_json(plan_json)
    if plan is None:
        raise RuntimeError("plan version mismatch in worker")
    warm_up(plan)
    _WORKER_PLAN[:] = [plan]
    _WORKER_CACHE[:] = [ValueCache(cache_bytes)]  # the chunks this worker gets share it


def _match_chunk_in_worker(args: tuple[list[tuple[int, str]], list[int], datetime | None,
                                       datetime | None]
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    chunk, active, since, until = args
    return match_chunk(_WORKER_PLAN[0], chunk, active, since, until,
                       cache=_WORKER_CACHE[0] if _WORKER_CACHE else None)


def _cat(xs: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(xs) if xs else np.zeros(0, dtype=dtype)


def _chunks(store: CaseStore, parts: list[str], chunk_rows: int | None = None
            ) -> Iterator[list[tuple[int, str]]]:
    """The parts in runs of consecutive parts (``chunk_runs``) of the manifest's rows."""
    rows = {k: v["rows"] for k, v in store.manifest["parts"].items()}
    sizes = [rows.get(p[len(str(store.root)) + 1:], 0) for p in parts]
    for run in chunk_runs(sizes, chunk_rows or CHUNK_ROWS):
        yield [(i, parts[i]) for i in run]


def chunk_runs(sizes: Sequence[int], chunk_rows: int) -> list[list[int]]:
    """Indices of consecutive parts, in order, grouped so that a run holds at most
    ``chunk_rows`` rows, except a part larger than that, which is a run of its own.

    (Runs were "at least ``chunk_rows``": with the 100x case's parts of ~52k rows, a run
    took two or three of them, up to 150k rows and ~280 MiB read at once. At most 98k: the
    same match time, 30-100 MiB less peak.)
    """
    runs: list[list[int]] = []
    cur: list[int] = []
    n = 0
    for i, k in enumerate(sizes):
        if cur and n + k > chunk_rows:
            runs.append(cur)
            cur, n = [], 0
        cur.append(i)
        n += k
    if cur:
        runs.append(cur)
    return runs


def active_groups(plan: Plan, active: Sequence[int]) -> list[Group]:
    """The plan's groups with only the active rules, empty groups left out."""
    act = set(active)
    groups = [Group(g.channels, g.event_ids, [r for r in g.rules if r in act])
              for g in plan.groups]
    return [g for g in groups if g.rules]


def wanted_columns(plan: Plan, groups: list[Group]) -> tuple[bool, list[str]]:
    """Whether keyword rules need every column, and the columns the rules name
    (with the provenance the engine needs: ts, channel, event_id)."""
    need_all = any(plan.rules[r].get("keyword") for g in groups for r in g.rules)
    wanted: dict[str, None] = dict.fromkeys(["ts", "channel", "event_id"])
    for g in groups:
        for r in g.rules:
            for f in plan.rules[r]["fields"]:
                wanted[WINDOWS_ALIASES.get(f, f)] = None
                if f in AUDIT_FIELDS:
                    wanted[AUDIT_FIELDS[f]] = None
    return need_all, list(wanted)


def columns_in(names: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """The names of a part's columns that hold the wanted fields (case and spaces
    ignored, as the matcher resolves them)."""
    lower = {n.lower(): n for n in names}
    lower.update({n.replace(" ", "").lower(): n for n in names if " " in n})
    return list(dict.fromkeys(lower[w.lower()] for w in wanted if w.lower() in lower))


#: Text columns ``_read_chunk`` reads decoded: the channel, which the audit fields and the
#: group selection lower-case (Arrow has no string kernels over dictionaries).
DENSE_COLUMNS = frozenset({"channel"})


def _read_chunk(chunk: list[tuple[int, str]], groups: list[Group], plan: Plan,
                keep: dict[int, pa.Table] | None = None
                ) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Read the columns any active rule needs from a few parts, as one table.

    Text columns come dictionary-encoded (but DENSE_COLUMNS). Windows parts have no
    dictionary pages, so Arrow builds each part's dictionaries as it reads: at 100x,
    reading is 0.1-0.2 s slower than plain strings, but the matcher's encoding of every
    row of each column it uses goes (``run_groups`` 0.2-0.3 s faster), and a chunk of 104k
    rows and 344 columns takes 144 MiB instead of 197.

    ``keep``, if given, receives each part as read (by part index) when every column of
    it was.
    """
    import pyarrow.parquet as pq

    need_all, wanted = wanted_columns(plan, groups)
    tables = []
    part_ids = []
    for i, path in chunk:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        cols = names if need_all else columns_in(names, wanted)
        text = [f.name for f in pf.schema_arrow
                if pa.types.is_string(f.type) and f.name not in DENSE_COLUMNS]
        if text:  # reopened with the footer already read: dictionary arrays of the text
            pf = pq.ParquetFile(path, metadata=pf.metadata, read_dictionary=text)
        t = pf.read(columns=cols)
        if keep is not None and need_all:
            keep[i] = t
        tables.append(t)
        part_ids.append(np.full(t.num_rows, i, dtype=np.int32))
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 \
        else tables[0]
    table = with_audit_fields(merge_case_variants(table))
    row_in_part = np.concatenate([np.arange(t.num_rows, dtype=np.int64) for t in tables])
    return table, np.concatenate(part_ids), row_in_part


def with_audit_fields(table: pa.Table) -> pa.Table:
    """Sysmon field names over Security 4688 rows too (Image from NewProcessName, ...).

    Only 4688 rows get the audit values, where the Sysmon column is empty, as SigmaHQ's
    windows_audit_pipeline maps those fields for process_creation rules.
    """
    present = [(s, a) for s, a in AUDIT_FIELDS.items() if a in table.column_names]
    if not present or "channel" not in table.column_names:
        return table
    is_4688 = pc.and_(pc.equal(pc.utf8_lower(table.column("channel")), AUDIT_4688[0].lower()),
                      pc.equal(table.column("event_id"), AUDIT_4688[1]))
    is_4688 = pc.fill_null(is_4688, False)
    if not pc.any(is_4688).as_py():
        return table
    for sysmon, audit in present:
        col = plain(table.column(audit))
        value = pc.if_else(is_4688, col, pa.scalar(None, col.type))
        if sysmon in table.column_names:
            i = table.column_names.index(sysmon)
            table = table.set_column(i, sysmon, pc.coalesce(plain(table.column(sysmon)),
                                                            value))
        else:
            table = table.append_column(sysmon, value)
    return table


def plain(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column's values as a plain array: decoded if it is dictionary-encoded (Arrow's
    coalesce and if_else over dictionaries unify them first, at several times the cost
    of decoding the few columns these are used on)."""
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


def merge_case_variants(table: pa.Table) -> pa.Table:
    """Coalesce columns whose names differ only by case (ProcessId / ProcessID)."""
    groups: dict[str, list[str]] = {}
    for n in table.column_names:
        groups.setdefault(n.lower(), []).append(n)
    dupes = {k: v for k, v in groups.items() if len(v) > 1}
    if not dupes:
        return table
    for names in dupes.values():
        col = plain(table.column(names[0]))
        for other in names[1:]:
            col = pc.coalesce(col, plain(table.column(other)))
        table = table.drop_columns(names[1:])
        table = table.set_column(table.column_names.index(names[0]), names[0], col)
    return table


class _GroupRows:
    """The rows of a chunk each group (channels and event IDs) selects.

    Rows are coded once by their (channel, event ID) pair; a group's pairs are found
    among the few distinct ones, then its rows in one pass over the codes, instead of
    testing every row's channel and event ID once per group.
    """

    def __init__(self, channel: pa.Array | pa.ChunkedArray, event_id: pa.Array | pa.ChunkedArray,
                 base: np.ndarray | None) -> None:
        self.base = base
        self.n = len(channel)
        chan = pc.dictionary_encode(one_array(channel).cast(pa.string()))
        #: lower-cased channel per code; a null channel has code -1
        self.chan_names = pc.utf8_lower(chan.dictionary)
        c = chan.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        eids = one_array(event_id)
        self.by_value = pa.types.is_integer(eids.type)
        if not self.by_value:  # event IDs as text (not written so here): row by row
            self.eid = eids
            self.chan = c
            return
        ev = pc.dictionary_encode(eids)
        self.eid_values = ev.dictionary
        e = ev.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        n_e = len(self.eid_values) + 1
        pair = (c + 1) * n_e + (e + 1)  # -1 (null) -> 0
        self.pairs, self.code = np.unique(pair, return_inverse=True)
        self.pair_chan = self.pairs // n_e - 1
        self.pair_eid = self.pairs % n_e - 1

    def rows(self, g: Group) -> np.ndarray:
        """Row numbers (ascending) of the group's rows (and within ``base``)."""
        if not self.by_value:
            return self._rows_slow(g)
        ok = np.ones(len(self.pairs), dtype=bool)
        if g.channels:
            hit = _np(pc.is_in(self.chan_names, pa.array([c.lower() for c in g.channels])))
            ok &= (self.pair_chan >= 0) & np.append(hit, False)[self.pair_chan]
        if g.event_ids:
            hit = _np(pc.is_in(self.eid_values, pa.array(g.event_ids, pa.int64())))
            ok &= (self.pair_eid >= 0) & np.append(hit, False)[self.pair_eid]
        if not g.channels and not g.event_ids and self.base is None:
            return np.arange(self.n, dtype=np.int64)
        if not ok.any():
            return np.zeros(0, dtype=np.int64)
        keep = ok[self.code]
        if self.base is not None:
            keep &= self.base
        return np.flatnonzero(keep)

    def _rows_slow(self, g: Group) -> np.ndarray:
        keep = np.ones(self.n, dtype=bool) if self.base is None else self.base.copy()
        if g.channels:
            hit = _np(pc.is_in(self.chan_names, pa.array([c.lower() for c in g.channels])))
            keep &= (self.chan >= 0) & np.append(hit, False)[self.chan]
        if g.event_ids:
            keep &= _np(pc.is_in(self.eid, pa.array(g.event_ids, pa.int64()).cast(
                self.eid.type)))
        return np.flatnonzero(keep)


def one_array(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    """An array of ``a``'s values: its chunks joined if it has several."""
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def run_groups(plan: Plan, groups: list[Group], table: pa.Table,
               since: datetime | None = None, until: datetime | None = None,
               cache: ValueCache | None = None) -> Hits:
    """Evaluate every group's rules over one in-memory table (predicates over distinct
    values through ``cache`` when given: one per match, shared by its chunks)."""
    hits = Hits()
    names = table.column_names
    resolve: dict[str, str | None] = {}
    for n in names:
        resolve.setdefault(n.lower(), n)
    for n in names:  # "Threat Name" (Defender EventData) is ThreatName in Sigma rules
        if " " in n:
            resolve.setdefault(n.replace(" ", "").lower(), n)
    for alias, col in WINDOWS_ALIASES.items():
        if col in names:
            resolve[alias.lower()] = col
    base = None
    if since is not None or until is not None:
        ts = table.column("ts")
        conds = []
        if since is not None:
            conds.append(pc.greater_equal(ts, pa.scalar(since, ts.type)))
        if until is not None:
            conds.append(pc.less_equal(ts, pa.scalar(until, ts.type)))
        base = _np(one_array(conds[0] if len(conds) == 1 else pc.and_(conds[0], conds[1])))
    chunk = ChunkEval(plan, groups, table, resolve, cache)
    select = _GroupRows(table.column("channel"), table.column("event_id"), base)
    todo = [(g, rows) for g in groups if len(rows := select.rows(g))]
    possible = possible_rules(plan, chunk, [g for g, _ in todo])
    for g, rows in todo:
        rules = [ri for ri in g.rules if possible[ri]]
        if not rules:
            continue
        run = GroupRun(chunk, g, rows, names)
        for ri in rules:
            bits = run.rule(plan.rules[ri]["condition"])
            if bits is ALL_FALSE:
                continue
            sel = rows if bits is ALL_TRUE else rows[bits]
            if len(sel):
                hits.add(ri, sel)
    return hits
