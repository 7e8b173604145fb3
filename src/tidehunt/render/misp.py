"""MISP event JSON of a case: one event (``info`` names the case and its incidents), an
attribute per public address, domain, e-mail address, hash and URI path the findings name
(``to_ids`` off: retro-hunt material, to be vetted before it blocks anything), with first
and last seen, the rules in the comment, and ATT&CK galaxy tags for the techniques whose
names the coverage model knows. Loads with PyMISP's ``MISPEvent.load``."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import IO, Any

import orjson
import pyarrow as pa

from tidehunt.model.report import RunReport
from tidehunt.render._iocs import case_domains, meta_time, observables

NAME = "misp"
NS = uuid.UUID("0c6a3b7e-39a1-4b8e-8f7d-5e2d1a9c4b61")
_TYPES = {"ip": ("ip-dst", "ip-src", "Network activity"), "domain": ("domain", "domain",
          "Network activity"), "email": ("email-src", "email-src", "Payload delivery"),
          "hash": ("sha256", "sha256", "Payload delivery"), "uri": ("uri", "uri",
                                                                     "Network activity")}
_THREAT = {"critical": "1", "high": "1", "medium": "2", "low": "3", "informational": "4"}


def event(report: RunReport, findings: pa.Table) -> dict[str, Any]:
    """The event document (``{"Event": {...}}``)."""
    from tidehunt.posture import load_coverage

    now = meta_time(report)
    levels = Counter(findings.column("level").to_pylist()) if findings.num_rows else Counter()
    worst = next((lv for lv in ("critical", "high", "medium", "low") if levels.get(lv)),
                 "informational")
    attrs = []
    for o in observables(findings, case_domains(findings)):
        dst, src, cat = _TYPES[o.kind]
        a: dict[str, Any] = {
            "uuid": str(uuid.uuid5(NS, f"{report.meta.case}|{o.kind}|{o.value}")),
            "type": src if o.as_source else dst, "category": cat, "value": o.value,
            "to_ids": False, "distribution": "5",
            "comment": ("tidehunt: " + "; ".join(sorted(o.rules)))[:1000]}
        if o.first:
            a["first_seen"] = o.first.isoformat()
        if o.last:
            a["last_seen"] = o.last.isoformat()
        attrs.append(a)
    names = {t["id"]: t.get("name") for t in load_coverage().get("techniques", [])}
    techs = sorted({t for row in findings.column("techniques").to_pylist()
                    for t in row or []}) if findings.num_rows else []
    tags = [{"name": "tlp:amber"}, {"name": 'tidehunt:source="findings"'}]
    tags += [{"name": f'misp-galaxy:mitre-attack-pattern="{names[t]} - {t}"'}
             for t in techs if names.get(t)]
    incs = "; ".join(f"{i['id']}: {i.get('title', '')}" for i in report.incidents[:5])
    return {"Event": {
        "uuid": str(uuid.uuid5(NS, report.meta.case + "|" + now)),
        "info": (f"tidehunt case {report.meta.case}: {report.findings_count} findings"
                 + (f"; {incs}" if incs else ""))[:1000],
        "date": now[:10], "threat_level_id": _THREAT[worst], "analysis": "1",
        "distribution": "0", "published": False,
        "Attribute": attrs, "Tag": tags}}


def render(report: RunReport, findings: pa.Table, out: IO[bytes]) -> None:
    """Write the event JSON."""
    doc = event(report, findings)
    out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
