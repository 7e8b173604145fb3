"""Connections the organisation's zone policy does not allow: a DMZ host reaching a
domain controller, a web server opening SMB or RDP to workstations."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import (
    LATERAL_PORTS,
    NET_PARTITION,
    TABLE_EVIDENCE_SQL,
    host_of,
    violation_sql,
    zone_of,
)
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, has_table, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

ANSWERED = ("SF", "S1", "S2", "S3", "RSTO", "RSTR")


class NetZoneViolation(Analytic):
    """A connection between zones (or inside an isolated one) that no allow rule covers."""

    NAME: ClassVar[str] = "net_zone_violation"
    READS: ClassVar[frozenset[str]] = frozenset({"net_conn"})
    #: Every finding is of one client (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = NET_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0056", "Connection the zone policy does not allow", "medium",
        ["T1021", "T1021.001", "T1021.002", "T1570"], ["lateral-movement"],
        "Needs zones and allow rules in the organisation profile (--org). A connection "
        "from one zone to another, or inside an isolated zone, that no allow rule covers "
        "(zones, protocol and port); broadcast and multicast are left out. Critical "
        "when it was answered on a remote administration port (SSH, RPC, SMB, RDP, WinRM, "
        "VNC), high when answered, medium "
        "when only attempted. Segmentation is a defence layer: each violation is either "
        "a gap in the firewall or an intruder using one.",
        ["https://attack.mitre.org/techniques/T1021/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (source, destination, port, protocol)."""
        if not has_table(con, "net_conn") or not con.execute(
                "SELECT count(*) FROM org_zone").fetchone()[0]:
            return
        ok = ", ".join(f"'{s}'" for s in ANSWERED)
        lateral = ", ".join(map(str, LATERAL_PORTS))
        ev = TABLE_EVIDENCE_SQL.format(t="net_conn")
        rows = query(con, f"""
            WITH c AS (
                SELECT c.*, {zone_of('s')} AS sz, {zone_of('d')} AS dz,
                       s.isolated AND s.zone = d.zone AS iso, d.role AS drole
                FROM net_conn c JOIN net_addr s ON s.ip = c.src_ip
                JOIN net_addr d ON d.ip = c.dst_ip WHERE NOT d.broadcast),
            v AS (SELECT * FROM c
                  WHERE {violation_sql('sz', 'dz', 'proto', 'dst_port', 'iso')}),
            g AS (
                SELECT src_ip, dst_ip, dst_port, proto, sz, dz, count(*) AS n,
                       count(*) FILTER (WHERE conn_state IN ({ok})
                                        OR coalesce(bytes_in, 0) > 0) AS answered,
                       sum(coalesce(bytes_out, 0))::BIGINT AS up, min(ts) AS t0,
                       max(ts) AS t1, {ev} AS ev
                FROM v GROUP BY ALL)
            SELECT {host_of('src_ip')} AS host, src_ip AS src, dst_ip AS dst,
                   CASE WHEN answered > 0 AND dst_port IN ({lateral}) THEN 'critical'
                        WHEN answered > 0 THEN 'high' END AS level,
                   {host_of('src_ip')} || ' (' || sz || ') to ' || {host_of('dst_ip')} ||
                   ' (' || dz || ') on ' || coalesce(proto, '?') || '/' ||
                   coalesce(dst_port::VARCHAR, '?') || ': ' || n || ' connection(s), ' ||
                   answered || ' answered, ' || format_bytes(up) || ' sent, from ' ||
                   strftime(t0, '%Y-%m-%d %H:%M') || ' to ' || strftime(t1, '%Y-%m-%d %H:%M')
                   || ' UTC; no allow rule covers ' || sz || ' to ' || dz ||
                   CASE WHEN sz = dz THEN ' (isolated zone)' ELSE '' END AS summary,
                   {{'host': src_ip, 'destination': dst_ip, 'port': dst_port,
                     'proto': proto, 'src_zone': sz, 'dst_zone': dz, 'connections': n,
                     'answered': answered}} AS matched, ev
            FROM g ORDER BY t0""")
        yield from findings_from_rows(self.META, rows, "net_conn")
