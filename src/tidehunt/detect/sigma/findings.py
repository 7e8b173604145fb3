"""Turn rule hits into finding rows: one finding per (rule, event) for detection rules."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tidehunt.detect.sigma.plan import Plan
from tidehunt.detect.sigma.run import MatchResult
from tidehunt.model.finding import EVIDENCE_TYPE, FINDINGS_SCHEMA, finding_id
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


def build_findings(plan: Plan, res: MatchResult, emit: set[int], *, with_hits: bool = True
                   ) -> tuple[pa.Table, pa.Table]:
    """Findings for hits of rules in ``emit``, and all hits (for correlations).

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
    todo = []
    for p in np.unique(part):
        sel = part == p
        uniq, inv = np.unique(row[sel], return_inverse=True)
        kept = res.tables.get(int(p)) if res.tables else None
        todo.append((res.parts[int(p)] if kept is None else kept, uniq, inv))
    for t, (_, uniq, inv) in zip(_matched_rows(todo), todo, strict=True):
        fields = _event_fields(t)
        det6 = [_detail_items(f, 6) for f in fields]
        # to Arrow part by part: the Python strings of one part at a time are alive
        for key, values in (
            ("fields", [orjson.dumps(f, default=str).decode() for f in fields]),
            ("det", [" ¦ ".join(d[:4]) for d in det6]),
            ("det6", [" ¦ ".join(d) for d in det6]),
            ("user", [_first(f, USER_FIELDS) for f in fields]),
            ("src", [_first(f, SRC_FIELDS) for f in fields]),
            ("dst", [_first(f, DST_FIELDS) for f in fields]),
        ):
            per_event[key].append(pa.array(values, pa.string()))
        del fields
        ev_tables.append(t.select([c for c in _EVENT_COLS if c in t.column_names]))
        hit_event.append(inv.reshape(-1).astype(np.int64) + base)
        base += len(uniq)
    he = np.concatenate(hit_event) if hit_event else np.zeros(0, np.int64)
    ev = _event_table(ev_tables, per_event)
    ids = [r["id"] or r["title"] for r in plan.rules]
    arts = ev["artefact"].to_pylist()
    locs = ev["locator"].to_pylist()
    fids = pa.array([finding_id(ids[ri], [(str(arts[e]), str(locs[e]))])
                     for ri, e in zip(rule.tolist(), he.tolist(), strict=True)], pa.string())
    evidence = pa.StructArray.from_arrays(
        [pa.array(["windows"] * base, pa.string()), ev["source_file"], ev["artefact"],
         ev["record_id"], ev["locator"]],
        fields=list(EVIDENCE_TYPE))
    hidx = pa.array(he if with_hits else he[:0])
    sel = pa.array(np.arange(len(he) if with_hits else 0))
    hits = pa.table({
        "rule": pa.array(rule, pa.int32()).take(sel),
        "ts": ev["ts"].take(hidx),
        "host": ev["host"].take(hidx),
        "finding_id": fids.take(sel),
        "fields": ev["fields"].take(hidx),
        "evidence": evidence.take(hidx),
    })
    del hidx, sel
    keep = np.flatnonzero(np.isin(rule, np.fromiter(emit, np.int64, len(emit))))
    kev = pa.array(he[keep])
    found_evidence = evidence.take(kev)
    del evidence, arts, locs
    found_ids = fids.take(pa.array(keep))
    del fids
    # each event column is dropped once taken per finding: the per-event fields JSON and
    # the per-finding copy of it are the largest arrays, and only one of each is alive
    used = ("ts", "host", "channel", "event_id", "det", "det6", "user", "src", "dst")
    per_finding: dict[str, pa.Array | pa.ChunkedArray] = {
        "fields": _take_chunked(ev.pop("fields"), kev)}
    per_finding |= {k: ev.pop(k).take(kev) for k in used}
    ev.clear()
    return _findings(plan, rule[keep], per_finding, found_ids, found_evidence), hits


#: Rows per chunk of a finding column taken from its events (``_take_chunked``).
TAKE_ROWS = 16_384


def _take_chunked(values: pa.Array, indices: pa.Array) -> pa.ChunkedArray:
    """``values.take(indices)`` as chunks of TAKE_ROWS rows.

    One take of a large text column grows its output buffer by doubling and copying:
    the fields JSON of 110,600 findings (150 MiB) took ~300 MiB at the peak of the take.
    Chunks of it are sized once each and never joined.
    """
    return pa.chunked_array([values.take(indices.slice(start, TAKE_ROWS))
                             for start in range(0, len(indices), TAKE_ROWS)], values.type)


def _matched_rows(todo: Sequence[tuple[str | pa.Table, np.ndarray, np.ndarray]]
                  ) -> Iterator[pa.Table]:
    """The matched rows of each part in turn, the next part read while this one is used.

    A part is a path, or the table matching read already (``MatchResult.tables``).
    Reading a part (hundreds of columns) and taking its rows run in Arrow with the GIL
    released, so they overlap the Python work on the part before; at most one part beyond
    the current one is held.
    """
    def read(part: str | pa.Table, rows: np.ndarray) -> pa.Table:
        t = part if isinstance(part, pa.Table) else pq.read_table(part)
        return t.take(pa.array(rows))

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = [pool.submit(read, *todo[0][:2])] if todo else []
        for i in range(len(todo)):
            t = pending.pop().result()
            if i + 1 < len(todo):
                pending.append(pool.submit(read, *todo[i + 1][:2]))
            yield t


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


def _event_table(tables: list[pa.Table], per_event: dict[str, list[pa.Array]]
                 ) -> dict[str, pa.Array]:
    """Per matched event: its declared columns and what was derived from its fields."""
    types = {"ts": pa.timestamp("us", tz="UTC"), "event_id": pa.int64(),
             "record_id": pa.int64()}
    cols: dict[str, pa.Array] = {}
    for c in _EVENT_COLS:
        chunks = [t.column(c).cast(types.get(c, pa.string())) if c in t.column_names
                  else pa.nulls(t.num_rows, types.get(c, pa.string())) for t in tables]
        arr = pa.chunked_array(chunks, types.get(c, pa.string())).combine_chunks() \
            if chunks else pa.array([], types.get(c, pa.string()))
        cols[c.lstrip("_")] = arr
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
