"""ECS-shaped JSON lines (Elastic Common Schema 8.x field names) for Elastic or OpenSearch:
one alert document per finding (``event.kind: alert``), with ``rule``, ``threat``
(MITRE ATT&CK), ``host``, ``user``, ``source``/``destination`` (when they are addresses),
``related`` and the evidence under ``tidehunt``. Load with the bulk API or Filebeat."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import IO, Any

import orjson
import pyarrow as pa

from tidehunt.model.report import RunReport
from tidehunt.render._polars import slices

NAME = "ecs"
ECS_VERSION = "8.11.0"
_SEVERITY = {"informational": 21, "low": 21, "medium": 47, "high": 73, "critical": 99}


def _ip(v: str | None) -> str | None:
    if not v:
        return None
    try:
        return str(ipaddress.ip_address(v.strip()))
    except ValueError:
        return None


def document(r: dict[str, Any]) -> dict[str, Any]:
    """One finding as an ECS alert document."""
    ts = r["ts"]
    doc: dict[str, Any] = {
        "@timestamp": ts.isoformat() if isinstance(ts, datetime) else None,
        "ecs": {"version": ECS_VERSION},
        "message": r["summary"],
        "event": {"kind": "alert", "category": ["intrusion_detection"], "type": ["info"],
                  "id": r["finding_id"], "dataset": "tidehunt.findings",
                  "module": "tidehunt", "provider": r["engine"],
                  "severity": _SEVERITY.get(r["level"], 21),
                  "end": r["ts_last"].isoformat() if isinstance(r["ts_last"], datetime)
                  else None},
        "rule": {"id": r["rule_id"], "name": r["rule_title"], "ruleset": r["engine"]},
        "threat": {"framework": "MITRE ATT&CK",
                   "technique": [{"id": t.split(".")[0]} for t in dict.fromkeys(
                       r["techniques"] or [])],
                   "tactic": {"name": list(r["tactics"] or [])}},
        "labels": {"level": r["level"]},
        "tidehunt": {"evidence": r["evidence"] or [], "src": r["src"], "dst": r["dst"]},
    }
    subs = [t for t in r["techniques"] or [] if "." in t]
    if subs:
        doc["threat"]["technique"] = [{"id": t.split(".")[0], "subtechnique": [
            {"id": s} for s in subs if s.startswith(t.split(".")[0] + ".")]}
            for t in dict.fromkeys(x.split(".")[0] for x in r["techniques"])]
    if r["host"]:
        doc["host"] = {"name": r["host"]}
    if r["user"]:
        doc["user"] = {"name": r["user"]}
    related: dict[str, list[str]] = {}
    for key, v in (("source", r["src"]), ("destination", r["dst"])):
        ip = _ip(v)
        if ip:
            doc[key] = {"ip": ip}
            related.setdefault("ip", []).append(ip)
    if r["host"]:
        related["hosts"] = [r["host"]]
    if r["user"]:
        related["user"] = [r["user"]]
    if related:
        doc["related"] = related
    return {k: v for k, v in doc.items() if v is not None}


def render(report: RunReport, findings: pa.Table, out: IO[bytes]) -> None:
    """Write one ECS document per line."""
    del report
    cols = ["finding_id", "ts", "ts_last", "rule_id", "rule_title", "engine", "level",
            "techniques", "tactics", "host", "user", "src", "dst", "summary", "evidence"]
    for part in slices(findings):
        out.write(b"".join(orjson.dumps(document(r)) + b"\n"
                           for r in part.select(cols).to_pylist()))
