"""Indicators: one value of one type, with where it came from and when it was true."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Types tidehunt matches, and the names feeds use for them.
TYPES = ("ip", "cidr", "domain", "url", "md5", "sha1", "sha256", "email", "filename",
         "user-agent")
ALIASES = {
    "ipv4-addr": "ip", "ipv6-addr": "ip", "ip-src": "ip", "ip-dst": "ip", "ipv4": "ip",
    "ipv6": "ip", "ip-dst|port": "ip", "ip-src|port": "ip", "domain-name": "domain",
    "hostname": "domain", "domain|ip": "domain", "fqdn": "domain", "uri": "url", "link": "url",
    "email-addr": "email", "email-src": "email", "email-dst": "email", "email-reply-to": "email",
    "file:name": "filename", "file-name": "filename", "filename|md5": "md5",
    "filename|sha1": "sha1", "filename|sha256": "sha256", "user_agent": "user-agent",
    "useragent": "user-agent", "sha-256": "sha256", "sha-1": "sha1", "md-5": "md5",
    "hash": "", "url-pattern": "", "ip-range": "cidr", "ipv4-net": "cidr",
    "ipv6-net": "cidr", "netblock": "cidr", "network": "cidr", "subnet": "cidr",
}
#: Networks wider than this (prefix length per IP version) are too broad to be an
#: indicator (a feed's ``0.0.0.0/0`` would match every address) and are left out.
MIN_PREFIX = {4: 8, 6: 16}
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
    if "/" in v and _network(v):
        return "cidr"
    if re.match(r"^[a-z][a-z0-9+.-]*://", v, re.I):
        return "url"
    if _EMAIL.match(v):
        return "email"
    if _DOMAIN.match(v.lower()):
        return "domain"
    return None


def _network(v: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """``v`` as a network (host bits cleared: ``203.0.113.5/24`` is ``203.0.113.0/24``)."""
    try:
        return ipaddress.ip_network(v.strip("[]"), strict=False)
    except ValueError:
        return None


#: IPv4 addresses are numbered as their IPv4-mapped IPv6 form (::ffff:a.b.c.d), so one
#: 128-bit space holds both versions.
V4_MAPPED = 0xFFFF00000000


def net_range(value: str) -> tuple[int, int] | None:
    """The first and last address of a network (or an address) as 128-bit integers, IPv4
    in its IPv4-mapped place; None when ``value`` is neither."""
    net = _network(value)
    if net is None:
        return None
    lo = int(net.network_address) + (V4_MAPPED if net.version == 4 else 0)
    return lo, lo + net.num_addresses - 1


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
    if k in ("ip", "cidr"):
        v = v.split(":")[0] if v.count(":") == 1 else v
        try:
            return "ip", str(ipaddress.ip_address(v.strip("[]")))
        except ValueError:
            net = _network(v)
            if net is None:
                return None
            if net.prefixlen == net.max_prefixlen:  # a /32 or /128 is one address
                return "ip", str(net.network_address)
            return "cidr", str(net)
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
