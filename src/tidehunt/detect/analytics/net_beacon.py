"""Beaconing, scored RITA-style from the parts a reader can check: how regular the
intervals are, how regular the sizes are, and how much of the span the beats cover."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import FLOW_EVIDENCE_SQL, NET_PARTITION, host_of
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, has_table, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

MIN_CONNECTIONS = 20
THRESHOLD = 0.8
#: A gap this many times the median is a pause (night, weekend, a sleeping implant that
#: beats only in working hours) and is left out of the interval statistics.
BREAK = 10
#: A beacon lasts (seconds), and beats no faster than this: bursts are sessions.
MIN_SPAN = 1800
MIN_GAP = 5
#: Ports whose periodic traffic is infrastructure (DNS, NTP, NetBIOS, mDNS, LLMNR, DHCP,
#: SSDP, Kerberos, LDAP, global catalogue).
QUIET_PORTS = (53, 123, 137, 138, 5353, 5355, 67, 68, 1900, 88, 389, 636, 3268, 3269)


class NetBeacon(Analytic):
    """A source beating to one destination at regular intervals with regular sizes."""

    NAME: ClassVar[str] = "net_beacon"
    READS: ClassVar[frozenset[str]] = frozenset()
    READS_ANY: ClassVar[frozenset[str]] = frozenset({"net_conn", "proxy"})
    #: Every finding is of one client (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = NET_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0051", "Beaconing to one destination", "high",
        ["T1071.001", "T1573", "T1102"], ["command-and-control"],
        f"At least {MIN_CONNECTIONS} connections or proxied requests from one source to one "
        "destination (server name, else address) and port, scored from five parts, each 0 "
        "to 1: interval skew (1 - |Bowley skewness| of the gaps), interval dispersion "
        "(1 - median absolute deviation / median gap), coverage (connections x median gap "
        f"/ the time they span, pauses of over {BREAK} gaps left out), size skew and size "
        f"dispersion (the same over bytes sent). The score is their mean; {THRESHOLD} or "
        "more is a beacon, 0.9 or more high. It must last 30 minutes with gaps of 5 s or "
        f"more (bursts are sessions). Infrastructure ports ({', '.join(map(str, QUIET_PORTS))})"
        " are left out. Jitter of ten or twenty per cent still scores as a beacon, as the "
        "dispersion is relative to the gap.",
        ["https://attack.mitre.org/techniques/T1071/001/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (source, destination, port)."""
        if not has_table(con, "net_flow"):
            return
        quiet = ", ".join(map(str, QUIET_PORTS))
        rows = query(con, f"""
            WITH f AS (
                SELECT f.*, coalesce(f.name, f.dst_ip) AS dest FROM net_flow f
                WHERE coalesce(f.dst_port, 0) NOT IN ({quiet})
                  AND coalesce(f.proto, 'tcp') <> 'icmp'),
            pairs AS (SELECT src_ip, dest, dst_port FROM f GROUP BY ALL
                      HAVING count(*) >= {MIN_CONNECTIONS}),
            d AS (
                SELECT f.*, epoch(f.ts) - lag(epoch(f.ts)) OVER w AS gap
                FROM f SEMI JOIN pairs p ON p.src_ip = f.src_ip AND p.dest = f.dest
                     AND p.dst_port IS NOT DISTINCT FROM f.dst_port
                WINDOW w AS (PARTITION BY f.src_ip, f.dest, f.dst_port ORDER BY f.ts)),
            m0 AS (SELECT src_ip, dest, dst_port, median(gap) AS g0 FROM d GROUP BY ALL),
            k AS (SELECT d.* FROM d JOIN m0 USING (src_ip, dest, dst_port)
                  WHERE d.gap IS NULL OR d.gap <= {BREAK} * m0.g0),
            q AS (
                SELECT src_ip, dest, dst_port, count(*) AS n,
                       quantile_cont(gap, [0.25, 0.5, 0.75]) AS gq,
                       quantile_cont(coalesce(bytes_out, 0), [0.25, 0.5, 0.75]) AS bq,
                       sum(gap) AS span, min(ts) AS t0, max(ts) AS t1,
                       sum(coalesce(bytes_out, 0))::BIGINT AS up,
                       min(dst_ip) AS dst_ip, {FLOW_EVIDENCE_SQL} AS ev
                FROM k GROUP BY ALL),
            m AS (
                SELECT q.*,
                       (SELECT median(abs(d.gap - q.gq[2])) FROM k d
                        WHERE d.src_ip = q.src_ip AND d.dest = q.dest
                          AND d.dst_port IS NOT DISTINCT FROM q.dst_port) AS gmad,
                       (SELECT median(abs(coalesce(d.bytes_out, 0) - q.bq[2])) FROM k d
                        WHERE d.src_ip = q.src_ip AND d.dest = q.dest
                          AND d.dst_port IS NOT DISTINCT FROM q.dst_port) AS bmad
                FROM q WHERE q.gq[2] > 0),
            s AS (
                SELECT m.*,
                       CASE WHEN gq[3] = gq[1] THEN 1.0
                            ELSE 1 - abs((gq[1] + gq[3] - 2 * gq[2]) / (gq[3] - gq[1])) END
                           AS ts_skew,
                       greatest(0, 1 - gmad / gq[2]) AS ts_mad,
                       least(1, n * gq[2] / greatest(span, 1)) AS cover,
                       CASE WHEN bq[3] = bq[1] THEN 1.0
                            ELSE 1 - abs((bq[1] + bq[3] - 2 * bq[2]) / (bq[3] - bq[1])) END
                           AS ds_skew,
                       CASE WHEN bq[2] = 0 THEN CASE WHEN bmad = 0 THEN 1.0 ELSE 0.0 END
                            ELSE greatest(0, 1 - bmad / bq[2]) END AS ds_mad
                FROM m),
            r AS (SELECT s.*, (ts_skew + ts_mad + cover + ds_skew + ds_mad) / 5 AS score
                  FROM s WHERE epoch(t1 - t0) >= {MIN_SPAN} AND gq[2] >= {MIN_GAP})
            SELECT {host_of('src_ip')} AS host, src_ip AS src, dest AS dst,
                   CASE WHEN score >= 0.9 THEN 'high' ELSE 'medium' END AS level,
                   {host_of('src_ip')} || ' beat ' || n || ' times to ' || dest ||
                   coalesce(':' || dst_port, '') || ' from ' || strftime(t0, '%Y-%m-%d %H:%M')
                   || ' to ' || strftime(t1, '%Y-%m-%d %H:%M') || ' UTC, every ' ||
                   round(gq[2], 1) || ' s (median; deviation ' || round(gmad, 1) ||
                   ' s), ' || format_bytes(bq[2]::BIGINT) || ' out per beat. Score ' ||
                   round(score, 2) || ' = mean of interval skew ' || round(ts_skew, 2) ||
                   ', interval dispersion ' || round(ts_mad, 2) || ', coverage ' ||
                   round(cover, 2) || ', size skew ' || round(ds_skew, 2) ||
                   ', size dispersion ' || round(ds_mad, 2) AS summary,
                   {{'host': src_ip, 'destination': dest, 'port': dst_port,
                     'address': dst_ip, 'connections': n, 'median_gap_s': gq[2],
                     'gap_mad_s': gmad, 'score': round(score, 3),
                     'interval_skew': round(ts_skew, 3), 'interval_dispersion':
                     round(ts_mad, 3), 'coverage': round(cover, 3),
                     'size_skew': round(ds_skew, 3), 'size_dispersion': round(ds_mad, 3)}}
                       AS matched, ev
            FROM r WHERE score >= {THRESHOLD} ORDER BY score DESC, src_ip, dest""")
        yield from findings_from_rows(self.META, rows, "net_conn")
