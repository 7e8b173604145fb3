"""SMB or NetBIOS to internet addresses: leaked NTLM hashes (forced authentication) or
files copied out over a protocol that should never leave the network."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import NET_PARTITION, TABLE_EVIDENCE_SQL, host_of
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, has_table, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

#: Zeek states of a connection the far end answered.
ANSWERED = ("SF", "S1", "S2", "S3", "RSTO", "RSTR", "OTH")


class NetSmbPublic(Analytic):
    """Outbound TCP 445 or 139 to a public address."""

    NAME: ClassVar[str] = "net_smb_public"
    READS: ClassVar[frozenset[str]] = frozenset({"net_conn"})
    #: Every finding is of one client (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = NET_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0054", "SMB to an internet address", "medium",
        ["T1187", "T1048.003", "T1021.002"], ["credential-access", "exfiltration"],
        "An internal host opened TCP 445 or 139 to a public address. Answered sessions "
        "are high: the host sent its NTLM credentials, and perhaps files, outside. "
        "Unanswered attempts (blocked at the edge) stay medium: something on the host "
        "still tried, often a lure's UNC path.",
        ["https://attack.mitre.org/techniques/T1187/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (source, destination)."""
        if not has_table(con, "net_conn"):
            return
        ok = ", ".join(f"'{s}'" for s in ANSWERED)
        ev = TABLE_EVIDENCE_SQL.format(t="net_conn")
        rows = query(con, f"""
            WITH c AS (
                SELECT c.* FROM net_conn c JOIN net_addr d ON d.ip = c.dst_ip
                JOIN net_addr s ON s.ip = c.src_ip
                WHERE c.dst_port IN (445, 139) AND coalesce(c.proto, 'tcp') = 'tcp'
                  AND d.public AND NOT s.public),
            g AS (
                SELECT src_ip, dst_ip, count(*) AS n,
                       count(*) FILTER (WHERE conn_state IN ({ok})
                                        OR coalesce(bytes_in, 0) > 0) AS answered,
                       sum(coalesce(bytes_out, 0))::BIGINT AS up, min(ts) AS t0,
                       list(DISTINCT dst_port) AS ports, {ev} AS ev
                FROM c GROUP BY ALL)
            SELECT {host_of('src_ip')} AS host, src_ip AS src, dst_ip AS dst,
                   CASE WHEN answered > 0 THEN 'high' END AS level,
                   {host_of('src_ip')} || ' opened SMB (' || array_to_string(ports, ',') ||
                   ') to public ' || dst_ip || ' ' || n || ' time(s) from ' ||
                   strftime(t0, '%Y-%m-%d %H:%M') || ' UTC; ' || answered ||
                   ' answered, ' || format_bytes(up) || ' sent' AS summary,
                   {{'host': src_ip, 'destination': dst_ip, 'connections': n,
                     'answered': answered, 'bytes_out': up}} AS matched, ev
            FROM g ORDER BY t0""")
        yield from findings_from_rows(self.META, rows, "net_conn")
