"""Turn rule hits into finding rows: one finding per (rule, event) for detection rules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
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


def details(fields: dict[str, Any], limit: int = 4) -> str:
    """Hayabusa-style ``Key: value ¦ Key: value`` from the most telling fields."""
    out = []
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
    return " ¦ ".join(out)


def _first(fields: dict[str, Any], names: Sequence[str]) -> str | None:
    for n in names:
        v = fields.get(n)
        if v not in (None, "", "-"):
            return str(v)
    return None


def event_fields(row: dict[str, Any]) -> dict[str, Any]:
    """An event's non-null fields under Sigma names, for a finding."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if v is None or k in _HIDDEN:
            continue
        if k == "ts":
            v = v.isoformat().replace("+00:00", "Z")
        out[SIGMA_NAMES.get(k, k)] = v
    return out


def build_findings(plan: Plan, res: MatchResult, emit: set[int]) -> tuple[pa.Table, pa.Table]:
    """Findings for hits of rules in ``emit``, and all hits (for correlations).

    Returns (findings table in FINDINGS_SCHEMA, hit table with rule index and fields JSON).
    """
    rows_out: list[dict[str, Any]] = []
    hits_rule: list[int] = []
    hits_ts: list[Any] = []
    hits_fields: list[str] = []
    hits_fid: list[str] = []
    hits_host: list[Any] = []
    hits_ev: list[dict[str, Any]] = []
    order = np.lexsort((res.row, res.part))
    rule, part, row = res.rule[order], res.part[order], res.row[order]
    for p in np.unique(part):
        sel = part == p
        prow = row[sel]
        prule = rule[sel]
        uniq, inv = np.unique(prow, return_inverse=True)
        t = pq.read_table(res.parts[int(p)]).take(pa.array(uniq))
        events = t.to_pylist()
        cache: dict[int, tuple[dict[str, Any], str]] = {}
        for ri, ui in zip(prule.tolist(), inv.tolist(), strict=True):
            ev = events[ui]
            got = cache.get(ui)
            if got is None:
                f = event_fields(ev)
                got = cache[ui] = (f, orjson.dumps(f, default=str).decode())
            fields, fjson = got
            r = plan.rules[ri]
            loc = str(ev.get("_locator"))
            fid = finding_id(r["id"] or r["title"], [(str(ev.get("_artefact")), loc)])
            hits_rule.append(ri)
            hits_ts.append(ev.get("ts"))
            hits_fields.append(fjson)
            hits_fid.append(fid)
            hits_host.append(ev.get("host"))
            hits_ev.append({"table": "windows", "source_file": ev.get("source_file"),
                            "artefact": ev.get("_artefact"), "record_id": ev.get("record_id"),
                            "locator": loc})
            if ri not in emit:
                continue
            rows_out.append(_finding_row(r, ev, fields, fjson, fid, loc))
    findings = pa.Table.from_pylist(rows_out, schema=FINDINGS_SCHEMA)
    hits = pa.table({
        "rule": pa.array(hits_rule, pa.int32()),
        "ts": pa.array(hits_ts, pa.timestamp("us", tz="UTC")),
        "host": pa.array(hits_host, pa.string()),
        "finding_id": pa.array(hits_fid, pa.string()),
        "fields": pa.array(hits_fields, pa.string()),
        "evidence": pa.array(hits_ev, EVIDENCE_TYPE),
    })
    return findings, hits


def _finding_row(r: dict[str, Any], ev: dict[str, Any], fields: dict[str, Any], fjson: str,
                 fid: str, loc: str) -> dict[str, Any]:
    det = details(fields)
    host = ev.get("host")
    return {
        "finding_id": fid,
        "ts": ev.get("ts"),
        "ts_last": ev.get("ts"),
        "rule_id": r["id"],
        "rule_title": r["title"],
        "engine": "sigma",
        "level": r["level"],
        "severity": int(Severity.parse(r["level"])),
        "techniques": r["techniques"],
        "tactics": r["tactics"],
        "host": host,
        "user": _first(fields, USER_FIELDS),
        "src": _first(fields, SRC_FIELDS),
        "dst": _first(fields, DST_FIELDS),
        "channel": ev.get("channel"),
        "event_id": ev.get("event_id"),
        "summary": f"{r['title']} on {host or 'unknown host'}" + (f": {det}" if det else ""),
        "details": details(fields, limit=6),
        "evidence": [{
            "table": "windows",
            "source_file": ev.get("source_file"),
            "artefact": ev.get("_artefact"),
            "record_id": ev.get("record_id"),
            "locator": loc,
        }],
        "fields": fjson,
    }


def concat(tables: Iterable[pa.Table]) -> pa.Table:
    """Concatenate finding tables (all in FINDINGS_SCHEMA)."""
    ts = [t for t in tables if t.num_rows]
    if not ts:
        return FINDINGS_SCHEMA.empty_table()
    return pa.concat_tables(ts)
