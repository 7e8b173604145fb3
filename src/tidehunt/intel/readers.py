"""Intel files into indicators: STIX 2.1 bundles (stix2 and its pattern parser), MISP event
JSON, CSV (typed columns or type/value rows) and plain lists (one value a line, the
signature-base ``value;comment`` format and maltrail trails). Type from content; an
address with a prefix length (``203.0.113.0/24``, in any format) is a ``cidr``."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tidehunt.intel.model import Indicator, guess_type, normalise, refang
from tidehunt.model.times import parse_time

MAX_BYTES = 256 << 20


@dataclass
class ReadResult:
    """What one file gave."""

    path: str
    format: str
    indicators: list[Indicator] = field(default_factory=list)
    skipped: int = 0  # entries that are not indicators tidehunt can match
    patterns: int = 0  # of those, regular expressions (not matched as values)
    errors: list[str] = field(default_factory=list)


def sniff(head: bytes) -> str:
    """``stix``, ``misp``, ``csv`` or ``list``."""
    h = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if h.startswith((b"{", b"[")):
        if re.search(rb'"type"\s*:\s*"bundle"|"id"\s*:\s*"bundle--', head) or (
                b'"spec_version"' in head and re.search(rb'"id"\s*:\s*"[a-z-]+--', head)):
            return "stix"
        if b'"Event"' in head[:4096] or b'"Attribute"' in head or b'"info"' in head[:4096]:
            return "misp"
        return "json"
    first = h.split(b"\n", 1)[0]
    if b"," in first and not first.startswith(b"#"):
        return "csv"
    return "list"


def read(path: str | Path, source: str | None = None) -> ReadResult:
    """One intel file; problems are errors in the result, never exceptions."""
    p = Path(path)
    res = ReadResult(str(p), "")
    try:
        with open(p, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        res.errors.append(f"not readable: {exc.strerror or exc}")
        return res
    if len(data) > MAX_BYTES:
        res.errors.append(f"larger than {MAX_BYTES >> 20} MiB; not read")
        return res
    res.format = sniff(data[:65536])
    src = source or p.stem
    try:
        if res.format == "stix":
            _stix(data, src, res)
        elif res.format == "misp":
            _misp(data, src, res)
        elif res.format == "csv" and data[:200].lower().startswith(b"cveid,"):
            res.errors.append("a CISA KEV catalogue (vulnerabilities), not indicators")
        elif res.format == "csv":
            _csv(data.decode("utf-8-sig", "replace"), src, res)
        elif res.format == "list":
            _list(data.decode("utf-8", "replace"), src, res)
        else:
            res.errors.append(_what_json(data))
    except Exception as exc:  # noqa: BLE001 - a hostile feed ends no run
        res.errors.append(f"{res.format} not readable: {type(exc).__name__}: "
                          f"{str(exc)[:300]}")
    for i in res.indicators:
        i.source_file = str(p)
    return res


def _what_json(data: bytes) -> str:
    head = data[:65536]
    if b'"$schema"' in head[:2000]:
        return "a JSON schema, not indicators"
    if b'"namespace"' in head and b'"icon"' in head:
        return "a MISP galaxy definition, not indicators"
    if b'"vulnerabilities"' in head and b'"catalogVersion"' in head:
        return "a CISA KEV catalogue (vulnerabilities), not indicators"
    if b'"values"' in head and (b'"synonyms"' in head or b'"category"' in head):
        return "a MISP galaxy cluster (names of actors and tools), not indicators"
    return "JSON that is neither a STIX bundle nor a MISP event"


_STIX_TYPES = {("ipv4-addr", "value"): "ip", ("ipv6-addr", "value"): "ip",
               ("domain-name", "value"): "domain", ("url", "value"): "url",
               ("email-addr", "value"): "email", ("file", "name"): "filename",
               ("email-message", "from_ref.value"): "email",
               ("email-message", "sender_ref.value"): "email"}


def _stix(data: bytes, src: str, res: ReadResult) -> None:
    import stix2
    from stix2patterns.pattern import Pattern

    bundle = stix2.parse(data.decode("utf-8", "replace"), allow_custom=True)
    objs = getattr(bundle, "objects", None) or [bundle]
    for o in objs:
        if getattr(o, "type", "") != "indicator":
            continue
        if getattr(o, "pattern_type", "stix") != "stix":
            res.skipped += 1
            continue
        try:
            comps = Pattern(o.pattern).inspect().comparisons
        except Exception:  # noqa: BLE001 - a pattern stix2-patterns cannot parse
            res.errors.append(f"{o.id}: pattern not parsed: {o.pattern[:120]}")
            continue
        tags = [*(getattr(o, "labels", None) or []), *(getattr(o, "indicator_types", None)
                                                       or [])]
        tags += [f"{k.kill_chain_name}:{k.phase_name}" for k in
                 getattr(o, "kill_chain_phases", None) or []]
        found = False
        for obj_type, items in comps.items():
            for path, op, raw in items:
                dotted = ".".join(str(x) for x in path)
                kind = _STIX_TYPES.get((obj_type, dotted))
                # ISSUBSET: an address inside the network (STIX's CIDR comparison)
                if op not in ("=", "IN") and not (op == "ISSUBSET" and kind == "ip"):
                    continue
                if obj_type == "file" and path and path[0] == "hashes":
                    kind = {"md5": "md5", "sha-1": "sha1", "sha1": "sha1", "sha-256": "sha256",
                            "sha256": "sha256"}.get(str(path[-1]).strip("'").lower())
                if not kind:
                    continue
                values = re.findall(r"'((?:[^'\\]|\\.)*)'", str(raw)) or [str(raw)]
                for v in values:
                    norm = normalise(kind, v.replace("\\'", "'"))
                    if norm:
                        found = True
                        res.indicators.append(Indicator(
                            norm[0], norm[1], src, first_seen=parse_time(o.valid_from),
                            last_seen=None,  # modified is an edit time, not a sighting
                            valid_until=parse_time(getattr(o, "valid_until", None)),
                            confidence=getattr(o, "confidence", None), to_ids=True,
                            tags=tags, context=str(getattr(o, "name", "") or
                                                   getattr(o, "description", "") or ""),
                            ref=o.id))
        if not found:
            res.skipped += 1


def _misp(data: bytes, src: str, res: ReadResult) -> None:
    doc = orjson.loads(data)
    events = doc if isinstance(doc, list) else [doc]
    for ev in events:
        e = ev.get("Event", ev) if isinstance(ev, dict) else {}
        if not isinstance(e, dict):
            continue
        info = str(e.get("info") or "")
        etags = [t.get("name", "") for t in e.get("Tag") or [] if isinstance(t, dict)]
        edate = parse_time(e.get("date"))
        attrs = list(e.get("Attribute") or [])
        for obj in e.get("Object") or []:
            attrs += [dict(a, _object=obj.get("name")) for a in obj.get("Attribute") or []]
        for a in attrs:
            if not isinstance(a, dict) or a.get("deleted"):
                continue
            norm = normalise(str(a.get("type", "")), str(a.get("value", "")))
            if not norm:
                res.skipped += 1
                continue
            tags = etags + [t.get("name", "") for t in a.get("Tag") or []
                            if isinstance(t, dict)]
            res.indicators.append(Indicator(
                norm[0], norm[1], src, first_seen=parse_time(a.get("first_seen")) or edate,
                last_seen=parse_time(a.get("last_seen")) or parse_time(a.get("timestamp")),
                to_ids=bool(a.get("to_ids")), tags=tags,
                context=" | ".join(x for x in (info, str(a.get("comment") or "")) if x),
                ref=str(a.get("uuid") or "")))


_CONF = {"✅": 90, "high": 90, "medium": 60, "low": 30, "⚠️": 50, "⚠": 50}


def _csv(text: str, src: str, res: ReadResult) -> None:
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if r and not r[0].lstrip().startswith("#")]
    if not rows:
        return
    head = [h.strip().lower() for h in rows[0]]
    typed = [h for h in head if normalise(h, "0" * 64) or h in (
        "ip", "cidr", "domain", "url", "email", "filename")]
    if "type" in head:
        ti = head.index("type")
        vi = next(head.index(c) for c in ("value", "value_defanged", "indicator", "ioc")
                  if c in head)
        col = {c: head.index(c) for c in head}
        for r in rows[1:]:
            if len(r) <= max(ti, vi):
                res.skipped += 1
                continue
            norm = normalise(r[ti], r[vi])
            if not norm:
                res.skipped += 1
                continue

            def get(*names: str, row: list[str] = r) -> str:
                for n in names:
                    if n in col and col[n] < len(row) and row[col[n]].strip():
                        return row[col[n]].strip()
                return ""

            conf = get("confidence")
            res.indicators.append(Indicator(
                norm[0], norm[1], get("source") or src,
                first_seen=parse_time(get("first_seen", "source_date", "date")),
                last_seen=parse_time(get("last_seen")), valid_until=parse_time(get("valid_until")),
                confidence=int(conf) if conf.isdigit() else _CONF.get(conf.lower()),
                tags=[t for t in get("tags", "recommended_use").split(";") if t],
                context=get("context", "comment", "description")))
    elif typed:
        for r in rows[1:]:
            for h, cell in zip(head, r, strict=False):
                norm = normalise(h, cell) if cell.strip() else None
                if norm:
                    res.indicators.append(Indicator(norm[0], norm[1], src))
                elif cell.strip():
                    res.skipped += 1
    else:
        _list("\n".join(",".join(r) for r in rows), src, res)


def _list(text: str, src: str, res: ReadResult) -> None:
    context = ""
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            m = re.match(r"#\s*(reference|aliases|comment)\s*:\s*(.+)", s, re.I)
            if m:
                context = m.group(2).strip()[:300]
            continue
        value, _, comment = s.partition(";")
        if re.search(r"[\\^$*()|\[\]]|\.\+|\?", value):
            res.skipped += 1  # a regular expression (signature-base filename IOCs)
            res.patterns += 1
            continue
        value = refang(value.split(",")[0].strip())
        kind = guess_type(value)
        norm = normalise(kind, value) if kind else None
        if not norm:
            res.skipped += 1
            continue
        res.indicators.append(Indicator(norm[0], norm[1], src,
                                        context=comment.strip()[:300] or context))
