"""Warninglists: values an indicator feed may list that must never make a match."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tidehunt.errors import ConfigError


@dataclass
class Warninglist:
    """Networks, domains (with their subdomains) and hashes."""

    networks: list[Any] = field(default_factory=list)
    domains: set[str] = field(default_factory=set)
    hashes: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, extra: list[str] | None = None) -> Warninglist:
        """The bundled list plus any ``--warninglist`` files."""
        text = (resources.files("tidehunt") / "data" / "intel" / "warninglist.yml").read_text(
            "utf-8")
        docs = [("bundled", yaml.safe_load(text))]
        for p in extra or []:
            try:
                raw = Path(p).read_bytes()
                if len(raw) > 16 << 20:
                    raise ConfigError(f"{p}: warninglist larger than 16 MiB")
                docs.append((p, yaml.safe_load(raw) or {}))
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"{p}: warninglist not readable: {exc}") from exc
        wl = cls()
        for name, d in docs:
            if not isinstance(d, dict):
                raise ConfigError(f"{name}: warninglist must map networks/domains/hashes")
            for n in d.get("networks") or []:
                try:
                    wl.networks.append(ipaddress.ip_network(str(n), strict=False))
                except ValueError as exc:
                    raise ConfigError(f"{name}: {n!r} is not a network") from exc
            wl.domains |= {str(x).lower().strip(".") for x in d.get("domains") or []}
            wl.hashes |= {str(x).lower() for x in d.get("hashes") or []}
        return wl

    def listed(self, kind: str, value: str) -> bool:
        """True if the value must not match."""
        if kind == "ip":
            try:
                net = ipaddress.ip_network(value, strict=False)
            except ValueError:
                return False
            return any(net.version == n.version and net.subnet_of(n) for n in self.networks)
        if kind == "domain":  # an address or a URL on a listed domain is still specific
            parts = value.lower().split(".")
            return any(".".join(parts[i:]) in self.domains for i in range(len(parts)))
        if kind in ("md5", "sha1", "sha256"):
            return value.lower() in self.hashes
        return False
