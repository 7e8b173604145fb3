"""Where sign-ins come from: a MaxMind-format GeoIP database (``--geoip FILE.mmdb``) and
lists of risky networks (``--risky-networks FILE``: Tor exits, VPS ranges, known SOHO
routers), looked up once per distinct address of the case's ``auth`` table."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pyarrow as pa

from tidehunt.errors import ConfigError

GEO_SCHEMA = pa.schema([("ip", pa.string()), ("lat", pa.float64()), ("lon", pa.float64()),
                        ("country", pa.string()), ("city", pa.string())])
CLASS_SCHEMA = pa.schema([("ip", pa.string()), ("category", pa.string()),
                          ("list", pa.string())])


def geo_table(ips: list[str], mmdb: str | None) -> pa.Table:
    """Latitude, longitude, country and city of each address the database knows."""
    rows: dict[str, list[Any]] = {f.name: [] for f in GEO_SCHEMA}
    if not mmdb:
        return pa.table(rows, schema=GEO_SCHEMA)
    import maxminddb

    try:
        reader = maxminddb.open_database(mmdb)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise ConfigError(f"{mmdb}: not a MaxMind DB: {exc}") from exc
    with reader:
        for ip in ips:
            try:
                rec: Any = reader.get(ip)
            except ValueError:
                continue
            if not isinstance(rec, dict):
                continue
            loc = rec.get("location") or {}
            country = (rec.get("country") or {}).get("iso_code")
            city = ((rec.get("city") or {}).get("names") or {}).get("en")
            if loc.get("latitude") is None:
                continue
            for k, v in (("ip", ip), ("lat", float(loc["latitude"])),
                         ("lon", float(loc["longitude"])), ("country", country),
                         ("city", city)):
                rows[k].append(v)
    return pa.table(rows, schema=GEO_SCHEMA)


def load_risky(path: str | None) -> list[tuple[str, Any, str]]:
    """(category, network, list name) of a YAML of lists: ``tor:``, ``vps:``, ``soho:``,
    each a list of addresses or networks (or a path to a file of them, one a line)."""
    if not path:
        return []
    from tidehunt.yamlconf import load_yaml

    p = Path(path)
    doc = load_yaml(p, "risky-network lists") or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: expected categories (tor, vps, soho) of address lists")
    out = []
    for cat, items in doc.items():
        if isinstance(items, str):  # a file of addresses beside the YAML
            f = (p.parent / items) if not Path(items).is_absolute() else Path(items)
            items = [x.split("#")[0].strip() for x in f.read_text().splitlines()]
        for it in items or []:
            s = str(it).strip()
            if not s:
                continue
            try:
                out.append((str(cat), ipaddress.ip_network(s, strict=False), p.name))
            except ValueError as exc:
                raise ConfigError(f"{p}: {s!r} in {cat} is not an address or network") from exc
    return out


def class_table(ips: list[str], nets: list[tuple[str, Any, str]]) -> pa.Table:
    """Each address in a risky list, with its category."""
    rows: dict[str, list[Any]] = {f.name: [] for f in CLASS_SCHEMA}
    for ip in ips:
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            continue
        for cat, net, name in nets:
            if a.version == net.version and a in net:
                rows["ip"].append(ip)
                rows["category"].append(cat)
                rows["list"].append(name)
                break
    return pa.table(rows, schema=CLASS_SCHEMA)
