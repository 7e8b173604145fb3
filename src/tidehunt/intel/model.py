"""Indicators: one value of one type, with where it came from and when it was true."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Types tidehunt matches, and the names feeds use for them.
TYPES = ("ip", "domain", "url", "md5", "sha1", "sha256", "email", "filename", "user-agent")
ALIASES = {
    "ipv4-addr": "ip", "ipv6-addr": "ip", "ip-src": "ip", "ip-dst": "ip", "ipv4": "ip",
    "ipv6": "ip", "ip-dst|port": "ip", "ip-src|port": "ip", "domain-name": "domain",
    "hostname": "domain", "domain|ip": "domain", "fqdn": "domain", "uri": "url", "link": "url",
    "email-addr": "email", "email-src": "email", "email-dst": "email", "email-reply-to": "email",
    "file:name": "filename", "file-name": "filename", "filename|md5": "md5",
    "filename|sha1": "sha1", "filename|sha256": "sha256", "user_agent": "user-agent",
    "useragent": "user-agent", "sha-256": "sha256", "sha-1": "sha1", "md-5": "md5",
    "hash": "", "url-pattern": "",
}
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9_-]+\.)+[a-z][a-z0-9-]{1,62}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.I)


def refang(v: str) -> str:
    """``hxxp://evil[.]com`` and friends back to their real form."""
    v = v.strip().strip("\"'")
    v = re.sub(r"^h[xX]{2}p(s?)", r"http\1", v)
    v = re.sub(r"^fxp", "ftp", v)
    for a, b in (("[.]", "."), ("(.)", "."), ("{.}", "."), ("[dot]", "."), ("(dot)", "."),
                 ("[:]", ":"), ("[://]", "://"), ("[@]", "@"), ("(at)", "@"), ("[at]", "@"),
                 ("\\.", ".")):
        v = v.replace(a, b)
    return v


def guess_type(v: str) -> str | None:
    """The type of a bare value (for plain lists), or None."""
    if _HEX.match(v):
        return {32: "md5", 40: "sha1", 64: "sha256"}.get(len(v))
    try:
        ipaddress.ip_address(v)
        return "ip"
    except ValueError:
        pass
    if re.match(r"^[a-z][a-z0-9+.-]*://", v, re.I):
        return "url"
    if _EMAIL.match(v):
        return "email"
    if _DOMAIN.match(v.lower()):
        return "domain"
    return None


def normalise(kind: str, value: str) -> tuple[str, str] | None:
    """(type, value) as matched: refanged, lower-cased where case does not matter; None
    when the value is not of a type tidehunt matches."""
    k = ALIASES.get(kind.lower().strip(), kind.lower().strip())
    v = refang(value)
    if not v:
        return None
    if k in ("", "text", "other"):
        k = guess_type(v) or ""
    if "|" in v and k in ("ip", "md5", "sha1", "sha256", "domain"):
        v = v.split("|", 1)[1] if k != "domain" and k != "ip" else v.split("|", 1)[0]
    if k == "ip":
        v = v.split(":")[0] if v.count(":") == 1 else v
        try:
            return "ip", str(ipaddress.ip_address(v.strip("[]")))
        except ValueError:
            try:
                return "ip", str(ipaddress.ip_network(v, strict=False))
            except ValueError:
                return None
    if k in ("md5", "sha1", "sha256"):
        return (k, v.lower()) if _HEX.match(v) and len(v) in (32, 40, 64) else None
    if k == "domain":
        d = v.lower().rstrip(".")
        return ("domain", d) if _DOMAIN.match(d) else None
    if k == "url":
        return "url", v
    if k == "email":
        return ("email", v.lower()) if _EMAIL.match(v) else None
    if k == "filename":
        return "filename", v.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if k == "user-agent":
        return "user-agent", v
    return None


@dataclass
class Indicator:
    """One indicator of one feed."""

    type: str
    value: str
    source: str
    source_file: str = ""
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    valid_until: datetime | None = None
    confidence: int | None = None
    to_ids: bool | None = None
    tags: list[str] = field(default_factory=list)
    context: str = ""
    ref: str = ""

    def to_row(self) -> dict[str, Any]:
        """A row of the ``indicator`` table."""
        return {"ts": self.last_seen or self.first_seen, "type": self.type,
                "value": self.value, "source": self.source, "first_seen": self.first_seen,
                "last_seen": self.last_seen, "valid_until": self.valid_until,
                "confidence": self.confidence, "to_ids": self.to_ids,
                "tags": ",".join(self.tags) or None, "context": self.context[:1000] or None,
                "ref": self.ref or None, "source_file": self.source_file}
