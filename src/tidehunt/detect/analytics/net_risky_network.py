"""Traffic to or from Tor exits, VPS ranges or compromised SOHO routers (the lists of
``--risky-networks``): APT40 routes through compromised SOHO devices and rented VPSs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import FLOW_EVIDENCE_SQL, NET_PARTITION, host_of
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, has_table, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class NetRiskyNetwork(Analytic):
    """A connection between a case address and one on a risky-network list."""

    NAME: ClassVar[str] = "net_risky_network"
    READS: ClassVar[frozenset[str]] = frozenset()
    READS_ANY: ClassVar[frozenset[str]] = frozenset({"net_conn", "proxy"})
    #: --engine spark: by client. Each finding's pair holds the flow's client either as
    #: the case address (to a risky server) or as the risky address (from it).
    PARTITION: ClassVar[Mapping[str, str]] = NET_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0055", "Traffic with a Tor, VPS or SOHO-router address", "medium",
        ["T1090.003", "T1584.008", "T1583.003"], ["command-and-control"],
        "A connection or proxied request to or from an address on the --risky-networks "
        "lists (tor, vps, soho, or any other category named there). High for Tor and "
        "SOHO lists and for inbound connections that were answered; APT40 uses "
        "compromised small-office routers and VPSs as its last hop (ASD advisory, 2024).",
        ["https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a",
         "https://attack.mitre.org/techniques/T1584/008/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (case address, risky address, direction)."""
        if not has_table(con, "net_flow"):
            return
        rows = query(con, f"""
            WITH f AS (
                SELECT f.*, CASE WHEN d.risky IS NOT NULL THEN 'to' ELSE 'from' END AS dir,
                       coalesce(d.risky, s.risky) AS risky,
                       coalesce(d.risky_list, s.risky_list) AS list,
                       CASE WHEN d.risky IS NOT NULL THEN f.src_ip ELSE f.dst_ip END AS inside,
                       CASE WHEN d.risky IS NOT NULL THEN f.dst_ip ELSE f.src_ip END AS outside
                FROM net_flow f LEFT JOIN net_addr d ON d.ip = f.dst_ip
                LEFT JOIN net_addr s ON s.ip = f.src_ip
                WHERE d.risky IS NOT NULL OR s.risky IS NOT NULL),
            g AS (
                SELECT inside, outside, dir, risky, list, count(*) AS n,
                       sum(coalesce(bytes_out, 0))::BIGINT AS up,
                       sum(coalesce(bytes_in, 0))::BIGINT AS down,
                       list(DISTINCT dst_port ORDER BY dst_port)[1:10] AS ports,
                       min(ts) AS t0, {FLOW_EVIDENCE_SQL} AS ev
                FROM f GROUP BY ALL)
            SELECT {host_of('inside')} AS host, inside AS src, outside AS dst,
                   CASE WHEN lower(risky) IN ('tor', 'soho')
                             OR (dir = 'from' AND down + up > 0) THEN 'high' END AS level,
                   {host_of('inside')} || CASE WHEN dir = 'to' THEN ' reached ' ELSE
                   ' was reached from ' END || outside || ' (' || risky || ', list ' ||
                   list || ') ' || n || ' time(s) from ' || strftime(t0, '%Y-%m-%d %H:%M') ||
                   ' UTC on port(s) ' || array_to_string(ports, ',') || '; ' ||
                   format_bytes(up) || ' out, ' || format_bytes(down) || ' in' AS summary,
                   {{'host': inside, 'address': outside, 'category': risky, 'list': list,
                     'direction': dir, 'connections': n}} AS matched, ev
            FROM g ORDER BY t0""")
        yield from findings_from_rows(self.META, rows, "net_conn")
