"""Correlator: findings from every engine grouped into incidents by the entities they share.

Two findings are linked when they name the same entity (host, user, IP address, domain,
file hash, file path, mail message or URI) and, among the findings naming that entity,
follow each other within ``gap`` (default 72 hours): consecutive findings of an entity are
chained, so an intrusion that goes quiet for a day still holds together while two that
share nothing stay apart. A group is an incident when it holds a high or critical finding,
or findings of two or more tactics.

Inside an incident, findings of the same rule on the same host make one step; steps are
ordered by time and each is placed on the chain APT40 follows (initial access, execution,
persistence, credential access, lateral movement, collection, exfiltration...). The score
is the sum of the steps' level weights, raised for each further tactic and host, and comes
with the reasons behind it. Everything is a function of the findings table: the same case
always gives the same incident IDs, order and text.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tidehunt.model.finding import distinct, table_rows

#: ATT&CK enterprise tactics in kill-chain order (the order of the steps' phases).
TACTIC_ORDER = ("reconnaissance", "resource-development", "initial-access", "execution",
                "persistence", "privilege-escalation", "defense-evasion", "credential-access",
                "discovery", "lateral-movement", "collection", "command-and-control",
                "exfiltration", "impact")
LEVEL_WEIGHT = {"critical": 10, "high": 5, "medium": 2, "low": 1, "informational": 0}
DEFAULT_GAP = timedelta(hours=72)
_MIN = datetime.min.replace(tzinfo=UTC)
#: Accounts and addresses every host has: they link nothing.
_GENERIC_USERS = {"", "-", "system", "nt authority\\system", "localsystem", "local service",
                  "network service", "nt authority\\local service", "anonymous logon",
                  "nt authority\\network service", "nt authority\\anonymous logon", "n/a"}
_IP = re.compile(r"^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]*:[0-9a-f:]+)$", re.I)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.I)
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9-]+\.)+[a-z]{2,}$", re.I)
#: Extensions that make a dotted value a file name, not a domain ("chrome.exe").
_FILE_EXT = {"exe", "dll", "sys", "ps1", "bat", "cmd", "vbs", "js", "hta", "lnk", "aspx",
             "asp", "ashx", "php", "jsp", "docx", "doc", "xlsx", "rtf", "pdf", "zip", "rar",
             "7z", "iso", "msi", "scr", "tmp", "log", "txt", "dat", "bin", "jar", "war"}
_FIELD_KINDS = {
    "IpAddress": "ip", "SourceIp": "ip", "DestinationIp": "ip", "ClientIP": "ip",
    "c-ip": "ip", "client": "ip", "WorkstationName": "host", "Workstation": "host",
    "DestinationHostname": "domain", "QueryName": "domain", "User": "user",
    "TargetUserName": "user", "SubjectUserName": "user", "AccountName": "user",
    "TargetFilename": "file", "ImageLoaded": "file",
}


#: What to do next, per phase the incident reached (the defender's first moves).
NEXT_STEPS = {
    "reconnaissance": "tell the owner of the compromised site; block the injected script's "
                      "host at the proxy",
    "initial-access": "pull the lure from every mailbox and block its sender domain; patch or "
                      "take offline the exploited web application; remove the web shell",
    "execution": "collect memory and triage from the hosts before rebooting them",
    "persistence": "remove the scheduled tasks, services and run keys the steps name",
    "privilege-escalation": "review local administrators and recent group changes",
    "credential-access": "reset the passwords of every account used on the hosts, the "
                         "service accounts and krbtgt (twice); revoke sessions and tokens",
    "lateral-movement": "isolate the hosts the incident reached; block SMB/RDP between "
                        "workstations and servers",
    "collection": "find out what the staged archives held (the paths are in the steps)",
    "command-and-control": "block the contacted hosts and addresses at the edge and hunt for "
                           "them across the estate",
    "exfiltration": "ask the cloud provider about the account used, revoke its tokens, and "
                    "assess the data that left",
    "defense-evasion": "take the hosts' remaining logs (and the forwarded copies) before they "
                       "are cleared too",
}


@dataclass
class Step:
    """Findings of one rule on one host, in an incident."""

    phase: str
    ts: datetime | None
    ts_last: datetime | None
    host: str | None
    rule_id: str
    title: str
    level: str
    engine: str
    findings: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    summary: str = ""
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def narrative(self) -> str:
        """What, where, when and from which evidence, in one sentence."""
        when = f"{self.ts:%Y-%m-%d %H:%M:%S} UTC" if self.ts else "at an unknown time"
        where = f"on {self.host}" if self.host else "in the mail" if any(
            e.get("table", "").startswith("mail") for e in self.evidence) else ""
        ev = self.evidence[0] if self.evidence else {}
        src = ev.get("source_file") or ""
        rec = ev.get("record_id") or ev.get("line") or ev.get("locator")
        cite = f" (evidence: {src}" + (f", {rec}" if rec is not None else "") + ")" if src \
            else ""
        more = f" (+{len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
        return (f"{when} {where}: {self.phase.replace('-', ' ')}: {self.title}{more}. "
                f"{self.summary}{cite}").replace("  ", " ")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (report.json)."""
        return {"phase": self.phase, "ts": _iso(self.ts), "ts_last": _iso(self.ts_last),
                "host": self.host, "rule_id": self.rule_id, "title": self.title,
                "level": self.level, "engine": self.engine, "findings": self.findings,
                "techniques": self.techniques, "summary": self.summary,
                "evidence": self.evidence[:10], "narrative": self.narrative()}


@dataclass
class Incident:
    """A group of linked findings, told as steps."""

    id: str
    steps: list[Step]
    score: int
    reasons: list[str]
    hosts: list[str]
    links: list[dict[str, Any]]
    tactics: list[str]
    findings: list[str]

    @property
    def level(self) -> str:
        """The worst level among the steps."""
        return max((s.level for s in self.steps), key=lambda lv: LEVEL_WEIGHT.get(lv, 0))

    def span(self) -> tuple[datetime | None, datetime | None]:
        """First and last time of its steps (steps without a time left out)."""
        starts = [s.ts for s in self.steps if s.ts]
        ends = [t for s in self.steps for t in [s.ts_last or s.ts] if t is not None]
        return (min(starts) if starts else None, max(ends) if ends else None)

    def title(self) -> str:
        """One line: first and last phase, hosts, time span."""
        first, last = self.span()
        span = f", {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC" if first and last \
            else ""
        a, b = self.tactics[0] if self.tactics else "other", self.tactics[-1] if \
            self.tactics else "other"
        what = a.replace("-", " ") + (f" to {b.replace('-', ' ')}" if b != a else "")
        where = ", ".join(self.hosts) if self.hosts else "no host of the case"
        return f"{what} on {where}{span}"

    def next_steps(self) -> list[str]:
        """What to do next, in the order of the tactic chain."""
        return [f"{t.replace('-', ' ')}: {NEXT_STEPS[t]}" for t in self.tactics
                if t in NEXT_STEPS]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (report.json)."""
        return {"id": self.id, "title": self.title(), "level": self.level,
                "score": self.score, "reasons": self.reasons, "hosts": self.hosts,
                "next_steps": self.next_steps(),
                "tactics": self.tactics, "links": self.links,
                "first": _iso(self.span()[0]), "last": _iso(self.span()[1]),
                "findings": self.findings, "steps": [s.to_dict() for s in self.steps]}


def _iso(t: datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t else None


@functools.lru_cache(maxsize=65536)
def _host(name: str | None) -> str | None:
    if not name:
        return None
    h = name.strip().lower()
    if h.startswith("logs in ") or h in ("-", "localhost", ""):
        return h or None
    if _IP.match(h):
        return None
    return h.split(".", 1)[0].rstrip("$") or None


def _ip_entity(v: str) -> str | None:
    try:
        ip = ipaddress.ip_address(v.strip().strip("[]"))
    except ValueError:
        return None
    if ip.is_loopback or ip.is_unspecified or ip.is_link_local:
        return None
    return f"ip:{ip}"


def entities(row: dict[str, Any]) -> set[str]:
    """The entities one finding names, as ``kind:value`` keys."""
    return _row_entities(row) | _fields_entities(row.get("fields"))


def _row_entities(row: dict[str, Any]) -> set[str]:
    """The entities of a finding's host, user, src, dst and evidence (not its fields)."""
    out = set(_who_entities(row.get("host"), row.get("user"), row.get("src"), row.get("dst")))
    for ev in row.get("evidence") or []:
        if ev.get("table") == "site_script":
            out.add(f"site:{ev.get('artefact')}")
        if str(ev.get("table", "")).startswith("mail"):
            loc = str(ev.get("locator") or "").split("/attachment", 1)[0]
            out.add(f"mail:{ev.get('artefact')}/{loc}")
    return out


@functools.lru_cache(maxsize=65536)
def _who_entities(host: Any, user: Any, src: Any, dst: Any) -> frozenset[str]:
    """The entities of a host, user, source and destination (many findings share them)."""
    out: set[str] = set()
    h = _host(host)
    if h:
        out.add(f"host:{h}")
    u = (user or "").strip().lower()
    if u not in _GENERIC_USERS and not u.endswith("$"):
        out.add(f"user:{u.rsplit(chr(92), 1)[-1]}")
    elif u.endswith("$"):
        out.add(f"host:{u[:-1].rsplit(chr(92), 1)[-1]}")
    for v in (src, dst):
        out |= _value_entities(v)
    return frozenset(out)


def _fields_entities(fields: Any) -> set[str]:
    """The entities among a finding's fields (JSON text, or already a dict)."""
    out: set[str] = set()
    if fields:
        try:
            doc = orjson.loads(fields) if isinstance(fields, str | bytes) else fields
        except orjson.JSONDecodeError:
            doc = {}
        if isinstance(doc, dict):
            for k, kind in _FIELD_KINDS.items():  # the few names that are entities
                v = doc.get(k)
                if not isinstance(v, str) or not v or v == "-":
                    continue
                if kind == "ip":
                    e = _ip_entity(v)
                    if e:
                        out.add(e)
                elif kind == "host":
                    hh = _host(v)
                    if hh:
                        out.add(f"host:{hh}")
                elif kind == "domain":
                    out.add(f"domain:{v.lower().rstrip('.')}")
                elif kind == "user":
                    lu = v.lower()
                    if lu not in _GENERIC_USERS and not lu.endswith("$"):
                        out.add(f"user:{lu.rsplit(chr(92), 1)[-1]}")
                elif kind == "file":
                    out.add(f"file:{v.lower().replace(chr(92), '/')}")
            # Sysmon's Hashes are the process image's: cmd.exe on every host links nothing,
            # so only the hash of a file a finding is about (attachment, web-root file) counts
            for k in ("sha256", "SHA256"):
                if isinstance(doc.get(k), str) and len(doc[k]) == 64:
                    out.add(f"hash:{doc[k].lower()}")
    return out


def _fields_entities_column(col: pa.ChunkedArray | pa.Array) -> list[frozenset[str]]:
    """``_fields_entities`` of every row of a fields column, each distinct text parsed once.

    Several rules hitting one event share its fields, and so do copies of one log.
    """
    values, idx = distinct(col)
    per = [frozenset(_fields_entities(v)) for v in values]
    none: frozenset[str] = frozenset()
    return [none if i is None else per[i] for i in idx]


def _value_entities(v: Any) -> set[str]:
    if not isinstance(v, str) or not v.strip():
        return set()
    v = v.strip()
    ip = _ip_entity(v)
    if ip:
        return {ip}
    if _EMAIL.match(v):
        return {f"email:{v.lower()}", f"domain:{v.rsplit('@', 1)[1].lower()}"}
    if _DOMAIN.match(v) and v.rsplit(".", 1)[-1].lower() not in _FILE_EXT:
        return {f"domain:{v.lower()}"}
    if v.startswith("/") and " " not in v:
        return {f"uri:{v.lower()}"}
    return set()


class _Union:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _phase(tactics: Iterable[str]) -> str:
    known = [t for t in tactics if t in TACTIC_ORDER]
    return min(known, key=TACTIC_ORDER.index) if known else "other"


def correlate(findings: pa.Table, gap: timedelta = DEFAULT_GAP) -> list[Incident]:
    """Incidents of a findings table (FINDINGS_SCHEMA), ordered by their first step."""
    cols = ["finding_id", "ts", "ts_last", "rule_id", "rule_title", "engine", "level",
            "techniques", "tactics", "host", "user", "src", "dst", "summary", "evidence",
            "fields"]
    # the fields (the matched event's JSON) are read only for their entities, per distinct
    # text, and never become part of the rows
    rows = table_rows(findings.select([c for c in cols
                                       if c in findings.column_names and c != "fields"]))
    docs = (_fields_entities_column(findings.column("fields"))
            if "fields" in findings.column_names else [frozenset()] * len(rows))
    # by time (none last: Arrow's default), then finding ID: Arrow's sort is stable, so
    # this is the order Python's sort of the rows gave
    order = pc.sort_indices(findings, [("ts", "ascending"), ("finding_id", "ascending")]
                            ).to_pylist()
    ents = [_row_entities(rows[i]) | docs[i] for i in order]
    rows = [rows[i] for i in order]
    uf = _Union(len(rows))
    by_entity: dict[str, list[int]] = defaultdict(list)
    for i, es in enumerate(ents):
        for e in es:
            by_entity[e].append(i)
    for idx in by_entity.values():
        for a, b in pairwise(idx):
            ta, tb = rows[a]["ts"], rows[b]["ts"]
            if ta is None or tb is None or tb - (rows[a]["ts_last"] or ta) <= gap:
                uf.union(a, b)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(rows)):
        groups[uf.find(i)].append(i)
    incidents = []
    for members in groups.values():
        inc = _incident([rows[i] for i in members], [ents[i] for i in members])
        if inc is not None:
            incidents.append(inc)
    incidents.sort(key=lambda x: (x.steps[0].ts is None, x.steps[0].ts or _MIN, x.id))
    return incidents


#: Findings about the state of an asset, not about activity: they join the incident of
#: their host (the door it came in by) but never make one on their own.
STATE_RULES = frozenset({"th-analytic-0035"})


def _incident(rows: list[dict[str, Any]], ents: list[set[str]]) -> Incident | None:
    act = [r for r in rows if r["rule_id"] not in STATE_RULES]
    tactics = {t for r in act for t in (r["tactics"] or [])}
    if not (any(r["level"] in ("high", "critical") for r in act) or len(tactics) >= 2):
        return None
    steps: dict[tuple[str, str | None], Step] = {}
    for r in rows:
        key = (r["rule_id"], _host(r["host"]))
        st = steps.get(key)
        if st is None:
            st = steps[key] = Step(_phase(r["tactics"] or []), r["ts"], r["ts_last"] or r["ts"],
                                   r["host"], r["rule_id"], r["rule_title"], r["level"],
                                   r["engine"], summary=r["summary"] or "")
        st.findings.append(r["finding_id"])
        st.techniques = sorted(set(st.techniques) | set(r["techniques"] or []))
        if r["ts_last"] and (st.ts_last is None or r["ts_last"] > st.ts_last):
            st.ts_last = r["ts_last"]
        if LEVEL_WEIGHT.get(r["level"], 0) > LEVEL_WEIGHT.get(st.level, 0):
            st.level = r["level"]
        st.evidence += [{k: (v.isoformat() if isinstance(v, datetime) else v)
                         for k, v in e.items() if v is not None}
                        for e in (r["evidence"] or [])[:3]]
    ordered = sorted(steps.values(), key=lambda s: (
        s.ts is None, s.ts or _MIN, TACTIC_ORDER.index(s.phase)
        if s.phase in TACTIC_ORDER else 99, s.rule_id, s.host or ""))
    hosts = sorted({h for r in rows for h in [_host(r["host"])] if h and
                    not h.startswith("logs in ")})
    phases = sorted({s.phase for s in ordered if s.phase in TACTIC_ORDER},
                    key=TACTIC_ORDER.index)
    counts: dict[str, int] = defaultdict(int)
    for es in ents:
        for e in es:
            counts[e] += 1
    shared = sorted(((e, n) for e, n in counts.items() if n > 1), key=lambda x: (-x[1], x[0]))
    base = sum(LEVEL_WEIGHT.get(s.level, 0) for s in ordered)
    score = round(base * (1 + 0.25 * max(0, len(phases) - 1)) + 5 * max(0, len(hosts) - 1))
    by_level: dict[str, int] = defaultdict(int)
    for s in ordered:
        by_level[s.level] += 1
    reasons = [
        "steps: " + ", ".join(f"{n} {lv}" for lv, n in sorted(
            by_level.items(), key=lambda x: -LEVEL_WEIGHT.get(x[0], 0))) + f" (weight {base})",
        f"{len(phases)} tactic(s) along the chain: " + " > ".join(phases),
    ]
    if len(hosts) > 1:
        reasons.append(f"{len(hosts)} hosts: {', '.join(hosts)}")
    if shared:
        reasons.append("linked by " + ", ".join(f"{e} ({n} findings)" for e, n in shared[:6]))
    ids = sorted(r["finding_id"] for r in rows)
    iid = "INC-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:10]
    return Incident(iid, ordered, score, reasons, hosts,
                    [{"entity": e, "findings": n} for e, n in shared[:50]], phases, ids)
