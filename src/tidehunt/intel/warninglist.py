"""Warninglists: values an indicator feed may list that must never make a match.

Two formats, mixed freely (``--warninglist FILE|FOLDER``, repeatable):

* the project's YAML (``data/intel/warninglist.yml``, always loaded): ``networks``,
  ``domains`` (each with its subdomains) and ``hashes``;
* MISP warninglists (https://github.com/MISP/misp-warninglists): one JSON document per
  list, ``{"name", "type", "list", "matching_attributes"}``, or a folder of them (the
  repository's ``lists/*/list.json``). The type decides how an entry matches: ``string``
  (the default) the exact value, ``substring`` any value containing it (ignoring case),
  ``hostname`` the domain and its subdomains, ``cidr`` every address and network inside
  it, ``regex`` a value it matches. ``matching_attributes`` (MISP attribute types:
  ``ip-dst``, ``domain``, ``md5``...) decide which indicator types a list applies to;
  without them it applies to all.

As with the bundled list, a domain list never drops an e-mail address or a URL with a
path on a listed domain (an actor's ``@outlook.com`` address or Dropbox link is specific;
MISP would drop both); a URL that is nothing but its host is treated as that host.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import yaml

from tidehunt.errors import ConfigError
from tidehunt.intel.model import ALIASES, TYPES, V4_MAPPED
from tidehunt.yamlconf import load_bundled

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_YAML = 16 << 20
#: MISP lists of the top million sites run to tens of MiB.
MAX_JSON = 96 << 20
MISP_TYPES = ("string", "substring", "hostname", "cidr", "regex")
_HASHES = ("md5", "sha1", "sha256")
_REGEX_DELIMITED = re.compile(r"^/(.*)/([a-z]*)$", re.S)


def applies_to(attributes: Any) -> frozenset[str]:
    """The indicator types a MISP list's ``matching_attributes`` name (every type when
    it names none); ``ip-dst|port`` and ``filename|md5`` name both their parts."""
    if not isinstance(attributes, list) or not attributes:
        return frozenset(TYPES)
    out: set[str] = set()
    for a in attributes:
        for part in str(a).lower().split("|"):
            t = ALIASES.get(part, part)
            if t in TYPES:
                out.add(t)
            if t == "ip":
                out.add("cidr")
    return frozenset(out)


def _net(value: str) -> Network | None:
    try:
        return ipaddress.ip_network(value.strip().strip("[]"), strict=False)
    except ValueError:
        return None


@dataclass
class Warninglist:
    """Everything listed, by how it matches."""

    networks: list[Network] = field(default_factory=list)
    domains: set[str] = field(default_factory=set)
    hashes: set[str] = field(default_factory=set)
    #: MISP ``string`` lists: exact values per indicator type.
    exact: dict[str, set[str]] = field(default_factory=dict)
    substrings: dict[str, set[str]] = field(default_factory=dict)
    regexes: dict[str, list[re.Pattern[str]]] = field(default_factory=dict)
    #: What was loaded: one line per list ("name (type, N entries)").
    lists: list[str] = field(default_factory=list)
    #: Entries no type could read (a bad network or regex in a MISP list), and files of
    #: a folder that are not warninglists.
    skipped: int = 0
    skipped_files: list[str] = field(default_factory=list)
    _index: dict[tuple[int, int], set[int]] = field(default_factory=dict, repr=False)
    _sub_rx: dict[str, re.Pattern[str] | None] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, extra: list[str] | None = None) -> Warninglist:
        """The bundled list plus any ``--warninglist`` files and folders.

        Raises:
            ConfigError: a file that is unreadable, too large, not JSON/YAML, or (given by
                itself) not a warninglist.
        """
        text = (resources.files("tidehunt") / "data" / "intel" / "warninglist.yml").read_text(
            "utf-8")
        wl = cls()
        wl._add_project("bundled", load_bundled(text))
        for p in extra or []:
            wl.add_path(Path(p))
        return wl

    # -- loading -------------------------------------------------------------------
    def add_path(self, p: Path) -> None:
        """A file, or a folder: its ``list.json`` files (the misp-warninglists layout),
        else every ``*.json``, ``*.yml`` and ``*.yaml`` in it."""
        if not p.is_dir():
            self._add_file(p, in_folder=False)
            return
        files = sorted(p.rglob("list.json")) or sorted(
            f for f in p.rglob("*") if f.suffix.lower() in (".json", ".yml", ".yaml"))
        files = [f for f in files if f.is_file()]
        if not files:
            raise ConfigError(f"{p}: no warninglist in this folder (list.json, *.json, *.yml)")
        for f in files:
            self._add_file(f, in_folder=True)

    def _add_file(self, p: Path, *, in_folder: bool) -> None:
        try:
            size = p.stat().st_size
            json_like = p.suffix.lower() == ".json"
            limit = MAX_JSON if json_like else MAX_YAML
            if size > limit:
                raise ConfigError(f"{p}: warninglist larger than {limit >> 20} MiB")
            raw = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{p}: warninglist not readable: {exc.strerror or exc}") from exc
        try:
            doc = orjson.loads(raw) if json_like else _json_or_yaml(raw)
        except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{p}: warninglist not readable: {exc}") from exc
        if isinstance(doc, dict) and isinstance(doc.get("list"), list):
            self._add_misp(str(p), doc)
        elif isinstance(doc, dict) and (not doc or set(doc) & {"networks", "domains",
                                                               "hashes"}):
            self._add_project(str(p), doc)
        elif in_folder:
            self.skipped_files.append(str(p))
        else:
            raise ConfigError(f"{p}: neither a MISP warninglist (name, type, list) nor a "
                              "mapping of networks/domains/hashes")

    def _add_project(self, name: str, d: Any) -> None:
        if not isinstance(d, dict):
            raise ConfigError(f"{name}: warninglist must map networks/domains/hashes")
        for n in d.get("networks") or []:
            net = _net(str(n))
            if net is None:
                raise ConfigError(f"{name}: {n!r} is not a network")
            self._add_network(net)
        self.domains |= {str(x).lower().strip(".") for x in d.get("domains") or []}
        self.hashes |= {str(x).lower() for x in d.get("hashes") or []}
        self.lists.append(f"{name} (networks, domains, hashes)")

    def _add_misp(self, name: str, d: dict[str, Any]) -> None:
        kind = str(d.get("type") or "string").lower()
        title = str(d.get("name") or name)
        if kind not in MISP_TYPES:
            raise ConfigError(f"{name}: MISP warninglist type {kind!r} is not one of "
                              f"{', '.join(MISP_TYPES)}")
        types = applies_to(d.get("matching_attributes"))
        entries = [str(e).strip() for e in d["list"] if isinstance(e, str | int) and
                   str(e).strip()]
        before = self.skipped
        if kind == "cidr":
            for e in entries:
                net = _net(e)
                if net is None:
                    self.skipped += 1
                elif types & {"ip", "cidr"}:
                    self._add_network(net)
        elif kind == "hostname":
            for e in entries:
                h = e.lower().removeprefix("*.").strip(".")
                net = _net(h) if h[:1].isdigit() or ":" in h else None
                if net is not None:
                    if types & {"ip", "cidr"}:
                        self._add_network(net)
                elif h and not re.search(r"[\s/@]", h):
                    if types & {"domain", "url"}:
                        self.domains.add(h)
                else:
                    self.skipped += 1
        elif kind == "string":
            self._add_strings(entries, types)
        elif kind == "substring":
            for t in types:
                self.substrings.setdefault(t, set()).update(e.lower() for e in entries)
            self._sub_rx.clear()
        else:  # regex
            for e in entries:
                rx = _compile(e)
                if rx is None:
                    self.skipped += 1
                    continue
                for t in types:
                    self.regexes.setdefault(t, []).append(rx)
        bad = f", {self.skipped - before} unreadable" if self.skipped > before else ""
        self.lists.append(f"{title} ({kind}, {len(entries)} entries{bad})")

    def _add_strings(self, entries: list[str], types: frozenset[str]) -> None:
        if types & {"ip", "cidr"}:
            for e in entries:
                net = _net(e) if e[:1].isdigit() or ":" in e else None
                if net is None:
                    continue
                if net.prefixlen == net.max_prefixlen:
                    self._add_network(net)  # an address: kept out of indicator networks too
                else:
                    self.exact.setdefault("cidr", set()).add(str(net))
        for t in types - {"ip", "cidr"}:
            bucket = self.exact.setdefault(t, set())
            if t == "domain":
                bucket.update(e.lower().rstrip(".") for e in entries)
            elif t in ("url", "user-agent"):
                bucket.update(entries)
            else:
                bucket.update(e.lower() for e in entries)

    def _add_network(self, net: Network) -> None:
        self.networks.append(net)
        self._index.setdefault((net.version, net.prefixlen), set()).add(
            int(net.network_address))

    # -- matching ------------------------------------------------------------------
    def _in_networks(self, net: Network) -> bool:
        """``net`` (an address is a /32 or /128) inside a listed network: one set lookup
        per prefix length the lists use."""
        addr = int(net.network_address)
        bits = net.max_prefixlen
        for (version, plen), starts in self._index.items():
            if version == net.version and plen <= net.prefixlen and (
                    addr >> (bits - plen) << (bits - plen)) in starts:
                return True
        return False

    def _domain_listed(self, value: str) -> bool:
        parts = value.lower().rstrip(".").split(".")
        return any(".".join(parts[i:]) in self.domains for i in range(len(parts)))

    def _substring_rx(self, kind: str) -> re.Pattern[str] | None:
        if kind not in self._sub_rx:
            subs = self.substrings.get(kind)
            self._sub_rx[kind] = re.compile("|".join(
                re.escape(s) for s in sorted(subs, key=len, reverse=True)),
                re.I) if subs else None
        return self._sub_rx[kind]

    def listed(self, kind: str, value: str) -> bool:
        """True if the value must not match."""
        if kind in ("ip", "cidr"):
            net = _net(value)
            if net is not None and self._in_networks(net):
                return True
        elif kind == "domain":  # an address or a URL on a listed domain is still specific
            if self._domain_listed(value):
                return True
        elif kind == "url":
            u = _split(value)
            if u is not None and u.hostname and u.path in ("", "/") and not (
                    u.query or u.fragment):
                host = u.hostname
                net = _net(host) if host[:1].isdigit() or ":" in host else None
                if self._domain_listed(host) if net is None else self._in_networks(net):
                    return True
        elif kind in _HASHES and value.lower() in self.hashes:
            return True
        if value in self.exact.get(kind, ()):
            return True
        rx = self._substring_rx(kind)
        if rx is not None and rx.search(value):
            return True
        return any(r.search(value) for r in self.regexes.get(kind, ()))

    def ranges(self) -> tuple[list[str], list[str], list[int]]:
        """Every listed network as its first and last address (128-bit integers in
        decimal, IPv4 in its IPv4-mapped place: the numbering of
        :func:`tidehunt.intel.model.net_range`) and its number of host bits, for the SQL
        that keeps listed addresses out of network-indicator matches."""
        lo, hi, shift = [], [], []
        for (version, plen), starts in self._index.items():
            host_bits = (32 if version == 4 else 128) - plen
            base = V4_MAPPED if version == 4 else 0
            for first in starts:
                lo.append(str(base + first))
                hi.append(str(base + first + (1 << host_bits) - 1))
                shift.append(host_bits)
        return lo, hi, shift


def _json_or_yaml(raw: bytes) -> Any:
    """A document that is not named .json: JSON when it parses as JSON (fast for the big
    MISP lists), else YAML (of which JSON is a subset)."""
    if raw.lstrip()[:1] in (b"{", b"["):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return yaml.safe_load(raw) or {}


def _split(value: str) -> Any:
    try:
        return urlsplit(value)
    except ValueError:
        return None


def _compile(entry: str) -> re.Pattern[str] | None:
    """A MISP regex entry: ``/pattern/flags`` (PCRE style, ``i`` ignores case) or bare."""
    m = _REGEX_DELIMITED.match(entry)
    pattern, flags = (m[1], re.I if "i" in m[2] else 0) if m else (entry, 0)
    try:
        return re.compile(pattern, flags)
    except re.error:
        return None
