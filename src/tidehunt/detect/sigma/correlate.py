"""Sigma correlation rules (event_count, value_count, temporal, temporal_ordered).

Runs after detection, over the hits of the referenced rules: DuckDB extracts the
group-by values from the hits' fields and orders them; a sweep over each group's hits
(never over events) finds the windows that meet the condition. Each window becomes one
finding whose evidence lists the events in it (first 100).
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from tidehunt.detect.sigma.plan import Plan
from tidehunt.memory import MemoryBudget, limit_duckdb
from tidehunt.model.finding import FINDINGS_SCHEMA, finding_id
from tidehunt.model.rule import Severity

_OPS: dict[str, Callable[[int, int], bool]] = {
    "gte": operator.ge, "gt": operator.gt, "lte": operator.le, "lt": operator.lt,
    "eq": operator.eq, "neq": operator.ne,
}


def resolve_refs(plan: Plan) -> tuple[dict[int, list[int]], list[dict[str, str]]]:
    """Map each correlation rule to the indices of the rules it references."""
    by_key: dict[str, int] = {}
    for i, r in enumerate(plan.rules):
        if r.get("id"):
            by_key[r["id"]] = i
        if r.get("name"):
            by_key[r["name"]] = i
    out: dict[int, list[int]] = {}
    errors: list[dict[str, str]] = []
    for i, r in enumerate(plan.rules):
        if r["type"] != "correlation":
            continue
        refs = [by_key.get(x) for x in r["refs"]]
        missing = [x for x, j in zip(r["refs"], refs, strict=True) if j is None]
        if missing:
            errors.append({"path": r["path"], "id": r["id"], "title": r["title"],
                           "reason": f"references rules not loaded: {', '.join(missing)}"})
            continue
        if any(plan.rules[j]["type"] != "detection" for j in refs if j is not None):
            errors.append({"path": r["path"], "id": r["id"], "title": r["title"],
                           "reason": "correlations of correlations are not supported"})
            continue
        out[i] = [j for j in refs if j is not None]
    return out, errors


def _path(field: str) -> str:
    return '$."' + field.replace('"', '\\"') + '"'


def run_correlations(plan: Plan, hits: pa.Table, corr: dict[int, list[int]], *,
                     budget: MemoryBudget | None = None, spill: Path | None = None
                     ) -> pa.Table:
    """Findings of every correlation rule in ``corr`` over the detection hits.

    With a ``budget`` the DuckDB sort of the hits gets its share as ``memory_limit`` and
    spills into ``spill`` (a folder it creates and removes) beyond it.
    """
    rows: list[dict[str, Any]] = []
    if not corr or hits.num_rows == 0:
        return FINDINGS_SCHEMA.empty_table()
    con = duckdb.connect()
    limit_duckdb(con, budget, spill)
    con.register("hits", hits)
    for ci, refs in corr.items():
        r = plan.rules[ci]
        q, params = keyed_sql(r, refs)
        table = con.sql(q + f" ORDER BY {group_order(r)}ts, finding_id", params=params
                        ).to_arrow_table()  # ties by ID: windows never depend on parts
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for h in table.to_pylist():
            key = group_key(r, h)
            if key is not None:
                groups.setdefault(key, []).append(h)
        for key, evs in groups.items():
            rows.extend(group_findings(plan, ci, refs, key, evs))
    con.close()
    return pa.Table.from_pylist(rows, schema=FINDINGS_SCHEMA)


def keyed_sql(r: dict[str, Any], refs: list[int]) -> tuple[str, dict[str, Any]]:
    """The hits of a correlation's rules (from a relation named ``hits``) with its value
    field as ``v`` and its group-by fields as ``g0``, ``g1``...: SQL and its parameters."""
    gb = r["group_by"]
    vf = r.get("field")
    cols = ", ".join(f"json_extract_string(fields, $g{k}) AS g{k}" for k in range(len(gb)))
    params: dict[str, Any] = {f"g{k}": _path(g) for k, g in enumerate(gb)}
    params["refs"] = refs
    vexpr = "json_extract_string(fields, $vf)" if vf else "NULL"
    if vf:
        params["vf"] = _path(vf)
    return (f"SELECT rule, ts, host, finding_id, fields, evidence, {vexpr} AS v"
            f"{', ' + cols if cols else ''} FROM hits WHERE list_contains($refs, rule) "
            "AND ts IS NOT NULL", params)


def group_order(r: dict[str, Any]) -> str:
    """ORDER BY terms of the group-by columns of ``keyed_sql`` (with a trailing comma)."""
    return "".join(f"g{k}, " for k in range(len(r["group_by"])))


def group_key(r: dict[str, Any], h: dict[str, Any]) -> tuple[Any, ...] | None:
    """The group of a keyed hit; None when it lacks a group-by field (it takes no part)."""
    key = tuple(h[f"g{k}"] for k in range(len(r["group_by"])))
    return None if any(v is None for v in key) else key


def group_findings(plan: Plan, ci: int, refs: list[int], key: tuple[Any, ...],
                   evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finding rows of correlation ``ci`` over one group's hits (in time order)."""
    r = plan.rules[ci]
    group = dict(zip(r["group_by"], key, strict=True))
    return [_row(plan, r, ci, refs, group, w) for w in _windows(r, refs, evs)]


def _windows(r: dict[str, Any], refs: list[int],
             evs: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    span = timedelta(seconds=r["timespan"])
    op = _OPS.get(r["op"], _OPS["gte"])
    count = r["count"]
    ctype = r["ctype"]
    if ctype in ("event_count", "value_count") and r["op"] in ("lt", "lte", "eq", "neq"):
        # "fewer than" conditions: tumbling windows from the group's first event
        start = 0
        while start < len(evs):
            end = start
            while end < len(evs) and evs[end]["ts"] - evs[start]["ts"] <= span:
                end += 1
            w = evs[start:end]
            n = len(w) if ctype == "event_count" else len({e["v"] for e in w if e["v"]})
            if op(n, count):
                yield w
            start = end
        return
    lo = 0
    values: Counter[Any] = Counter()
    seen: Counter[int] = Counter()
    for hi, e in enumerate(evs):
        values[e["v"]] += 1
        seen[e["rule"]] += 1
        while e["ts"] - evs[lo]["ts"] > span:
            old = evs[lo]
            values[old["v"]] -= 1
            if values[old["v"]] == 0:
                del values[old["v"]]
            seen[old["rule"]] -= 1
            if seen[old["rule"]] == 0:
                del seen[old["rule"]]
            lo += 1
        w = evs[lo:hi + 1]
        if ctype == "event_count":
            ok = op(len(w), count)
        elif ctype == "value_count":
            ok = op(len([v for v in values if v is not None]), count)
        elif ctype == "temporal":
            ok = all(seen.get(x, 0) > 0 for x in refs)
        else:
            ok = _ordered(w, refs)
        if ok:
            yield w
            lo = hi + 1  # next window starts after this one: no overlapping findings
            values.clear()
            seen.clear()


def _ordered(w: list[dict[str, Any]], refs: list[int]) -> bool:
    i = 0
    for e in w:
        if e["rule"] == refs[i]:
            i += 1
            if i == len(refs):
                return True
    return False


def _row(plan: Plan, r: dict[str, Any], ci: int, refs: list[int], group: dict[str, Any],
         w: list[dict[str, Any]]) -> dict[str, Any]:
    first, last = w[0], w[-1]
    hosts = {e["host"] for e in w if e["host"]}
    titles = sorted({plan.rules[e["rule"]]["title"] for e in w})
    evidence = [e["evidence"] for e in w[:100]]
    gtxt = ", ".join(f"{k}={v}" for k, v in group.items()) or "all events"
    summary = (f"{r['title']}: {len(w)} events of {'; '.join(titles)} within "
               f"{r['timespan']}s ({gtxt})")
    fields = {**group, "count": len(w), "rules": titles,
              "hits": [e["finding_id"] for e in w[:100]]}
    return {
        "finding_id": finding_id(r["id"] or r["title"], [("corr", e["finding_id"]) for e in w]),
        "ts": first["ts"],
        "ts_last": last["ts"],
        "rule_id": r["id"],
        "rule_title": r["title"],
        "engine": "sigma",
        "level": r["level"],
        "severity": int(Severity.parse(r["level"])),
        "techniques": sorted({*r["techniques"], *(t for j in refs
                                                    for t in plan.rules[j]["techniques"])}),
        "tactics": sorted({*r["tactics"], *(t for j in refs for t in plan.rules[j]["tactics"])}),
        "host": next(iter(hosts)) if len(hosts) == 1 else None,
        "user": None,
        "src": None,
        "dst": None,
        "channel": None,
        "event_id": None,
        "summary": summary,
        "details": f"{gtxt}; count: {len(w)}",
        "evidence": evidence,
        "fields": orjson.dumps(fields, default=str).decode(),
    }
