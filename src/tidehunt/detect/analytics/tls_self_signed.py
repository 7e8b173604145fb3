"""TLS to a server with a self-signed certificate and no real name: the default of C2
frameworks and tunnels (Meterpreter, Cobalt Strike, Empire listeners, SSF)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import NET_PARTITION, TABLE_EVIDENCE_SQL, host_of
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, has_table, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class TlsSelfSigned(Analytic):
    """Established TLS sessions to an unzoned server whose certificate signs itself and
    whose client named no host, or only an address."""

    NAME: ClassVar[str] = "tls_self_signed"
    READS: ClassVar[frozenset[str]] = frozenset({"tls"})
    #: Every finding is of one client (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = NET_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0060", "TLS to a self-signed server with no name", "medium",
        ["T1573.002", "T1071.001"], ["command-and-control"],
        "Established TLS sessions whose certificate's subject is its issuer (self-signed), "
        "where the client sent no SNI or an IP address as SNI, to a server outside the "
        "organisation profile's zones. High for a public server, a port other than 443, "
        "or 20 sessions or more. Internal appliances with self-signed certificates live "
        "in declared zones and are left out.",
        ["https://attack.mitre.org/techniques/T1573/002/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (client, server, port)."""
        if not has_table(con, "tls"):
            return
        ev = TABLE_EVIDENCE_SQL.format(t="tls")
        rows = query(con, f"""
            WITH t AS (
                SELECT t.*, coalesce(a.public, false) AS public FROM tls t
                LEFT JOIN net_addr a ON a.ip = t.dst_ip
                WHERE coalesce(t.established, true) AND t.subject IS NOT NULL
                  AND t.subject = t.issuer AND a.zone IS NULL
                  AND (t.server_name IS NULL OR t.server_name = ''
                       OR regexp_matches(t.server_name, '^[0-9.]+$|:'))),
            g AS (
                SELECT src_ip, dst_ip, dst_port, count(*) AS n, min(subject) AS subject,
                       bool_or(public) AS public, min(ts) AS t0, max(ts) AS t1, {ev} AS ev
                FROM t GROUP BY src_ip, dst_ip, dst_port)
            SELECT {host_of('src_ip')} AS host, src_ip AS src, dst_ip AS dst,
                   CASE WHEN public OR dst_port <> 443 OR n >= 20 THEN 'high' END AS level,
                   {host_of('src_ip')} || ' made ' || n || ' TLS session(s) to ' || dst_ip ||
                   ':' || dst_port || ' from ' || strftime(t0, '%Y-%m-%d %H:%M') || ' to ' ||
                   strftime(t1, '%H:%M') || ' UTC with no host name; the certificate signs '
                   'itself: ' || left(subject, 160) AS summary,
                   {{'host': src_ip, 'server': dst_ip, 'port': dst_port, 'sessions': n,
                     'subject': subject}} AS matched, ev
            FROM g ORDER BY t0""")
        yield from findings_from_rows(self.META, rows, "tls")
