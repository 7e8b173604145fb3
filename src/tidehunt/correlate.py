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
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tidehunt.model.finding import codes

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
    #: Evidence of the mail among the step's (the correlator keeps only the first of it).
    in_mail: bool = False

    def narrative(self) -> str:
        """What, where, when and from which evidence, in one sentence."""
        when = f"{self.ts:%Y-%m-%d %H:%M:%S} UTC" if self.ts else "at an unknown time"
        where = f"on {self.host}" if self.host else "in the mail" if self.in_mail or any(
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
    return out | _evidence_entities(row.get("evidence"))


def _evidence_entities(evidence: list[dict[str, Any]] | None) -> set[str]:
    """The entities of a finding's evidence: the site of a script, the mail message."""
    out: set[str] = set()
    for ev in evidence or []:
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
    values, idx = codes(col)
    per = [frozenset(_fields_entities(v)) for v in values.to_pylist()]
    return _objects(per, idx, frozenset())


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


def _links(ents: list[frozenset[str]], ts: np.ndarray, ts_last: np.ndarray,
           gap: timedelta) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of rows (places in time order) that link: consecutive rows among those
    naming one entity, the second within ``gap`` of the first's last time (or either
    without a time). ``ts``/``ts_last``: microseconds, ``_NO_TIME`` where there is none.

    Rows sharing one set of entities (the correlator's sets are shared objects) have it
    expanded once: the pairs come from one sort of (entity, row), not a Python list of
    rows per entity.
    """
    n = len(ents)
    codes = np.empty(n, dtype=np.int64)
    sets: dict[int, int] = {}  # id of a row's set (alive in ``ents``) -> its code
    distinct_sets: list[frozenset[str]] = []
    for k, es in enumerate(ents):
        c = sets.get(id(es))
        if c is None:
            c = sets[id(es)] = len(distinct_sets)
            distinct_sets.append(es)
        codes[k] = c
    names: dict[str, int] = {}
    flat = [names.setdefault(e, len(names)) for es in distinct_sets for e in es]
    sizes = np.fromiter((len(es) for es in distinct_sets), dtype=np.int64,
                        count=len(distinct_sets))
    starts = np.zeros(len(distinct_sets), dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    per_row = sizes[codes]
    rows = np.repeat(np.arange(n, dtype=np.int64), per_row)
    first = np.zeros(n, dtype=np.int64)
    np.cumsum(per_row[:-1], out=first[1:])
    pos = np.arange(len(rows), dtype=np.int64) - np.repeat(first - starts[codes], per_row)
    entity = np.asarray(flat, dtype=np.int64)[pos] if flat else np.zeros(0, np.int64)
    o = np.lexsort((rows, entity))
    entity, rows = entity[o], rows[o]
    same = entity[1:] == entity[:-1]
    a, b = rows[:-1][same], rows[1:][same]
    ta, tb = ts[a], ts[b]
    ref = np.where(ts_last[a] == _NO_TIME, ta, ts_last[a])
    near = (ta == _NO_TIME) | (tb == _NO_TIME) | (tb - ref <= gap // timedelta(microseconds=1))
    return a[near], b[near]


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each row's component over the links (a, b), named by its smallest row."""
    label = np.arange(n, dtype=np.int64)
    if not len(a):
        return label
    while True:
        m = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, m)
        np.minimum.at(new, b, m)
        while True:  # each label to its label's label, until none moves
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, label):
            return label
        label = new


def _phase(tactics: Iterable[str]) -> str:
    known = [t for t in tactics if t in TACTIC_ORDER]
    return min(known, key=TACTIC_ORDER.index) if known else "other"


def correlate(findings: pa.Table, gap: timedelta = DEFAULT_GAP) -> list[Incident]:
    """Incidents of a findings table (FINDINGS_SCHEMA), ordered by their first step."""
    n = findings.num_rows
    # by time (none last: Arrow's default), then finding ID: Arrow's sort is stable, so
    # this is the order Python's sort of the rows gave
    order = pc.sort_indices(findings, [("ts", "ascending"), ("finding_id", "ascending")])
    cols = _Columns(findings, order)
    # the fields (the matched event's JSON) are read only for their entities, per distinct
    # text; the evidence only where it names an entity (sites, mail) and for the steps
    docs = (_fields_entities_column(findings.column("fields"))
            if "fields" in findings.column_names else [frozenset()] * n)
    ents = cols.entities([docs[i] for i in cols.order])
    del docs
    a, b = _links(ents, cols.ts_us, cols.ts_last_us, gap)
    label = _components(n, a, b)
    # the groups in the order of their first row, each row's place ascending in its group
    by = np.argsort(label, kind="stable")
    cuts = np.flatnonzero(np.diff(label[by])) + 1
    groups = [g.tolist() for g in np.split(by, cuts)] if n else []
    incidents = []
    steps: list[tuple[Step, list[int]]] = []
    for members in groups:
        inc = _incident(cols, members, ents, steps)
        if inc is not None:
            incidents.append(inc)
    cols.fill_evidence(steps)
    incidents.sort(key=lambda x: (x.steps[0].ts is None, x.steps[0].ts or _MIN, x.id))
    return incidents


#: Findings about the state of an asset, not about activity: they join the incident of
#: their host (the door it came in by) but never make one on their own.
STATE_RULES = frozenset({"th-analytic-0035"})


#: Evidence entries a step keeps: ``Step.to_dict`` gives 10, each finding adds its first 3.
_STEP_EVIDENCE = 10
_FINDING_EVIDENCE = 3
_LIST_SLICE = 8192


class _Columns:
    """The columns the correlator reads, as Python lists in time order.

    Repeated values (rules, levels, hosts, times, tactic lists) are one Python object
    each, shared by the rows that hold them, and the evidence stays in Arrow but for the
    rows that name an entity by it (sites, mail) and those a step shows: the correlator
    holds a few pointers per finding, not a dict of new objects (110,600 findings took
    ~280 MiB of Python objects as dicts, and the freed arenas stayed resident).
    """

    def __init__(self, findings: pa.Table, order: pa.Array) -> None:
        self.order: list[int] = order.to_pylist()
        names = ("ts", "ts_last", "rule_id", "rule_title", "engine", "level", "host", "user",
                 "src", "dst", "summary")
        # taken in time order once, in Arrow: no Python list of each column to reorder
        timed = findings.select(["finding_id", *names, "techniques", "tactics"]).take(order)
        self.finding_id = timed.column("finding_id").to_pylist()
        for name in names:
            setattr(self, name, _shared(timed.column(name)))
        self.ts_us = _micros(timed.column("ts"))
        self.ts_last_us = _micros(timed.column("ts_last"))
        for name in ("techniques", "tactics"):
            setattr(self, name, _shared_lists(timed.column(name)))
        self._evidence = findings.column("evidence")
        self.ev_len: list[int] = pc.list_value_length(self._evidence).fill_null(0) \
            .take(order).to_pylist()
        # rows whose evidence names a site or a mail message, by their place in time order
        named = _evidence_rows(self._evidence)
        place = np.empty(len(self.order), dtype=np.int64)
        place[np.asarray(self.order, dtype=np.int64)] = np.arange(len(self.order))
        got = self._evidence.take(pa.array(named, pa.int64())).to_pylist()
        self.named: dict[int, list[dict[str, Any]]] = dict(zip(
            place[np.asarray(named, dtype=np.int64)].tolist(), got, strict=True))
        self.in_mail = {k for k, ev in self.named.items()
                        if any((e.get("table") or "").startswith("mail")
                               for e in ev[:_FINDING_EVIDENCE])}

    ts: list[datetime | None]
    ts_last: list[datetime | None]
    rule_id: list[str]
    rule_title: list[str]
    engine: list[str]
    level: list[str]
    host: list[str | None]
    user: list[str | None]
    src: list[str | None]
    dst: list[str | None]
    summary: list[str | None]
    techniques: list[list[str] | None]
    tactics: list[list[str] | None]

    def entities(self, docs: list[frozenset[str]]) -> list[frozenset[str]]:
        """Each row's entities (``entities`` of its row), one set per distinct combination."""
        memo: dict[tuple[frozenset[str], frozenset[str]], frozenset[str]] = {}
        out = []
        for k, doc in enumerate(docs):
            who = _who_entities(self.host[k], self.user[k], self.src[k], self.dst[k])
            ev = self.named.get(k)
            if ev is not None:
                out.append(who | doc | _evidence_entities(ev))
                continue
            es = memo.get((who, doc))
            if es is None:
                es = memo[(who, doc)] = who | doc
            out.append(es)
        return out

    def fill_evidence(self, steps: list[tuple[Step, list[int]]]) -> None:
        """Each step's evidence: the first few entries of the rows it lists, in order."""
        rows = sorted({k for _, ks in steps for k in ks})
        if not rows:
            return
        take = pa.array([self.order[k] for k in rows], pa.int64())
        got = dict(zip(rows, self._evidence.take(take).to_pylist(), strict=True))
        for st, ks in steps:
            st.evidence = [{f: (v.isoformat() if isinstance(v, datetime) else v)
                            for f, v in e.items() if v is not None}
                           for k in ks for e in (got[k] or [])[:_FINDING_EVIDENCE]]


def _objects(values: list[Any], idx: np.ndarray, missing: Any = None) -> list[Any]:
    """Each row's value (``missing`` for a null) as a Python object, equal values being
    one object."""
    table = np.empty(len(values) + 1, dtype=object)
    for k, v in enumerate(values):  # one by one: a value that is a sequence stays whole
        table[k] = v
    table[-1] = missing
    out: list[Any] = table[idx].tolist()
    return out


def _shared(col: pa.ChunkedArray) -> list[Any]:
    """A column as Python objects, equal values being one object: its few hundred
    distinct values are converted, not one object per row."""
    values, idx = codes(col)
    return _objects(values.to_pylist(), idx)


#: ``_micros`` of a missing time.
_NO_TIME = np.iinfo(np.int64).min


def _micros(col: pa.ChunkedArray) -> np.ndarray:
    """A timestamp column as microseconds since the epoch (``_NO_TIME`` where null)."""
    us = col.cast(pa.timestamp("us", col.type.tz), safe=False).cast(pa.int64())
    out: np.ndarray = us.fill_null(_NO_TIME).to_numpy()
    return out


def _shared_lists(col: pa.ChunkedArray) -> list[list[str] | None]:
    """A list column as Python lists, equal lists being one object (read, never changed).

    Keyed in Arrow by length and joined text, each distinct list converted once; where an
    element is null or holds the separator (the key could then mistake two lists for one),
    each list is converted and compared in Python.
    """
    flat = pc.list_flatten(col)
    if flat.null_count or (len(flat) and pc.any(pc.match_substring(flat, _SEP)).as_py()):
        seen: dict[tuple[str, ...], list[str]] = {}
        out: list[list[str] | None] = []
        for start in range(0, len(col), _LIST_SLICE):
            for v in col.slice(start, _LIST_SLICE).to_pylist():
                out.append(None if v is None else seen.setdefault(tuple(v), v))
        return out
    key = pc.binary_join_element_wise(pc.list_value_length(col).cast(pa.string()),
                                      pc.binary_join(col, _SEP), "\x1e")
    values, idx = codes(key)
    present, first = np.unique(idx, return_index=True)
    lists: list[Any] = [None] * len(values)
    for c, v in zip(present.tolist(), col.take(pa.array(first)).to_pylist(), strict=True):
        if c < len(values):
            lists[c] = v
    return _objects(lists, idx)


#: What ``_shared_lists`` joins a list's elements with for its key.
_SEP = "\x1f"


def _evidence_rows(evidence: pa.ChunkedArray) -> list[int]:
    """Rows (ascending) with evidence of a site's script or of mail: they name entities."""
    rows: list[int] = []
    base = 0
    for ch in evidence.chunks:
        if len(ch):
            flat = pc.list_flatten(ch)
            parents = pc.list_parent_indices(ch)
            if len(flat) != len(parents):  # values under null lists: read the rows
                rows += [base + i for i, ev in enumerate(ch.to_pylist())
                         if _evidence_entities(ev)]
            else:
                table = pc.struct_field(flat, "table")
                hit = pc.or_kleene(pc.equal(table, "site_script"),
                                   pc.starts_with(table, "mail"))
                rows += sorted({base + i for i in pc.filter(parents, hit).to_pylist()})
        base += len(ch)
    return rows


def _incident(c: _Columns, members: list[int], ents: list[frozenset[str]],
              pending: list[tuple[Step, list[int]]]) -> Incident | None:
    """The incident of a group of rows (places in time order), if it is one.

    Its steps' evidence is filled in later (``_Columns.fill_evidence``): each step's
    rows that give it are added to ``pending``.
    """
    act = [i for i in members if c.rule_id[i] not in STATE_RULES]
    tactics = {t for i in act for t in (c.tactics[i] or [])}
    if not (any(c.level[i] in ("high", "critical") for i in act) or len(tactics) >= 2):
        return None
    steps: dict[tuple[str, str | None], tuple[Step, set[str], list[int], list[int]]] = {}
    for i in members:
        rule_id, host, ts, level = c.rule_id[i], c.host[i], c.ts[i], c.level[i]
        key = (rule_id, _host(host))
        entry = steps.get(key)
        if entry is None:
            entry = steps[key] = (Step(_phase(c.tactics[i] or []), ts, c.ts_last[i] or ts,
                                       host, rule_id, c.rule_title[i], level, c.engine[i],
                                       summary=c.summary[i] or ""), set(), [], [0])
        st, techniques, ev_rows, ev_count = entry
        st.findings.append(c.finding_id[i])
        techniques.update(c.techniques[i] or [])
        ts_last = c.ts_last[i]
        if ts_last and (st.ts_last is None or ts_last > st.ts_last):
            st.ts_last = ts_last
        if LEVEL_WEIGHT.get(level, 0) > LEVEL_WEIGHT.get(st.level, 0):
            st.level = level
        if ev_count[0] < _STEP_EVIDENCE and c.ev_len[i]:
            ev_rows.append(i)
            ev_count[0] += min(_FINDING_EVIDENCE, c.ev_len[i])
        if i in c.in_mail:
            st.in_mail = True
    for st, techniques, ev_rows, _ in steps.values():
        st.techniques = sorted(techniques)
        pending.append((st, ev_rows))
    ordered = sorted((e[0] for e in steps.values()), key=lambda s: (
        s.ts is None, s.ts or _MIN, TACTIC_ORDER.index(s.phase)
        if s.phase in TACTIC_ORDER else 99, s.rule_id, s.host or ""))
    hosts = sorted({h for i in members for h in [_host(c.host[i])] if h and
                    not h.startswith("logs in ")})
    phases = sorted({s.phase for s in ordered if s.phase in TACTIC_ORDER},
                    key=TACTIC_ORDER.index)
    counts: dict[str, int] = defaultdict(int)
    for i in members:
        for e in ents[i]:
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
    ids = sorted(c.finding_id[i] for i in members)
    iid = "INC-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:10]
    return Incident(iid, ordered, score, reasons, hosts,
                    [{"entity": e, "findings": n} for e, n in shared[:50]], phases, ids)
