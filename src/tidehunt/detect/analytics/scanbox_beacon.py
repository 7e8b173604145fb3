"""ScanBox watering-hole beacons: the reconnaissance framework's URL grammar."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    DECODED_QUERY,
    DECODED_STEM,
    EVIDENCE_SQL,
    HOST_SQL,
    Analytic,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

#: ScanBox's collection URLs: /i/?..., /i/v.php?m=..., /i/k.php?data=...
BEACON_RX = r"(^|/)i/$|(^|/)i/v\.php$|(^|/)i/k\.php$"
QUERY_RX = r"(^|&)(m|data)=|^[a-z0-9_]+=.+"


class ScanboxBeacon(Analytic):
    """Requests in ScanBox's beacon grammar, seen by a server or a proxy."""

    NAME: ClassVar[str] = "scanbox_beacon"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access"})
    #: Every finding is of one server (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"web_access": HOST_SQL}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0011", "ScanBox watering-hole beacon request", "high",
        ["T1189", "T1592", "T1056.003"], ["initial-access", "reconnaissance", "collection"],
        "Requests follow ScanBox's collection grammar (/i/?..., /i/v.php?m=..., "
        "/i/k.php?data=...). On a site you own it means injected ScanBox script reports "
        "visitors' software and keystrokes; in a proxy log it means a user visited a "
        "watering hole.",
        ["https://attack.mitre.org/techniques/T1189/",
         "https://attack.mitre.org/groups/G0065/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, client, URI)."""
        rows = query(con, f"""
            WITH r AS (SELECT *, {DECODED_STEM} AS s, {DECODED_QUERY} AS q FROM web_access
                       WHERE uri_query IS NOT NULL)
            SELECT {HOST_SQL} AS host, client_ip AS src, uri_stem AS dst,
                   count(*) || ' ScanBox-style beacon request(s) to ' || uri_stem ||
                   ' from ' || coalesce(client_ip, '?') AS summary,
                   {{'uri': uri_stem, 'client_ip': client_ip, 'requests': count(*),
                     'first_query': left(arg_min(uri_query, (ts, uri_query))
                         FILTER (WHERE ts IS NOT NULL), 300),
                     'referer': arg_min(referer, (ts, referer))
                         FILTER (WHERE ts IS NOT NULL)}} AS matched,
                   {EVIDENCE_SQL} AS ev
            FROM r WHERE regexp_matches(s, ?) AND regexp_matches(q, ?)
            GROUP BY 1, 2, 3 ORDER BY min(ts)""", [BEACON_RX, QUERY_RX])
        yield from findings_from_rows(self.META, rows)
