"""Long-lived connections: interactive C2 and tunnels (SSF, HTRAN, reGeorg) hold one
connection open for as long as the operator works."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import (
    NET_PARTITION,
    TABLE_EVIDENCE_SQL,
    host_of,
    level_sql,
    parts_sql,
)
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, has_table, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

MIN_SECONDS = 1800
#: Internal services whose sessions are long by nature (SMB, RDP, LDAP, RPC, WinRM...).
SESSION_PORTS = (22, 88, 135, 139, 389, 445, 636, 1433, 3268, 3389, 5985, 5986)
COMMON_PORTS = (80, 443, 8080, 8443, 22, 21, 25, 53, 110, 143, 993, 995, 3389)


class NetLongConnection(Analytic):
    """A connection open at least 30 minutes, outside the internal session protocols."""

    NAME: ClassVar[str] = "net_long_connection"
    READS: ClassVar[frozenset[str]] = frozenset({"net_conn"})
    #: Every finding is of one client (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = NET_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0052", "Long-lived connection", "medium",
        ["T1071", "T1572", "T1090"], ["command-and-control"],
        f"A connection that lasted at least {MIN_SECONDS // 60} minutes, leaving out "
        "internal SMB, RDP, LDAP, RPC, WinRM and SSH sessions (they are checked when the "
        "far end is public). Score parts: duration (4 hours or more), a public far end, "
        "a port other than the common ones, a near-idle channel (under 1 KiB/s, as an "
        "operator's shell or a tunnel waiting) and much more in than out (a download "
        "channel).",
        ["https://attack.mitre.org/techniques/T1572/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per connection."""
        if not has_table(con, "net_conn"):
            return
        common = ", ".join(map(str, COMMON_PORTS))
        score, why = parts_sql(
            ("duration >= 14400", "30", "round(duration / 3600, 1) || ' hours'"),
            ("duration < 14400", "20", "round(duration / 60)::BIGINT || ' minutes'"),
            ("coalesce(public, false)", "20", "'public far end'"),
            (f"dst_port NOT IN ({common})", "20", "'port ' || dst_port"),
            ("(coalesce(bytes_out, 0) + coalesce(bytes_in, 0)) / duration < 1024", "10",
             "'near idle (' || format_bytes(((coalesce(bytes_out, 0) + "
             "coalesce(bytes_in, 0)) / duration)::BIGINT) || '/s)'"),
            ("coalesce(bytes_in, 0) > 10 * greatest(coalesce(bytes_out, 0), 1) "
             "AND bytes_in > 1048576", "10", "'download channel'"))
        ev = TABLE_EVIDENCE_SQL.format(t="net_conn")
        sessions = ", ".join(map(str, SESSION_PORTS))
        rows = query(con, f"""
            WITH c AS (
                SELECT c.*, a.public FROM net_conn c LEFT JOIN net_addr a ON a.ip = c.dst_ip
                WHERE c.duration >= {MIN_SECONDS}
                  AND (c.dst_port NOT IN ({sessions}) OR coalesce(a.public, false))),
            s AS (SELECT c.*, {score} AS score, {why} AS why FROM c),
            g AS (SELECT src_ip, dst_ip, dst_port, proto, max(duration) AS duration,
                         count(*) AS n, max(score) AS score, arg_max(why, (score, why))
                             FILTER (WHERE score IS NOT NULL) AS why,
                         sum(coalesce(bytes_out, 0))::BIGINT AS up,
                         sum(coalesce(bytes_in, 0))::BIGINT AS down, min(ts) AS t0,
                         {ev} AS ev
                  FROM s GROUP BY ALL)
            SELECT {host_of('src_ip')} AS host, src_ip AS src, dst_ip AS dst,
                   {level_sql('score', 80, 60)} AS level,
                   {host_of('src_ip')} || ' held ' || n || ' connection(s) to ' || dst_ip ||
                   ':' || dst_port || '/' || proto || ' from ' ||
                   strftime(t0, '%Y-%m-%d %H:%M') || ' UTC, the longest ' ||
                   round(duration / 60)::BIGINT || ' min, ' || format_bytes(up) || ' out, ' ||
                   format_bytes(down) || ' in. Score ' || score || ': ' || why AS summary,
                   {{'host': src_ip, 'destination': dst_ip, 'port': dst_port,
                     'duration_s': duration, 'bytes_out': up, 'bytes_in': down,
                     'score': score}} AS matched, ev
            FROM g ORDER BY t0""")
        yield from findings_from_rows(self.META, rows, "net_conn")
