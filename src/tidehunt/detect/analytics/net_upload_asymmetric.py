"""Large one-way uploads to internet addresses that are not a catalogued cloud service:
bytes out far above bytes in, per host, destination and day."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import (
    FLOW_EVIDENCE_SQL,
    NET_PARTITION,
    host_of,
    level_sql,
    parts_sql,
)
from tidehunt.detect.analytics.base import (
    Analytic,
    Prepared,
    findings_from_rows,
    has_table,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

MIN_BYTES = 50 << 20
RATIO = 10


class NetUploadAsymmetric(Analytic):
    """A host sent at least 50 MiB to one internet destination in a day, ten times what
    it received from it; cloud services are th-analytic-0046's."""

    NAME: ClassVar[str] = "net_upload_asymmetric"
    READS: ClassVar[frozenset[str]] = frozenset()
    READS_ANY: ClassVar[frozenset[str]] = frozenset({"net_conn", "proxy"})
    #: --engine spark: by client, in two stages: the first day each destination was
    #: reached is a minimum per bucket of clients, read (as a minimum) by the second.
    PARTITION: ClassVar[Mapping[str, str]] = NET_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0047", "One-way upload to an internet address", "high",
        ["T1048", "T1041"], ["exfiltration"],
        f"In one day a host sent at least {MIN_BYTES >> 20} MiB to one internet destination "
        f"(by server name, else address) that is not a catalogued cloud service, at least "
        f"{RATIO} times what it received. Score parts: volume, the out/in ratio, a "
        "destination no host of the case reached before that day, a port other than 80 "
        "and 443, and the share sent outside business hours.",
        ["https://attack.mitre.org/techniques/T1048/"], __name__)

    def prepared(self, con: Any) -> list[Prepared]:
        """The first day any client reached each destination (by name, else address)."""
        return [Prepared("nua_first", "SELECT coalesce(name, dst_ip) AS dest, "
                         "min(date_trunc('day', ts)) AS d FROM net_flow GROUP BY 1",
                         NET_PARTITION)]

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, destination, day)."""
        if not has_table(con, "net_flow"):
            return
        score, why = parts_sql(
            ("up >= 1073741824", "30", "'at least 1 GiB'"),
            ("up < 1073741824", "15", "'at least 50 MiB'"),
            ("up >= 100 * greatest(down, 1)", "25",
             "'out/in ' || round(up / greatest(down, 1))::BIGINT"),
            ("up < 100 * greatest(down, 1)", "15",
             "'out/in ' || round(up / greatest(down, 1), 1)"),
            ("first_any >= day", "15", "'destination new to the case that day'"),
            ("NOT list_has_all([80, 443], ports)", "10",
             "'port(s) ' || array_to_string(ports, ',')"),
            ("off_up >= up / 2", "15", "'mostly outside business hours'"))
        rows = query(con, f"""
            WITH f AS (
                SELECT n.*, coalesce(n.name, n.dst_ip) AS dest,
                       date_trunc('day', n.ts) AS day
                FROM net_flow n LEFT JOIN net_addr a ON a.ip = n.dst_ip
                WHERE coalesce(a.public, n.dst_ip IS NULL AND n.evidence_table = 'proxy')),
            sums AS (
                SELECT src_ip, dest, day, sum(coalesce(bytes_out, 0))::BIGINT AS up,
                       sum(coalesce(bytes_in, 0))::BIGINT AS down
                FROM f GROUP BY src_ip, dest, day
                HAVING sum(coalesce(bytes_out, 0)) >= {MIN_BYTES}
                   AND sum(coalesce(bytes_out, 0))
                       >= {RATIO} * greatest(sum(coalesce(bytes_in, 0)), 1)),
            flagged AS (
                SELECT s.* FROM sums s
                WHERE NOT EXISTS (SELECT 1 FROM cloud_name cn WHERE cn.name = s.dest)),
            cand AS (
                SELECT g.src_ip, g.dest, g.day, any_value(g.up) AS up,
                       any_value(g.down) AS down, count(*) AS n,
                       sum(CASE WHEN NOT in_business(f.ts) THEN coalesce(f.bytes_out, 0) END)
                           AS off_up,
                       list(DISTINCT f.dst_port ORDER BY f.dst_port) AS ports,
                       string_agg(DISTINCT f."user", ', ' ORDER BY f."user") AS users,
                       {FLOW_EVIDENCE_SQL} AS ev,
                       (SELECT min(x.d) FROM nua_first x WHERE x.dest = g.dest) AS first_any
                FROM flagged g JOIN f ON f.src_ip = g.src_ip AND f.dest = g.dest
                                    AND f.day = g.day
                GROUP BY g.src_ip, g.dest, g.day),
            s AS (SELECT *, {score} AS score, {why} AS why FROM cand)
            SELECT {host_of('src_ip')} AS host, src_ip AS src, dest AS dst,
                   split_part(users, ', ', 1) AS "user", {level_sql('score')} AS level,
                   {host_of('src_ip')} || ' sent ' || format_bytes(up) || ' to ' || dest ||
                   ' on ' || strftime(day, '%Y-%m-%d') || ' over ' || n ||
                   ' connection(s) and received ' || format_bytes(down) || '. Score ' ||
                   score || ': ' || why AS summary,
                   {{'host': src_ip, 'destination': dest, 'bytes_out': up, 'bytes_in': down,
                     'ports': array_to_string(ports, ','), 'score': score,
                     'day': strftime(day, '%Y-%m-%d')}} AS matched, ev
            FROM s ORDER BY day, src_ip, dest""")
        yield from findings_from_rows(self.META, rows, "net_conn")
