"""Shared mail handling: one message -> a ``mail`` row and its ``mail_attachment`` rows.

Headers are parsed by the standard library's ``email`` package (``policy.default``: RFC 2047
words decoded in any charset it knows); a header the policy cannot parse is kept raw and
counted as a defect. Attachments are walked recursively (a message attached to a message,
an .msg inside an .msg) up to ``MAX_DEPTH``; each is hashed and typed from its content.
Nothing is written to disk here and nothing is executed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import Any

import orjson

from tidehunt.attachments import Node, Report
from tidehunt.attachments.kinds import kind
from tidehunt.model.batch import TableBatch
from tidehunt.sources._attach import AttachmentAnalyser
from tidehunt.webroot import entropy

MAX_DEPTH = 5
MAX_BODY = 1 << 20  # characters of body text/HTML kept per message
_URL = re.compile(r"\b(?:h[tx]{2}ps?|ftp)(?:://|\[://\]|\[:\]//)[^\s\"'<>\)]+", re.I)
_HREF = re.compile(r"""href\s*=\s*["']?([^"'\s>]+)""", re.I)
_AUTH = re.compile(r"\b(spf|dkim|dmarc|arc)\s*=\s*([a-z]+)", re.I)
#: Result words of RFC 8601 Authentication-Results and Received-SPF.
VERDICTS = frozenset({"pass", "fail", "softfail", "neutral", "none", "temperror",
                      "permerror", "policy", "hardfail", "bestguesspass"})
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|\u202a-\u202e\u2066-\u2069]")


def refang(url: str) -> str:
    """``hxxp://evil[.]com`` -> ``http://evil.com``."""
    u = re.sub(r"^h[tx]{2}p", lambda m: "http", url, flags=re.I)
    return u.replace("[.]", ".").replace("(.)", ".").replace("[://]", "://").replace(
        "[:]//", "://")


def urls_in(*texts: str) -> list[str]:
    """Every URL in text and HTML (href values included), refanged, in order, unique."""
    seen: dict[str, None] = {}
    for t in texts:
        if not t:
            continue
        for m in _URL.finditer(t):
            seen[refang(m.group(0)).rstrip(".,;")] = None
        for m in _HREF.finditer(t):
            v = m.group(1)
            if v.lower().startswith(("http", "hxxp", "ftp")):
                seen[refang(v)] = None
    return list(seen)


def safe_name(name: str | None, index: int) -> str:
    """A file name that cannot leave a folder or hide its extension (RLO and friends)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip(" .")
    return base[:200] or f"attachment-{index}"


@dataclass
class Attachment:
    """One attachment, however deep."""

    name: str | None
    content_type: str | None
    data: bytes
    depth: int = 0
    parent: str = ""
    disposition: str | None = None
    note: str | None = None


@dataclass
class MailRecord:
    """One message, ready for the two tables."""

    locator: str
    headers: list[tuple[str, str]]
    text: str = ""
    html: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    date: datetime | None = None
    subject: str | None = None
    sender_name: str | None = None
    sender: str | None = None


def clean(text: str) -> str:
    """Text safe for Arrow: undecodable bytes the parser kept as surrogates become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def header_list(msg: Message) -> tuple[list[tuple[str, str]], list[str]]:
    """All headers as (name, decoded value); values the policy cannot parse stay raw."""
    out, defects = [], []
    for name, raw in msg.raw_items():
        try:
            out.append((name, clean(str(msg.policy.header_fetch_parse(name, raw)))))
        except (ValueError, TypeError, IndexError, AttributeError, LookupError) as exc:
            defects.append(f"header {name} not decodable ({type(exc).__name__})")
            out.append((name, clean(" ".join(str(raw).split()))))
    return out, defects


def parse_eml(data: bytes, locator: str) -> MailRecord:
    """An RFC 5322 message (bytes) -> MailRecord, attachments walked recursively."""
    msg = BytesParser(policy=policy.default).parsebytes(data)
    return from_email(msg, locator, 0)


def from_email(msg: Message, locator: str, depth: int) -> MailRecord:
    """MailRecord from a parsed ``email`` message."""
    headers, defects = header_list(msg)
    rec = MailRecord(locator, headers, defects=defects)
    rec.defects += [type(d).__name__ for d in getattr(msg, "defects", [])]
    texts: list[str] = []
    htmls: list[str] = []
    _walk(msg, rec, texts, htmls, depth, locator)
    rec.text = "\n".join(texts)[:MAX_BODY]
    rec.html = "\n".join(htmls)[:MAX_BODY]
    first = {k.lower(): v for k, v in reversed(headers)}
    rec.subject = first.get("subject")
    rec.sender_name, rec.sender = parseaddr(first.get("from", ""))
    rec.date = parse_date(first.get("date"))
    return rec


def parse_date(value: str | None) -> datetime | None:
    """An RFC 5322 date in UTC, or None."""
    if not value:
        return None
    try:
        d = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return d.astimezone(UTC) if d.tzinfo else d.replace(tzinfo=UTC)


def _walk(part: Message, rec: MailRecord, texts: list[str], htmls: list[str], depth: int,
          parent: str) -> None:
    if part.is_multipart() and part.get_content_type() != "message/rfc822":
        for sub in part.get_payload() or []:
            if isinstance(sub, Message):
                _walk(sub, rec, texts, htmls, depth, parent)
        return
    ctype = part.get_content_type()
    disp = part.get_content_disposition()
    try:
        filename = part.get_filename()
    except (ValueError, TypeError, IndexError):
        filename = None
        rec.defects.append("attachment name not decodable")
    if ctype == "message/rfc822" and disp != "inline":
        inner = part.get_payload()
        payload = inner[0] if isinstance(inner, list) and inner else None
        try:
            data = payload.as_bytes() if isinstance(payload, Message) else b""
        except (UnicodeError, ValueError, TypeError) as exc:
            rec.defects.append(f"attached message not serialisable ({type(exc).__name__})")
            data = b""
        rec.attachments.append(Attachment(filename or "attached-message.eml", ctype, data,
                                          depth, parent, disp))
        if isinstance(payload, EmailMessage) and depth + 1 < MAX_DEPTH:
            inner_rec = from_email(payload, f"{parent}>{filename or 'message'}", depth + 1)
            for a in inner_rec.attachments:
                rec.attachments.append(a)
        return
    try:
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
    except (ValueError, TypeError, AssertionError) as exc:
        rec.defects.append(f"part {ctype} not decodable ({type(exc).__name__})")
        data = b""
    if filename is None and disp != "attachment" and ctype in ("text/plain", "text/html"):
        charset = part.get_content_charset() or "utf-8"
        try:
            text = data.decode(charset, "replace")
        except LookupError:
            rec.defects.append(f"unknown charset {charset!r}; read as UTF-8")
            text = data.decode("utf-8", "replace")
        (texts if ctype == "text/plain" else htmls).append(clean(text))
        return
    rec.attachments.append(Attachment(filename, ctype, data, depth, parent, disp))


def addresses(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """Comma-joined addresses of every ``name`` header."""
    vals = [v for k, v in headers if k.lower() == name]
    got = [a for _, a in getaddresses(vals) if a]
    return ", ".join(got) or None


def received_chain(headers: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Received hops, newest first as in the message: from, by, with, time (UTC)."""
    out = []
    for k, v in headers:
        if k.lower() != "received":
            continue
        body, _, when = v.rpartition(";")
        hop: dict[str, Any] = {"raw": " ".join(v.split())[:500]}
        for key in ("from", "by", "with"):
            m = re.search(rf"\b{key}\s+(\S+)", body, re.I)
            hop[key] = m.group(1) if m else None
        t = parse_date(when.strip())
        hop["time"] = t.isoformat() if t else None
        out.append(hop)
    return out


def auth_results(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """spf/dkim/dmarc/arc verdicts of the topmost Authentication-Results (and Received-SPF)."""
    out: dict[str, str] = {}
    for k, v in headers:
        low = k.lower()
        if low in ("authentication-results", "arc-authentication-results"):
            for m in _AUTH.finditer(v):
                if m.group(2).lower() in VERDICTS:
                    out.setdefault(m.group(1).lower(), m.group(2).lower())
        elif low == "received-spf" and "spf" not in out and v.split():
            word = v.split()[0].lower()
            if word in VERDICTS:
                out["spf"] = word
    return out


def batches(records: list[MailRecord], artefact: str, display: str, source: str,
            analyser: AttachmentAnalyser | None = None,
            warn: Callable[[str, str], None] | None = None) -> Iterator[TableBatch]:
    """The ``mail``, ``mail_attachment`` and ``file`` batches of parsed messages.

    Every attachment (and every file unpacked from one) is analysed; what could not be
    analysed is reported through ``warn(message, locator)``.
    """
    if not records:
        return
    analyser = analyser or AttachmentAnalyser()
    mail: dict[str, list[Any]] = {k: [] for k in MAIL_COLUMNS}
    att: dict[str, list[Any]] = {k: [] for k in ATT_COLUMNS}
    files: dict[str, list[Any]] = {k: [] for k in FILE_COLUMNS}
    att_loc: list[str] = []
    for r in records:
        h = r.headers
        first = {k.lower(): v for k, v in reversed(h)}
        chain = received_chain(h)
        auth = auth_results(h)
        urls = urls_in(r.text, r.html)
        _, reply = parseaddr(first.get("reply-to", ""))
        _, ret = parseaddr(first.get("return-path", ""))
        _, snd = parseaddr(first.get("sender", ""))
        vals = {
            "ts": r.date, "message_id": first.get("message-id"), "subject": r.subject,
            "from_addr": r.sender or None, "from_name": r.sender_name or None,
            "from_domain": (r.sender or "").rpartition("@")[2].lower() or None,
            "sender": snd or None, "reply_to": reply or None, "return_path": ret or None,
            "to": addresses(h, "to"), "cc": addresses(h, "cc"),
            "received_hops": len(chain),
            "received": orjson.dumps(chain).decode() if chain else None,
            "spf": auth.get("spf"), "dkim": auth.get("dkim"), "dmarc": auth.get("dmarc"),
            "arc": auth.get("arc"), "x_originating_ip": first.get("x-originating-ip"),
            "body_text": r.text or None, "body_html": r.html or None,
            "urls": "\n".join(urls) or None, "url_count": len(urls),
            "attachment_count": len(r.attachments),
            "headers": orjson.dumps(h).decode(),
            "defects": "; ".join(dict.fromkeys(r.defects)) or None,
            "source_file": display,
        }
        for k in MAIL_COLUMNS:
            mail[k].append(vals.get(k))
        body = r.text + "\n" + r.html
        n_rows = 0
        for i, a in enumerate(r.attachments):
            name = safe_name(a.name, i)
            try:  # the raw name: its tricks (RLO, padding) are what is analysed
                nodes = analyser.analyse(a.data, clean(a.name or "") or name, body, r.subject)
            except Exception as exc:  # noqa: BLE001 - hostile content; reported, mail kept
                if warn:
                    warn(f"attachment {name!r} not analysed: {type(exc).__name__}: {exc}",
                         f"{r.locator}/attachment {i}")
                nodes = []
            if not nodes:
                nodes = [_bare_node(a.data, name)]
            for node in nodes:
                rep = node.report
                loc = f"{r.locator}/attachment {i}" + (
                    f"/{n_rows}:{safe_name(node.name, n_rows)}" if node.depth else "")
                note = "; ".join(x for x in (a.note if not node.depth else None, node.note)
                                 if x) or None
                if note and warn and node.note:
                    warn(f"attachment {safe_name(node.name, n_rows)!r} not fully analysed: "
                         f"{node.note}", loc)
                try:
                    extracted = analyser.keep(node)
                except OSError as exc:
                    extracted = None
                    if warn:
                        warn(f"copy of attachment {node.name!r} not written to the case: "
                             f"{exc}", loc)
                parent = " > ".join(x for x in (a.parent if a.depth else None, node.parent)
                                    if x) or None
                cves = sorted({c for ind in rep.indicators if ind.cve
                               for c in ind.cve.split(",")})
                lnk = rep.lnk or {}
                av = {"ts": r.date, "message_id": vals["message_id"],
                      "mail_locator": r.locator,
                      "filename": safe_name(node.name, n_rows) if node.depth else name,
                      "filename_raw": a.name if not node.depth else node.name,
                      "content_type": a.content_type if not node.depth else None,
                      "disposition": a.disposition if not node.depth else None,
                      "size": len(node.data), "sha256": node.sha256, "md5": node.md5,
                      "kind": rep.kind, "depth": a.depth + node.depth, "parent": parent,
                      "note": note, "how": node.how if node.depth else "attachment",
                      "indicators": ",".join(dict.fromkeys(x.id for x in rep.indicators))
                      or None,
                      "severity": rep.severity,
                      "analysis": orjson.dumps([x.to_dict() for x in rep.indicators]).decode()
                      if rep.indicators else None,
                      "cves": ",".join(cves) or None,
                      "urls": "\n".join(dict.fromkeys(rep.urls)) or None,
                      "lnk_target": lnk.get("target"), "lnk_arguments": lnk.get("arguments"),
                      "lnk_json": orjson.dumps(lnk, default=str).decode() if lnk else None,
                      "doc_title": rep.meta.get("title"), "doc_author": rep.meta.get("creator"),
                      "macros": rep.macros, "encrypted": rep.encrypted or None,
                      "password": rep.password,
                      "lure_themes": ",".join(rep.lure_themes) or None,
                      "lure_score": rep.lure_score,
                      "yara": orjson.dumps(rep.yara).decode() if rep.yara else None,
                      "extracted": extracted, "source_file": display}
                for k in ATT_COLUMNS:
                    att[k].append(av.get(k))
                att_loc.append(loc)
                fname = str(av["filename"])
                fv = {"ts": r.date, "origin": "mail", "root": display, "path": loc,
                      "abs_path": str(analyser.case_root / extracted)
                      if extracted and analyser.case_root else None,
                      "name": fname, "ext": fname.rsplit(".", 1)[-1].lower()
                      if "." in fname else None,
                      "size": len(node.data), "sha256": node.sha256, "md5": node.md5,
                      "kind": rep.kind, "entropy": round(entropy(node.data), 3)
                      if node.data else None, "yara": av["yara"], "scan_note": note}
                for k in FILE_COLUMNS:
                    files[k].append(fv.get(k))
                n_rows += 1
    yield TableBatch.from_values("mail", mail, source=source, artefact=artefact,
                                 locators=[r.locator for r in records])
    if att_loc:
        yield TableBatch.from_values("mail_attachment", att, source=source, artefact=artefact,
                                     locators=att_loc)
        yield TableBatch.from_values("file", files, source=source, artefact=artefact,
                                     locators=att_loc)


def _bare_node(data: bytes, name: str) -> Node:
    """An attachment the analysis failed on: still hashed and typed."""
    return Node(name, data, 0, None, "attachment", Report(name, kind(data, name)),
                hashlib.sha256(data).hexdigest(),
                hashlib.md5(data, usedforsecurity=False).hexdigest())


MAIL_COLUMNS = (
    "ts", "message_id", "subject", "from_addr", "from_name", "from_domain", "sender",
    "reply_to", "return_path", "to", "cc", "received_hops", "received", "spf", "dkim",
    "dmarc", "arc", "x_originating_ip", "body_text", "body_html", "urls", "url_count",
    "attachment_count", "headers", "defects", "source_file",
)
ATT_COLUMNS = (
    "ts", "message_id", "mail_locator", "filename", "filename_raw", "content_type",
    "disposition", "size", "sha256", "md5", "kind", "depth", "parent", "note", "how",
    "indicators", "severity", "analysis", "cves", "urls", "lnk_target", "lnk_arguments",
    "lnk_json", "doc_title", "doc_author", "macros", "encrypted", "password", "lure_themes",
    "lure_score", "yara", "extracted", "source_file",
)
FILE_COLUMNS = ("ts", "origin", "root", "path", "abs_path", "name", "ext", "size", "sha256",
                "md5", "kind", "entropy", "yara", "scan_note")
