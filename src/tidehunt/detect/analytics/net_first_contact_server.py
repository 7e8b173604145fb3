"""A server's first contact with a cloud storage, code or paste service: servers do not
browse, so a new service is a channel an intruder opened."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import FLOW_EVIDENCE_SQL, NET_PARTITION, host_of
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

#: History a host needs before a contact counts as its first (hours).
HISTORY_HOURS = 24
#: Distinct internal clients that make an address a server, when no zone says so.
MIN_CLIENTS = 3


class NetFirstContactServer(Analytic):
    """A server reached a cloud service for the first time after a day of history."""

    NAME: ClassVar[str] = "net_first_contact_server"
    READS: ClassVar[frozenset[str]] = frozenset({"net_conn"})
    #: --engine spark: by client, in two stages. The first counts each address's
    #: internal clients and finds when each address was first seen, per bucket of
    #: clients (the counts add up: a bucket's clients are its own); the second reads
    #: those tables beside each bucket's flows.
    PARTITION: ClassVar[Mapping[str, str]] = NET_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0048", "Server's first contact with a cloud storage service", "medium",
        ["T1567.002", "T1102"], ["exfiltration", "command-and-control"],
        "A server reached a catalogued cloud storage, code, paste or transfer service for "
        f"the first time, after at least {HISTORY_HOURS} hours in which the case saw it "
        "without that service. A server is an address whose zone has role server in the "
        f"organisation profile, or that accepted connections from {MIN_CLIENTS} or more "
        "internal clients. High when the server sent at least 10 MiB to the service that "
        "day. Web servers and domain controllers have no reason to open Dropbox or GitHub; "
        "an intruder's tools do.",
        ["https://attack.mitre.org/techniques/T1567/002/"], __name__)

    def prepared(self, con: Any) -> list[Prepared]:
        """Internal clients per address, and when each address was first seen."""
        return [
            Prepared("nfcs_clients", """
                SELECT c.dst_ip AS ip, count(DISTINCT c.src_ip) AS n
                FROM net_conn c JOIN net_addr s ON s.ip = c.src_ip
                WHERE NOT s.public AND coalesce(c.bytes_in, 0) > 0 AND c.dst_port < 49152
                GROUP BY c.dst_ip""", NET_PARTITION),
            Prepared("nfcs_seen", """
                SELECT ip, min(ts) AS first_seen FROM (
                    SELECT src_ip AS ip, ts FROM net_flow
                    UNION ALL SELECT dst_ip, ts FROM net_flow) GROUP BY ip""", NET_PARTITION)]

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (server, service)."""
        if not has_table(con, "net_cloud"):
            return
        rows = query(con, f"""
            WITH inferred AS (
                SELECT ip FROM nfcs_clients GROUP BY ip HAVING sum(n) >= {MIN_CLIENTS}),
            servers AS (SELECT ip, 'zone role' AS why FROM net_addr WHERE role = 'server'
                        UNION SELECT ip, 'serves ' || {MIN_CLIENTS} || '+ clients'
                        FROM inferred),
            seen AS (SELECT ip AS src_ip, min(first_seen) AS first_seen FROM nfcs_seen
                     GROUP BY ip),
            firsts AS (
                SELECT src_ip, cloud_service, min(ts) AS t0 FROM net_cloud
                WHERE cloud_category IN ('storage', 'code', 'paste', 'transfer')
                GROUP BY ALL),
            cand AS (
                SELECT f.*, s.first_seen, v.why FROM firsts f
                JOIN (SELECT ip, min(why) AS why FROM servers GROUP BY ip) v
                  ON v.ip = f.src_ip
                JOIN seen s USING (src_ip)
                WHERE f.t0 >= s.first_seen + INTERVAL {HISTORY_HOURS} HOUR),
            day AS (
                SELECT c.src_ip, c.cloud_service, c.t0, c.first_seen, c.why,
                       sum(coalesce(n.bytes_out, 0))::BIGINT AS up, count(*) AS n,
                       min(n.name) AS name, {FLOW_EVIDENCE_SQL} AS ev
                FROM cand c JOIN net_cloud n ON n.src_ip = c.src_ip
                     AND n.cloud_service = c.cloud_service
                     AND n.ts BETWEEN c.t0 AND c.t0 + INTERVAL 1 DAY
                GROUP BY ALL)
            SELECT {host_of('src_ip')} AS host, src_ip AS src, cloud_service AS dst,
                   CASE WHEN up >= 10485760 THEN 'high' END AS level,
                   'Server ' || {host_of('src_ip')} || ' (' || why || ') first reached ' ||
                   cloud_service || ' (' || coalesce(name, '?') || ') at ' ||
                   strftime(t0, '%Y-%m-%d %H:%M') || ' UTC, ' ||
                   round(epoch(t0 - first_seen) / 3600)::BIGINT ||
                   ' hours after the case first saw it; it sent ' || format_bytes(up) ||
                   ' there in the next day over ' || n || ' connection(s)' AS summary,
                   {{'host': src_ip, 'service': cloud_service, 'first_contact': t0,
                     'bytes_out_day': up, 'server_because': why}} AS matched, ev
            FROM day ORDER BY t0""")
        yield from findings_from_rows(self.META, rows, "net_conn")
