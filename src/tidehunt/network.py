"""The cloud-service catalogue, and the ``net_cloud`` view the network analytics share:
every connection that reached a catalogued service, named through its TLS SNI or HTTP
Host (same Zeek uid) or, failing those, a DNS answer the client got shortly before."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from tidehunt.errors import ConfigError


@cache
def _bundled() -> dict[str, Any]:
    text = (resources.files("tidehunt") / "data" / "network" / "cloud_services.yml"
            ).read_text("utf-8")
    return dict(yaml.safe_load(text))


def catalogue(extra: str | None = None) -> pa.Table:
    """(service, category, domain) rows of the bundled catalogue and an extra file."""
    docs = [_bundled()]
    if extra:
        try:
            docs.append(yaml.safe_load(Path(extra).read_bytes()) or {})
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{extra}: cloud-service catalogue not readable: {exc}") from exc
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


def net_cloud_sql(have: set[str]) -> str:
    """The ``net_cloud`` view over the tables the case has (net_conn, and tls, http, dns
    when present): each connection to a catalogued service, with the name that tied it."""
    names = [q for t, q in (("tls", "SELECT uid, server_name AS name FROM tls "
                                    "WHERE server_name IS NOT NULL"),
                            ("http", "SELECT uid, http_host AS name FROM http "
                                     "WHERE http_host IS NOT NULL")) if t in have]
    names_sql = " UNION ALL ".join(names) or "SELECT NULL::VARCHAR AS uid, " \
        "NULL::VARCHAR AS name WHERE false"
    by_dns = ("(SELECT arg_max(d.query, d.dts) FROM dnsmap d WHERE d.client = n.src_ip "
              "AND d.ip = n.dst_ip AND d.dts BETWEEN n.ts - INTERVAL 6 HOUR AND n.ts)")
    dnsmap = ("SELECT src_ip AS client, unnest(string_split(answers, ',')) AS ip, query, "
              "ts AS dts FROM dns WHERE answers IS NOT NULL") if "dns" in have else (
        "SELECT NULL::VARCHAR AS client, NULL::VARCHAR AS ip, NULL::VARCHAR AS query, "
        "NULL::TIMESTAMPTZ AS dts WHERE false")
    return f"""
CREATE VIEW net_cloud AS
WITH names AS ({names_sql}),
byuid AS (SELECT uid, min(name) AS name FROM names GROUP BY uid),
named AS (SELECT c.*, b.name AS sni FROM net_conn c LEFT JOIN byuid b USING (uid)),
dnsmap AS ({dnsmap}),
res AS (SELECT n.* EXCLUDE (sni), coalesce(n.sni, {by_dns}) AS name FROM named n)
SELECT res.*, cat.service AS cloud_service, cat.category AS cloud_category
FROM res JOIN cloud_catalogue cat
  ON res.name = cat.domain OR res.name LIKE '%.' || cat.domain
"""
