"""The organisation profile: its own domains, its partners and the people and bodies it
trusts, so that mail analytics can tell impersonation from the real thing.

A YAML file (``hunt --org FILE``), kept in the case as ``org.yaml`` so later ``detect``
runs use it too::

    own_domains: [corp.example]
    partner_domains: [maritime-review.example]
    trusted:
      - name: Maritime Review             # an organisation
        aliases: [AMR]
        domains: [maritime-review.example]
      - name: Jane Citizen                # a person
        addresses: [jane.citizen@partner.example]

Display names are compared case- and accent-insensitively, with look-alike characters
folded; a trusted name in the display name of mail from outside its domains and
addresses is impersonation.

The network analytics read the business calendar and the zone policy from the same file::

    timezone: Australia/Sydney            # local time of the hour-of-week baselines
    business_hours: "08:00-18:00"
    workdays: [mon, tue, wed, thu, fri]
    holidays: [2026-01-26, 2026-04-03]
    hosts: {WEB01: 10.10.0.5}             # names of addresses, where no log says them
    zones:                                # longest prefix wins
      dmz: {networks: [10.10.0.0/24], role: server}
      dc: {networks: [10.20.0.10/32], role: server}
      workstations: {networks: [10.30.0.0/16], isolated: true}
    allow:                                # zone pairs that may talk, and on what
      - {from: workstations, to: dc, ports: [53, 88, 135, 389, 445, 49152-65535]}
      - {from: any, to: dmz, ports: [80, 443]}
      - {from: dmz, to: internet, ports: any}

A connection between two different zones (``internet`` is any public address outside
them; it is checked only when an ``allow`` names it) that no ``allow`` covers is a
violation; so is one inside an ``isolated`` zone, unless an ``allow`` from it to itself
covers it.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from tidehunt.errors import ConfigError

CASE_FILE = "org.yaml"
MAX_BYTES = 1 << 20
#: Look-alike characters folded before names are compared (digits, Cyrillic, Greek).
_CONFUSABLE_SRC = {"0": "o", "1": "l", "3": "e", "5": "s", "$": "s", "@": "a",
                   "\u0430": "a", "\u0435": "e", "\u043e": "o", "\u0440": "p",
                   "\u0441": "c", "\u0445": "x", "\u0443": "y", "\u0456": "i",
                   "\u03bf": "o", "\u03b1": "a", "\u0131": "i", "|": "l", "\u043c": "m",
                   "\u043a": "k", "\u0442": "t", "\u0432": "b", "\u043d": "h",
                   "\u03bd": "v", "\u03c1": "p", "\u03c4": "t"}
_CONFUSABLE = str.maketrans(_CONFUSABLE_SRC)


def fold(text: str) -> str:
    """Lower case, accents and look-alike characters folded, punctuation as spaces."""
    t = unicodedata.normalize("NFKD", text)
    t = "".join(c for c in t if not unicodedata.combining(c)).lower().translate(_CONFUSABLE)
    return " ".join(re.sub(r"[\W_]+", " ", t).split())


def fold_sql(expr: str) -> str:
    """:func:`fold` in DuckDB SQL (the same folding, so profile names and mail agree)."""
    src = "".join(_CONFUSABLE_SRC)
    dst = "".join(_CONFUSABLE_SRC.values())
    return (f"trim(regexp_replace(translate(strip_accents(lower({expr})), '{src}', '{dst}'), "
            f"'[^\\p{{L}}\\p{{N}}]+', ' ', 'g'))")


@dataclass(frozen=True)
class Trusted:
    """One trusted person or organisation."""

    name: str
    aliases: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()


_DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
_KEYS = {"own_domains", "partner_domains", "trusted", "mfa_required", "service_accounts",
         "timezone", "business_hours", "workdays", "holidays", "hosts", "zones", "allow"}


@dataclass(frozen=True)
class Zone:
    """A network zone of the segmentation policy."""

    name: str
    networks: tuple[str, ...]
    role: str = ""
    isolated: bool = False


@dataclass(frozen=True)
class Allow:
    """Traffic a zone may send to another: ports as (low, high) ranges, None for any."""

    src: str
    dst: str
    ports: tuple[tuple[int, int], ...] | None = None
    proto: str | None = None


@dataclass(frozen=True)
class Calendar:
    """When the organisation works, in its own time zone."""

    timezone: str = "UTC"
    start_minute: int = 8 * 60
    end_minute: int = 18 * 60
    workdays: tuple[int, ...] = (1, 2, 3, 4, 5)
    holidays: tuple[str, ...] = ()
    configured: bool = False


@dataclass(frozen=True)
class OrgProfile:
    """What the organisation is and whom it trusts."""

    own_domains: tuple[str, ...] = ()
    partner_domains: tuple[str, ...] = ()
    trusted: tuple[Trusted, ...] = field(default_factory=tuple)
    source: str | None = None
    #: Sign-ins that must use a second factor: every one, or these accounts and apps.
    mfa_all: bool = False
    mfa_users: tuple[str, ...] = ()
    mfa_apps: tuple[str, ...] = ()
    #: Regular expressions naming service accounts (default: svc_, sa-, *$ ...).
    service_accounts: tuple[str, ...] = ()
    #: The profile says anything about MFA (else every interactive sign-in is expected to).
    mfa_configured: bool = False
    calendar: Calendar = field(default_factory=Calendar)
    #: Host names of addresses (name, address), where no log ties them.
    hosts: tuple[tuple[str, str], ...] = ()
    zones: tuple[Zone, ...] = ()
    allow: tuple[Allow, ...] = ()

    @classmethod
    def load(cls, path: str | Path) -> OrgProfile:
        """Read and check a profile; every problem is a ConfigError naming the file."""
        from tidehunt.yamlconf import load_yaml

        p = Path(path)
        doc = load_yaml(p, "organisation profile") or {}
        if not isinstance(doc, dict):
            raise ConfigError(f"{p}: expected a mapping with own_domains, partner_domains, "
                              "trusted")
        unknown = set(doc) - _KEYS
        if unknown:
            raise ConfigError(f"{p}: unknown keys {', '.join(sorted(map(str, unknown)))}")
        trusted = []
        for i, t in enumerate(doc.get("trusted") or []):
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                raise ConfigError(f"{p}: trusted entry {i + 1} needs a name")
            trusted.append(Trusted(t["name"], _strs(t.get("aliases"), p),
                                   _domains(t.get("domains"), p),
                                   tuple(a.lower() for a in _strs(t.get("addresses"), p))))
        mfa = doc.get("mfa_required")
        if mfa is not None and not isinstance(mfa, dict | bool):
            raise ConfigError(f"{p}: mfa_required wants true, false or {{users, apps}}")
        mfa_d = {"all": mfa} if isinstance(mfa, bool) else dict(mfa or {})
        return cls(_domains(doc.get("own_domains"), p), _domains(doc.get("partner_domains"), p),
                   tuple(trusted), str(p),
                   bool(mfa_d.get("all", False)),
                   tuple(x.lower() for x in _strs(mfa_d.get("users"), p)),
                   tuple(x.lower() for x in _strs(mfa_d.get("apps"), p)),
                   _strs(doc.get("service_accounts"), p), mfa is not None,
                   _calendar(doc, p), _hosts(doc.get("hosts"), p), *_policy(doc, p))

    @classmethod
    def for_case(cls, case: str | Path, given: str | Path | None = None) -> OrgProfile | None:
        """The profile given (then copied into the case), else the case's own, else None."""
        dest = Path(case) / CASE_FILE
        if given:
            prof = cls.load(given)
            Path(case).mkdir(parents=True, exist_ok=True)
            if Path(given).resolve() != dest.resolve():
                shutil.copyfile(given, dest)
            return prof
        return cls.load(dest) if dest.is_file() else None

    def tables(self) -> dict[str, pa.Table]:
        """``org_domain`` (domain, role) and ``org_trusted`` (name, folded, domains,
        addresses) for the analytics' SQL."""
        doms = [(d, "own") for d in self.own_domains] + [(d, "partner")
                                                        for d in self.partner_domains]
        names, folded, tdoms, addrs = [], [], [], []
        for t in self.trusted:
            for n in (t.name, *t.aliases):
                if len(fold(n)) >= 3:
                    names.append(t.name)
                    folded.append(fold(n))
                    tdoms.append(list(t.domains))
                    addrs.append(list(t.addresses))
        cal = self.calendar
        zone_rows: dict[str, list[Any]] = {"zone": [], "network": [], "role": [],
                                           "isolated": []}
        for z in self.zones:
            for n in z.networks:
                for k, v in (("zone", z.name), ("network", n), ("role", z.role or None),
                             ("isolated", z.isolated)):
                    zone_rows[k].append(v)
        allow_rows: dict[str, list[Any]] = {"src": [], "dst": [], "proto": [],
                                            "port_lo": [], "port_hi": []}
        for a in self.allow:
            for lo, hi in a.ports or ((0, 65535),):
                row: dict[str, Any] = {"src": a.src, "dst": a.dst, "proto": a.proto,
                                       "port_lo": lo, "port_hi": hi}
                for k, val in row.items():
                    allow_rows[k].append(val)
        return {
            "org_calendar": pa.table(
                {"tz": [cal.timezone], "start_minute": [cal.start_minute],
                 "end_minute": [cal.end_minute], "workdays": [list(cal.workdays)],
                 "holidays": [list(cal.holidays)], "configured": [cal.configured]},
                schema=pa.schema([("tz", pa.string()), ("start_minute", pa.int32()),
                                  ("end_minute", pa.int32()),
                                  ("workdays", pa.list_(pa.int32())),
                                  ("holidays", pa.list_(pa.string())),
                                  ("configured", pa.bool_())])),
            "org_host": pa.table({"name": [h for h, _ in self.hosts],
                                  "ip": [a for _, a in self.hosts]},
                                 schema=pa.schema([("name", pa.string()), ("ip", pa.string())])),
            "org_zone": pa.table(zone_rows, schema=pa.schema([
                ("zone", pa.string()), ("network", pa.string()), ("role", pa.string()),
                ("isolated", pa.bool_())])),
            "org_allow": pa.table(allow_rows, schema=pa.schema([
                ("src", pa.string()), ("dst", pa.string()), ("proto", pa.string()),
                ("port_lo", pa.int32()), ("port_hi", pa.int32())])),
            "org_mfa": pa.table({"all_required": [self.mfa_all or not self.mfa_configured],
                                 "configured": [self.mfa_configured],
                                 "users": [list(self.mfa_users)], "apps": [list(self.mfa_apps)]},
                                schema=pa.schema([("all_required", pa.bool_()),
                                                  ("configured", pa.bool_()),
                                                  ("users", pa.list_(pa.string())),
                                                  ("apps", pa.list_(pa.string()))])),
            "org_service": pa.table({"pattern": list(self.service_accounts) or [
                r"^(svc|sa|srv|service|svc_acct)[-_.]", r"[-_.](svc|service)(@|$)", r"\$$"]},
                schema=pa.schema([("pattern", pa.string())])),
            "org_domain": pa.table({"domain": [d for d, _ in doms],
                                    "role": [r for _, r in doms]},
                                   schema=pa.schema([("domain", pa.string()),
                                                     ("role", pa.string())])),
            "org_trusted": pa.table({"name": names, "folded": folded, "domains": tdoms,
                                     "addresses": addrs},
                                    schema=pa.schema([("name", pa.string()),
                                                      ("folded", pa.string()),
                                                      ("domains", pa.list_(pa.string())),
                                                      ("addresses", pa.list_(pa.string()))])),
        }


def _strs(v: Any, p: Path) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{p}: expected a list of strings, got {v!r}"[:200])
    return tuple(v)


def _domains(v: Any, p: Path) -> tuple[str, ...]:
    out = []
    for d in _strs(v, p):
        d = d.strip().lower().lstrip("@").rstrip(".")
        try:
            d = d.encode("idna").decode("ascii") if not d.isascii() else d
        except UnicodeError as exc:
            raise ConfigError(f"{p}: {d!r} is not a valid domain") from exc
        out.append(d)
    return tuple(out)


def _calendar(doc: dict[str, Any], p: Path) -> Calendar:
    keys = ("timezone", "business_hours", "workdays", "holidays")
    if not any(k in doc for k in keys):
        return Calendar()
    tz = str(doc.get("timezone") or "UTC")
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{p}: timezone {tz!r} is not an IANA time zone name") from exc
    start, end = 8 * 60, 18 * 60
    if doc.get("business_hours") is not None:
        m = re.fullmatch(r"\s*(\d{1,2}):?(\d{2})\s*-\s*(\d{1,2}):?(\d{2})\s*",
                         str(doc["business_hours"]))
        if not m:
            raise ConfigError(f"{p}: business_hours wants HH:MM-HH:MM, e.g. 08:00-18:00")
        start = int(m[1]) * 60 + int(m[2])
        end = int(m[3]) * 60 + int(m[4])
        if not 0 <= start < end <= 24 * 60:
            raise ConfigError(f"{p}: business_hours must start before they end, in one day")
    days: tuple[int, ...] = (1, 2, 3, 4, 5)
    if doc.get("workdays") is not None:
        try:
            days = tuple(sorted({_DAYS[str(d).lower()[:3]] for d in _strs(doc["workdays"], p)}))
        except KeyError as exc:
            raise ConfigError(f"{p}: workdays are mon, tue, wed, thu, fri, sat, sun") from exc
    hol = []
    for h in doc.get("holidays") or []:
        try:
            from datetime import date

            hol.append(h.isoformat() if isinstance(h, date) else date.fromisoformat(str(h))
                       .isoformat())
        except ValueError as exc:
            raise ConfigError(f"{p}: holiday {h!r} is not a YYYY-MM-DD date") from exc
    return Calendar(tz, start, end, days, tuple(hol), True)


def _net(v: Any, p: Path, what: str) -> str:
    try:
        return str(ipaddress.ip_network(str(v).strip(), strict=False))
    except ValueError as exc:
        raise ConfigError(f"{p}: {v!r} in {what} is not an address or network") from exc


def _hosts(v: Any, p: Path) -> tuple[tuple[str, str], ...]:
    if v is None:
        return ()
    if not isinstance(v, dict):
        raise ConfigError(f"{p}: hosts wants a mapping of host name: address")
    out = []
    for name, addr in v.items():
        try:
            out.append((str(name).lower(), str(ipaddress.ip_address(str(addr).strip()))))
        except ValueError as exc:
            raise ConfigError(f"{p}: host {name}: {addr!r} is not an address") from exc
    return tuple(out)


def _ports(v: Any, p: Path, where: str) -> tuple[tuple[int, int], ...] | None:
    if v is None or v == "any":
        return None
    items = v if isinstance(v, list) else [v]
    out = []
    for it in items:
        m = re.fullmatch(r"\s*(\d{1,5})\s*(?:-\s*(\d{1,5}))?\s*", str(it))
        if not m or int(m[2] or m[1]) > 65535 or int(m[2] or m[1]) < int(m[1]):
            raise ConfigError(f"{p}: {where}: port {it!r} is not a port or LOW-HIGH range")
        out.append((int(m[1]), int(m[2] or m[1])))
    return tuple(out)


def _policy(doc: dict[str, Any], p: Path) -> tuple[tuple[Zone, ...], tuple[Allow, ...]]:
    raw = doc.get("zones") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: zones wants a mapping of zone name: networks")
    zones = []
    for name, z in raw.items():
        if str(name) in ("any", "internet"):
            raise ConfigError(f"{p}: zone name {name!r} is reserved")
        if isinstance(z, list | str):
            z = {"networks": z}
        if not isinstance(z, dict) or not z.get("networks"):
            raise ConfigError(f"{p}: zone {name} needs networks")
        zones.append(Zone(str(name), tuple(_net(n, p, f"zone {name}")
                                           for n in _strs(z["networks"], p)),
                          str(z.get("role") or ""), bool(z.get("isolated", False))))
    names = {z.name for z in zones} | {"any", "internet"}
    allow = []
    for i, a in enumerate(doc.get("allow") or []):
        where = f"allow entry {i + 1}"
        if not isinstance(a, dict) or "from" not in a or "to" not in a:
            raise ConfigError(f"{p}: {where} needs from and to")
        for k in ("from", "to"):
            if str(a[k]) not in names:
                raise ConfigError(f"{p}: {where}: {a[k]!r} is not a zone (known: "
                                  f"{', '.join(sorted(names))})")
        proto = str(a["proto"]).lower() if a.get("proto") else None
        if proto not in (None, "tcp", "udp", "icmp"):
            raise ConfigError(f"{p}: {where}: proto is tcp, udp or icmp")
        allow.append(Allow(str(a["from"]), str(a["to"]), _ports(a.get("ports"), p, where),
                           proto))
    if allow and not zones:
        raise ConfigError(f"{p}: allow rules need zones")
    return tuple(zones), tuple(allow)
