"""The cloud-service catalogue, and the ``net_cloud`` view the network analytics share:
every connection that reached a catalogued service, named through its TLS SNI or HTTP
Host (same Zeek uid) or, failing those, a DNS answer the client got shortly before."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from tidehunt.errors import ConfigError
from tidehunt.yamlconf import load_bundled


@cache
def _bundled() -> dict[str, Any]:
    text = (resources.files("tidehunt") / "data" / "network" / "cloud_services.yml"
            ).read_text("utf-8")
    return dict(load_bundled(text))


def _docs(extra: str | None) -> list[dict[str, Any]]:
    docs = [_bundled()]
    if extra:
        try:
            docs.append(yaml.safe_load(Path(extra).read_bytes()) or {})
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{extra}: cloud-service catalogue not readable: {exc}") from exc
    return docs


def api_table(extra: str | None = None) -> pa.Table:
    """(service, host, path) of the catalogue's API endpoints (path '' for any)."""
    rows: dict[str, list[str]] = {"service": [], "host": [], "path": []}
    for d in _docs(extra):
        for name, s in (d.get("services") or {}).items():
            for ep in (s.get("api") or []) if isinstance(s, dict) else []:
                host, _, path = str(ep).lower().partition("/")
                rows["service"].append(str(name))
                rows["host"].append(host)
                rows["path"].append("/" + path if path else "")
    return pa.table(rows)


def catalogue(extra: str | None = None) -> pa.Table:
    """(service, category, domain) rows of the bundled catalogue and an extra file."""
    docs = _docs(extra)
    rows: dict[str, list[str]] = {"service": [], "category": [], "domain": []}
    for d in docs:
        for name, s in (d.get("services") or {}).items():
            if not isinstance(s, dict):
                raise ConfigError(f"cloud service {name!r} needs category and domains")
            for dom in s.get("domains") or []:
                rows["service"].append(str(name))
                rows["category"].append(str(s.get("category", "storage")))
                rows["domain"].append(str(dom).lower().strip("."))
    return pa.table(rows)


#: Columns of the ``net_cloud`` view (and of ``net_flow``, its uncatalogued superset).
FLOW_COLUMNS = ("ts", "src_ip", "dst_ip", "dst_port", "proto", "bytes_out", "bytes_in",
                "duration", "uid", "user", "user_agent", "method", "url", "name",
                "evidence_table", "source_file", "line", "_artefact", "_locator")


def net_flow_sql(have: set[str], into: str | None = None, *, table: bool = False) -> str:
    """``net_flow``: every connection (``net_conn``) and proxied request (``proxy``) as one
    shape, each named by the server name that tied it: TLS SNI or HTTP Host of the same
    Zeek uid, else the DNS answer the client got in the six hours before, else (proxy)
    the requested host. A view, or with ``into`` (a Parquet path) a COPY that computes it
    once for every analytic that reads it (the joins are the expensive part); with
    ``table`` a temporary table in memory (a Spark bucket's flows)."""
    names = [q for t, q in (("tls", "SELECT uid, server_name AS name, NULL AS ua, NULL AS m, "
                                    "NULL AS url FROM tls WHERE server_name IS NOT NULL"),
                            ("http", "SELECT uid, http_host AS name, user_agent AS ua, "
                                     "method AS m, uri AS url FROM http "
                                     "WHERE http_host IS NOT NULL")) if t in have]
    names_sql = " UNION ALL ".join(names) or (
        "SELECT NULL::VARCHAR AS uid, NULL::VARCHAR AS name, NULL::VARCHAR AS ua, "
        "NULL::VARCHAR AS m, NULL::VARCHAR AS url WHERE false")
    dnsmap = ("SELECT src_ip AS client, unnest(string_split(answers, ',')) AS ip, query, "
              "ts AS dts FROM dns WHERE answers IS NOT NULL") if "dns" in have else (
        "SELECT NULL::VARCHAR AS client, NULL::VARCHAR AS ip, NULL::VARCHAR AS query, "
        "NULL::TIMESTAMPTZ AS dts WHERE false")
    conn = "SELECT * FROM conn_named" if "net_conn" in have else None
    proxy = ("SELECT ts, src_ip, dst_ip, dst_port, 'tcp' AS proto, bytes_out, bytes_in, "
             "duration, NULL::VARCHAR AS uid, \"user\", user_agent, method, url, "
             "lower(url_host) AS name, 'proxy' AS evidence_table, source_file, line, "
             "_artefact, _locator FROM proxy") if "proxy" in have else None
    body = " UNION ALL BY NAME ".join(x for x in (conn, proxy) if x) or (
        "SELECT " + ", ".join(f"NULL AS {c}" for c in FLOW_COLUMNS) + " WHERE false")
    conn_named = ""
    if "net_conn" in have:
        conn_named = f""",
names AS ({names_sql}),
byuid AS (SELECT uid, min(name) AS name, min(ua) AS ua, min(m) AS m, min(url) AS url
          FROM names GROUP BY uid),
dnsmap AS ({dnsmap}),
named AS (SELECT c.*, b.name AS sni, b.ua, b.m, b.url AS b_url FROM net_conn c
          LEFT JOIN byuid b USING (uid)),
conn_named AS (
    SELECT n.ts, n.src_ip, n.dst_ip, n.dst_port, n.proto, n.bytes_out, n.bytes_in,
           n.duration, n.uid, NULL::VARCHAR AS "user", n.ua AS user_agent, n.m AS method,
           n.b_url AS url,
           coalesce(n.sni, CASE WHEN d.dts >= n.ts - INTERVAL 6 HOUR THEN d.query END)
               AS name,
           'net_conn' AS evidence_table, n.source_file, n.line, n._artefact, n._locator
    FROM named n ASOF LEFT JOIN dnsmap d
      ON d.client = n.src_ip AND d.ip = n.dst_ip AND n.ts >= d.dts)"""
    select = f"WITH dummy AS (SELECT 1){conn_named}\n{body}"
    if into:
        return f"COPY ({select}) TO '{into.replace(chr(39), chr(39) * 2)}' (FORMAT parquet)"
    return f"CREATE {'TEMP TABLE' if table else 'VIEW'} net_flow AS {select}"


#: Catalogued services of each distinct server name (the longest matching domain wins),
#: so the catalogue is matched once per name, not once per connection.
CLOUD_NAME_SQL = """
CREATE TEMP TABLE cloud_name AS
SELECT n.name, arg_max(cat.service, (length(cat.domain), cat.service)) AS cloud_service,
       arg_max(cat.category, (length(cat.domain), cat.service)) AS cloud_category
FROM (SELECT DISTINCT name FROM net_flow WHERE name IS NOT NULL) n
JOIN cloud_catalogue cat ON n.name = cat.domain OR n.name LIKE '%.' || cat.domain
GROUP BY n.name
"""


def net_cloud_sql(have: set[str]) -> str:
    """The ``net_cloud`` view: each flow of ``net_flow`` that reached a catalogued
    service, with the service and its category (``cloud_name``: one per name)."""
    return """
CREATE VIEW net_cloud AS
SELECT f.*, c.cloud_service, c.cloud_category FROM net_flow f JOIN cloud_name c USING (name)
"""


#: Addresses that never leave the organisation: RFC 1918, CGNAT, loopback, link-local,
#: multicast, broadcast, unspecified, IPv6 ULA. Documentation ranges count as public, as
#: generated test traffic uses them for the internet.
INTERNAL_NETS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4", "0.0.0.0/8", "::1/128", "::/128",
    "fc00::/7", "fe80::/10", "ff00::/8"))
ADDR_SCHEMA = pa.schema([("ip", pa.string()), ("zone", pa.string()), ("role", pa.string()),
                         ("isolated", pa.bool_()), ("public", pa.bool_()),
                         ("broadcast", pa.bool_()),
                         ("risky", pa.string()), ("risky_list", pa.string())])


class PrefixMap:
    """Longest-prefix lookup of addresses in many networks: one dict per prefix length,
    so a lookup costs a mask per distinct length, whatever the number of networks."""

    def __init__(self, items: Iterable[tuple[Any, Any]]) -> None:
        self._by: dict[tuple[int, int], dict[int, Any]] = {}
        for net, value in items:
            n = net if isinstance(net, ipaddress.IPv4Network | ipaddress.IPv6Network) \
                else ipaddress.ip_network(str(net), strict=False)
            self._by.setdefault((n.version, n.prefixlen), {}).setdefault(
                int(n.network_address), value)
        self._order = sorted(self._by, key=lambda k: -k[1])

    def get(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Any:
        """The value of the longest network holding ``addr``, or None."""
        bits = 32 if addr.version == 4 else 128
        a = int(addr)
        for version, plen in self._order:
            if version != addr.version:
                continue
            key = a >> (bits - plen) << (bits - plen) if plen else 0
            hit = self._by[(version, plen)].get(key)
            if hit is not None:
                return hit
        return None


def addr_table(ips: Iterable[str], org: Any = None,
               risky: list[tuple[str, Any, str]] | None = None) -> pa.Table:
    """What each address of the case is: its zone of the profile's policy (longest prefix),
    the zone's role and isolation, public or not, and the risky list (Tor, VPS, SOHO) it
    is on. One lookup per distinct address, never per event."""
    zones = PrefixMap((n, (z, ipaddress.ip_network(n))) for z in
                      (getattr(org, "zones", None) or ()) for n in z.networks)
    internal = PrefixMap((n, True) for n in INTERNAL_NETS)
    bad = PrefixMap((net, (cat, name)) for cat, net, name in (risky or []))
    cols: dict[str, list[Any]] = {f.name: [] for f in ADDR_SCHEMA}
    for ip in ips:
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            continue
        hit = zones.get(a)
        z, net = hit if hit else (None, None)
        r = bad.get(a)
        cast = a.is_multicast or str(a) == "255.255.255.255" or bool(
            net is not None and net.num_addresses > 2 and a == net.broadcast_address)
        for k, v in (("ip", ip), ("zone", z.name if z else None),
                     ("role", (z.role or None) if z else None),
                     ("isolated", bool(z and z.isolated)),
                     ("public", z is None and internal.get(a) is None),
                     ("broadcast", cast),
                     ("risky", r[0] if r else None), ("risky_list", r[1] if r else None)):
            cols[k].append(v)
    return pa.table(cols, schema=ADDR_SCHEMA)


#: Address columns of the tables whose addresses ``net_addr`` describes.
ADDR_COLUMNS = {"net_conn": ("src_ip", "dst_ip"), "proxy": ("src_ip", "dst_ip"),
                "dns": ("src_ip",), "http": ("src_ip", "dst_ip"), "tls": ("src_ip", "dst_ip")}


def host_ip_sql(have: set[str]) -> str:
    """The ``host_ip`` view: host names of addresses, from the profile's ``hosts`` and
    from Sysmon network events (event 3 initiated by the host: its SourceIp)."""
    parts = ["SELECT name AS host, ip FROM org_host"]
    if "windows" in have:
        parts.append("SELECT DISTINCT lower(host) AS host, SourceIp AS ip FROM windows "
                     "WHERE event_id = 3 AND provider ILIKE '%sysmon%' "
                     "AND lower(coalesce(Initiated, 'true')) = 'true' "
                     "AND SourceIp IS NOT NULL")
    return ("CREATE VIEW host_ip AS SELECT host, ip FROM (" + " UNION ".join(parts) +
            ") WHERE host IS NOT NULL AND ip IS NOT NULL")
