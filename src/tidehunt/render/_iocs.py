"""Observables of the findings for the intel exports: public addresses, domains, e-mail
addresses, SHA-256 hashes and URI paths, each with the findings and rules behind it."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from tidehunt.correlate import entities
from tidehunt.detect.analytics.base import CLOUD_STORAGE_RX

_SERVICE = re.compile(CLOUD_STORAGE_RX.replace("dropbox\\.com|", "dropbox\\.com|"
                                               "dropboxapi\\.com|"))

KINDS = ("ip", "domain", "email", "hash", "uri")


#: The victim's own address space (documentation ranges stand in for public addresses
#: in examples, so they are kept).
_INTERNAL = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "0.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32", "fc00::/7",
    "fe80::/10", "::1/128", "ff00::/8"))


def _internal(value: str) -> bool:
    ip = ipaddress.ip_address(value)
    return any(ip.version == n.version and ip in n for n in _INTERNAL)


@dataclass
class Observable:
    """One value seen in findings."""

    kind: str
    value: str
    first: datetime | None = None
    last: datetime | None = None
    findings: list[str] = field(default_factory=list)
    rules: set[str] = field(default_factory=set)
    techniques: set[str] = field(default_factory=set)
    as_source: bool = False


def observables(findings: pa.Table, domains_of_case: set[str] | None = None
                ) -> list[Observable]:
    """Every observable of the findings, in a fixed order (kind, value). Private and
    reserved addresses and the case's own domains are left out (they are the victim's),
    and so are the cloud and file-sharing services an actor abuses (evidence, but not an
    indicator to share: blocking Dropbox is a policy decision, not a match)."""
    domains_of_case = domains_of_case or set()
    cols = ["finding_id", "ts", "ts_last", "rule_title", "techniques", "host", "user", "src",
            "dst", "evidence", "fields"]
    out: dict[tuple[str, str], Observable] = {}
    for r in findings.select([c for c in cols if c in findings.column_names]).to_pylist():
        for ent in entities(r):
            kind, _, value = ent.partition(":")
            if kind not in KINDS or not value:
                continue
            if kind == "ip" and _internal(value):
                continue
            if kind == "domain" and (
                    value in domains_of_case or any(value.endswith("." + d)
                                                    for d in domains_of_case)
                    or _SERVICE.match("https://" + value)):
                continue
            o = out.setdefault((kind, value), Observable(kind, value))
            o.findings.append(r["finding_id"])
            o.rules.add(r["rule_title"])
            o.techniques |= set(r["techniques"] or [])
            o.as_source = o.as_source or value == (r["src"] or "").strip()
            ts, te = r["ts"], r["ts_last"] or r["ts"]
            if ts and (o.first is None or ts < o.first):
                o.first = ts
            if te and (o.last is None or te > o.last):
                o.last = te
    return [out[k] for k in sorted(out)]


def case_domains(findings: pa.Table) -> set[str]:
    """Domains of the case's own hosts (``ws01.corp.example`` -> ``corp.example``)."""
    out: set[str] = set()
    for h in findings.column("host").to_pylist() if "host" in findings.column_names else []:
        if h and "." in h and not h.startswith("logs in "):
            out.add(h.lower().split(".", 1)[1])
    return out


def meta_time(report: Any) -> str:
    """The run's finish time, ISO-8601 UTC with Z (the exports' created/modified stamp,
    so the same report gives the same files)."""
    from datetime import UTC

    raw = str(report.meta.finished or "1970-01-01T00:00:00+00:00").replace("Z", "+00:00")
    t = datetime.fromisoformat(raw)
    t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
