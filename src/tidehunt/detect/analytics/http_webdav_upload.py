"""Files written to a WebDAV share by the Windows WebDAV client: ``net use`` to an
attacker's server and a copy is exfiltration that no proxy category catches."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import NET_PARTITION, TABLE_EVIDENCE_SQL, host_of
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, has_table, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

MIN_BYTES = 100 << 10
#: An archive name in a comma-separated list of URIs.
ARCHIVE_RX = r"\.(7z|rar|zip|cab|tar|gz|tgz|bz2|xz|r\d\d|\d{3})(,|$)"


class HttpWebdavUpload(Analytic):
    """PUT requests carrying data to a server outside the organisation's zones."""

    NAME: ClassVar[str] = "http_webdav_upload"
    READS: ClassVar[frozenset[str]] = frozenset({"http"})
    #: Every finding is of one client (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = NET_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0059", "Upload to a WebDAV share", "medium",
        ["T1048.003", "T1567"], ["exfiltration"],
        f"HTTP PUT requests that sent at least {MIN_BYTES >> 10} KiB in all to one server "
        "that is not in a zone of the organisation profile, by the Windows WebDAV "
        "redirector (Microsoft-WebDAV-MiniRedir, DavClnt) or any client. High for "
        "archives or a public server. A mapped WebDAV drive makes exfiltration look like "
        "a file copy on the host.",
        ["https://attack.mitre.org/techniques/T1048/003/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (client, server)."""
        if not has_table(con, "http"):
            return
        ev = TABLE_EVIDENCE_SQL.format(t="http")
        rows = query(con, f"""
            WITH h AS (
                SELECT h.*, a.public FROM http h LEFT JOIN net_addr a ON a.ip = h.dst_ip
                WHERE upper(h.method) IN ('PUT', 'PROPPATCH', 'MKCOL', 'LOCK', 'MOVE')
                  AND a.zone IS NULL),
            g AS (
                SELECT src_ip, dst_ip, coalesce(min(http_host), dst_ip) AS server,
                       count(*) FILTER (WHERE upper(method) = 'PUT') AS puts,
                       sum(CASE WHEN upper(method) = 'PUT'
                                THEN coalesce(request_body_len, 0) END)::BIGINT AS up,
                       string_agg(DISTINCT CASE WHEN upper(method) = 'PUT' THEN uri END, ', '
                           ORDER BY CASE WHEN upper(method) = 'PUT' THEN uri END)
                           AS uris,
                       string_agg(DISTINCT user_agent, ', ' ORDER BY user_agent) AS uas,
                       bool_or(coalesce(public, false)) AS public, min(ts) AS t0, {ev} AS ev
                FROM h GROUP BY src_ip, dst_ip
                HAVING sum(CASE WHEN upper(method) = 'PUT'
                                THEN coalesce(request_body_len, 0) END) >= {MIN_BYTES})
            SELECT {host_of('src_ip')} AS host, src_ip AS src, server AS dst,
                   CASE WHEN public OR regexp_matches(lower(uris), '{ARCHIVE_RX}')
                        THEN 'high' END AS level,
                   {host_of('src_ip')} || ' wrote ' || format_bytes(up) || ' in ' || puts ||
                   ' PUT request(s) to ' || server || ' from ' ||
                   strftime(t0, '%Y-%m-%d %H:%M') || ' UTC: ' || left(uris, 200) ||
                   coalesce(' (' || left(uas, 80) || ')', '') AS summary,
                   {{'host': src_ip, 'server': server, 'bytes_out': up, 'puts': puts,
                     'uris': uris, 'user_agents': uas}} AS matched, ev
            FROM g ORDER BY t0""")
        yield from findings_from_rows(self.META, rows, "http")
