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
"""

from __future__ import annotations

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

    @classmethod
    def load(cls, path: str | Path) -> OrgProfile:
        """Read and check a profile; every problem is a ConfigError naming the file."""
        import yaml

        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{p}: organisation profile not readable: {exc}") from exc
        if len(raw) > MAX_BYTES:
            raise ConfigError(f"{p}: organisation profile larger than 1 MiB")
        if raw.count(b"*") > 100 and raw.count(b"&") > 10:
            raise ConfigError(f"{p}: too many YAML aliases (a YAML bomb?)")
        try:
            doc = yaml.safe_load(raw) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"{p}: expected a mapping with own_domains, partner_domains, "
                              "trusted")
        unknown = set(doc) - {"own_domains", "partner_domains", "trusted", "mfa_required",
                              "service_accounts"}
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
                   _strs(doc.get("service_accounts"), p), mfa is not None)

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
        return {
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
