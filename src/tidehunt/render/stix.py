"""STIX 2.1 bundle of a case (built and checked with the stix2 library): the producing
identity, an attack-pattern per ATT&CK technique that fired with a sighting of it per rule
(count, first and last seen), and an indicator per public address, domain, e-mail address
and hash the findings name, each with its sighting. Identifiers are UUIDv5 of their
content, so the same case gives the same bundle."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import IO, Any

import pyarrow as pa

from tidehunt.model.report import RunReport
from tidehunt.render._iocs import case_domains, meta_time, observables

NAME = "stix"
NS = uuid.UUID("6b1f2c55-7d0e-4d59-9a3e-3c7b9f1d2a40")
_PATTERN = {"ip": "[{t}:value = '{v}']", "domain": "[domain-name:value = '{v}']",
            "email": "[email-addr:value = '{v}']", "hash": "[file:hashes.'SHA-256' = '{v}']"}


def _id(kind: str, key: str) -> str:
    return f"{kind}--{uuid.uuid5(NS, kind + '|' + key)}"


def bundle(report: RunReport, findings: pa.Table) -> Any:
    """The stix2.Bundle."""
    import stix2

    now = meta_time(report)
    me = stix2.Identity(id=_id("identity", "tidehunt"), name="tidehunt",
                        identity_class="system", created=now, modified=now)
    case = stix2.Identity(id=_id("identity", "case|" + report.meta.case),
                          name=f"case {report.meta.case}", identity_class="organization",
                          created=now, modified=now, created_by_ref=me.id)
    objs: list[Any] = [me, case]
    per: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"n": 0, "first": None, "last": None})
    for r in findings.select(["rule_title", "techniques", "ts", "ts_last"]).to_pylist():
        for t in dict.fromkeys(r["techniques"] or []):
            p = per[(t, r["rule_title"])]
            p["n"] += 1
            for k, v, better in (("first", r["ts"], min), ("last", r["ts_last"] or r["ts"],
                                                          max)):
                if isinstance(v, datetime):
                    p[k] = v if p[k] is None else better(p[k], v)
    patterns: dict[str, Any] = {}
    for (tech, rule), p in sorted(per.items()):
        if tech not in patterns:
            patterns[tech] = stix2.AttackPattern(
                id=_id("attack-pattern", tech), name=tech, created=now, modified=now,
                created_by_ref=me.id, external_references=[{
                    "source_name": "mitre-attack", "external_id": tech,
                    "url": "https://attack.mitre.org/techniques/" + tech.replace(".", "/")}])
            objs.append(patterns[tech])
        objs.append(stix2.Sighting(
            id=_id("sighting", f"{tech}|{rule}"), sighting_of_ref=patterns[tech].id,
            count=min(p["n"], 999999999), created=now, modified=now, created_by_ref=me.id,
            where_sighted_refs=[case.id], description=f"tidehunt rule: {rule}",
            **_seen(p["first"], p["last"])))
    for o in observables(findings, case_domains(findings)):
        if o.kind not in _PATTERN:
            continue
        t = "ipv6-addr" if ":" in o.value else "ipv4-addr"
        value = o.value.replace("\\", "\\\\").replace("'", "\\'")
        ind = stix2.Indicator(
            id=_id("indicator", f"{o.kind}|{o.value}"), name=f"{o.kind} {o.value}",
            pattern=_PATTERN[o.kind].format(t=t, v=value), pattern_type="stix",
            valid_from=o.first or now, created=now, modified=now, created_by_ref=me.id,
            indicator_types=["malicious-activity"],
            description="Seen in tidehunt findings: " + "; ".join(sorted(o.rules))[:1000],
            labels=sorted(o.techniques)[:20] or None)
        objs.append(ind)
        objs.append(stix2.Sighting(
            id=_id("sighting", f"ind|{o.kind}|{o.value}"), sighting_of_ref=ind.id,
            count=len(o.findings), created=now, modified=now, created_by_ref=me.id,
            where_sighted_refs=[case.id], **_seen(o.first, o.last)))
    return stix2.Bundle(objects=objs, id=_id("bundle", report.meta.case + "|" + now))


def _seen(first: datetime | None, last: datetime | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if first:
        out["first_seen"] = first
    if last and (not first or last > first):
        out["last_seen"] = last
    return out


def render(report: RunReport, findings: pa.Table, out: IO[bytes]) -> None:
    """Write the bundle JSON."""
    out.write(bundle(report, findings).serialize(pretty=True).encode("utf-8"))
