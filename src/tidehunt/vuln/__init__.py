"""Vulnerability exposure: the case's inventory (CSV, CycloneDX SBOM) against the CVEs
APT40 exploits (bundled, with version ranges) and the CISA KEV catalogue (``--kev``)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from packaging.version import InvalidVersion, Version

from tidehunt.errors import ConfigError
from tidehunt.yamlconf import load_bundled

MAX_BYTES = 64 << 20


@dataclass
class Asset:
    """One product on one host."""

    host: str | None
    product: str
    vendor: str | None = None
    version: str | None = None
    purl: str | None = None
    cpe: str | None = None
    internet_facing: bool | None = None
    source_file: str = ""
    #: Built in-house (no vendor advisory covers it): the inventory's ``custom`` column.
    custom: bool = False


@cache
def apt40_catalogue() -> dict[str, Any]:
    """The bundled APT40 CVE list with affected version ranges."""
    text = (resources.files("tidehunt") / "data" / "vuln" / "apt40_cves.yml").read_text("utf-8")
    return dict(load_bundled(text))


def version(v: str | None) -> Version | None:
    """A comparable version: ``2.0-beta9`` -> 2.0b9; None if it cannot be read."""
    if not v:
        return None
    s = str(v).strip().lower().lstrip("v")
    s = re.sub(r"[-_.]?(beta|b)(\d+)", r"b\2", s)
    s = re.sub(r"[-_.]?(alpha|a)(\d+)", r"a\2", s)
    s = re.sub(r"[-_.]?(rc)(\d+)", r"rc\2", s)
    s = re.sub(r"[-+](final|ga|release)$", "", s)
    try:
        return Version(s)
    except InvalidVersion:
        m = re.match(r"^\d+(\.\d+)*", s)
        try:
            return Version(m.group(0)) if m else None
        except InvalidVersion:
            return None


def affected(ver: str | None, ranges: list[dict[str, Any]]) -> bool | None:
    """True/False for a version in or outside the ranges; None when it is unknown."""
    v = version(ver)
    if v is None:
        return None
    for r in ranges:
        lo, hi = version(str(r.get("from", "0"))), version(str(r["fixed"]))
        if lo is not None and hi is not None and lo <= v < hi:
            return True
    return False


def _norm(s: str | None) -> str:
    return re.sub(r"[^a-z0-9]+", " ", (s or "").lower()).strip()


def matches_product(asset: Asset, products: list[dict[str, Any]]) -> bool:
    """The asset is one of the catalogue entry's products (name, alias or package URL)."""
    name = _norm(asset.product)
    full = _norm(f"{asset.vendor or ''} {asset.product}")
    for p in products:
        names = {_norm(n) for n in p.get("names", [])}
        if name in names or full in names:
            return True
        purl = p.get("purl")
        if purl and asset.purl and asset.purl.lower().split("@", 1)[0] == purl.lower():
            return True
    return False


def read_inventory(path: str | Path) -> list[Asset]:
    """Assets of a CSV (host, product, vendor, version[, internet_facing, purl, cpe]) or a
    CycloneDX SBOM (JSON; every component, the SBOM's subject as the host)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: inventory not readable: {exc.strerror or exc}") from exc
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{p}: inventory larger than {MAX_BYTES >> 20} MiB")
    if data.lstrip()[:1] == b"{":
        return _cyclonedx(p, data)
    return _csv(p, data.decode("utf-8-sig", "replace"))


def _truthy(v: str | None) -> bool | None:
    if v is None or str(v).strip() == "":
        return None
    return str(v).strip().lower() in ("1", "true", "yes", "y", "internet", "public", "dmz")


def _csv(p: Path, text: str) -> list[Asset]:
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "product" not in {k.strip().lower() for k in rows[0] if k}:
        raise ConfigError(f"{p}: inventory CSV needs a header with at least product "
                          "(and host, vendor, version, internet_facing)")
    out = []
    for r in rows:
        r = {(k or "").strip().lower(): (v or "").strip() for k, v in r.items()}
        if not r.get("product"):
            continue
        out.append(Asset(r.get("host") or None, r["product"], r.get("vendor") or None,
                         r.get("version") or None, r.get("purl") or None,
                         r.get("cpe") or None,
                         _truthy(r.get("internet_facing") or r.get("exposure")), str(p),
                         bool(_truthy(r.get("custom") or r.get("in_house")))))
    return out


def _cyclonedx(p: Path, data: bytes) -> list[Asset]:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{p}: not JSON: {exc}") from exc
    if doc.get("bomFormat") != "CycloneDX":
        raise ConfigError(f"{p}: JSON that is not a CycloneDX SBOM (bomFormat)")
    subject = ((doc.get("metadata") or {}).get("component") or {})
    host = subject.get("name")
    props = {x.get("name"): x.get("value") for x in subject.get("properties") or []
             if isinstance(x, dict)}
    facing = _truthy(props.get("tidehunt:internet_facing"))
    out = []

    def walk(comps: list[Any]) -> None:
        for c in comps or []:
            if not isinstance(c, dict):
                continue
            if c.get("name"):
                out.append(Asset(host, str(c["name"]), c.get("group") or c.get("publisher"),
                                 c.get("version"), c.get("purl"), c.get("cpe"), facing,
                                 str(p)))
            walk(c.get("components") or [])

    walk(doc.get("components") or [])
    return out


@dataclass
class KevEntry:
    """One CISA KEV entry."""

    cve: str
    vendor: str
    product: str
    name: str
    added: str
    due: str
    ransomware: str


def read_kev(path: str | Path) -> list[KevEntry]:
    """The CISA KEV catalogue (its JSON feed)."""
    p = Path(path)
    try:
        doc = orjson.loads(p.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"{p}: KEV catalogue not readable: {exc}") from exc
    vulns = doc.get("vulnerabilities") if isinstance(doc, dict) else None
    if not isinstance(vulns, list):
        raise ConfigError(f"{p}: not the CISA KEV JSON (no vulnerabilities list)")
    return [KevEntry(v.get("cveID", ""), v.get("vendorProject", ""), v.get("product", ""),
                     v.get("vulnerabilityName", ""), v.get("dateAdded", ""),
                     v.get("dueDate", ""), v.get("knownRansomwareCampaignUse", ""))
            for v in vulns if isinstance(v, dict)]


@dataclass
class Exposure:
    """One asset exposed to one CVE."""

    asset: Asset
    cve: str
    name: str
    apt40: str | None
    kev_added: str | None
    kev_due: str | None
    ransomware: str | None
    version_known: bool
    exploit_uri: str | None = None
    notes: list[str] = field(default_factory=list)

    def rank(self) -> tuple[int, int, str]:
        """APT40 first, then internet-facing, then the oldest KEV due date."""
        return (0 if self.apt40 else 1, 0 if self.asset.internet_facing else 1,
                self.kev_due or "9999")


def exposures(assets: list[Asset], kev: list[KevEntry] | None = None) -> list[Exposure]:
    """Every (asset, CVE) the catalogues say applies, APT40's first."""
    cat = apt40_catalogue()
    out: list[Exposure] = []
    named = set()
    for a in assets:
        for c in cat["cves"]:
            if not c.get("products") or not matches_product(a, c["products"]):
                continue
            hit = affected(a.version, c.get("affected") or [])
            named.add((id(a), c["cve"]))  # decided here, KEV's product match is not needed
            if hit is False:
                continue
            k = c.get("kev") or {}
            e = Exposure(a, c["cve"], c["name"], c.get("apt40"), str(k.get("added") or ""),
                         str(k.get("due") or ""), k.get("ransomware"), hit is True,
                         c.get("exploit_uri"))
            if hit is None:
                e.notes.append("version unknown: check it")
            out.append(e)
        for k2 in kev or []:
            if (id(a), k2.cve) in named:
                continue
            if _norm(k2.product) and _norm(k2.product) == _norm(a.product) and (
                    not a.vendor or _norm(k2.vendor) in (_norm(a.vendor), "")):
                out.append(Exposure(a, k2.cve, k2.name, None, k2.added, k2.due, k2.ransomware,
                                    False, None, ["KEV names the product, not the versions: "
                                                  "check this version against the advisory"]))
        if a.custom and a.internet_facing:
            out.append(Exposure(
                a, "IN-HOUSE-APP", "internet-facing in-house web application", None, None,
                None, None, False, None,
                ["no vendor advisory covers it; APT40 came in through such an application's "
                 "file upload (ASD-24): check its upload and input handling and put it behind "
                 "a WAF"]))
    out.sort(key=lambda e: (e.rank(), e.asset.host or "", e.asset.product, e.cve))
    return out


def kev_overdue(e: Exposure, today: date | None = None) -> bool:
    """The KEV remediation due date has passed."""
    if not e.kev_due:
        return False
    try:
        return date.fromisoformat(e.kev_due) < (today or datetime.now(UTC).date())
    except ValueError:
        return False
