"""Executables and scripts fetched over plain HTTP from a bare address or an unnamed
host: how payloads arrive after a lure or an exploit (certutil, bitsadmin, a stager)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import NET_PARTITION, TABLE_EVIDENCE_SQL, host_of
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, has_table, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

EXE_MIME = r"(x-dosexec|x-msdownload|x-executable|x-msi|x-ms-shortcut|hta|x-sh\b)"
EXE_URI = r"\.(exe|dll|scr|msi|ps1|hta|vbs|bat|cmd|jar|lnk|sys|cpl)(\?|$)"


class HttpExeDownload(Analytic):
    """An executable response over HTTP where the request named no host, or an address."""

    NAME: ClassVar[str] = "http_exe_download"
    READS: ClassVar[frozenset[str]] = frozenset({"http"})
    #: Every finding is of one client (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = NET_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0058", "Executable downloaded over HTTP from a bare address", "high",
        ["T1105"], ["command-and-control"],
        "A plain-HTTP response whose MIME type (Zeek's file analysis) is an executable, "
        "installer, script or shortcut, or whose URI ends in one, where the request named "
        "no host or an IP address instead of a name. Legitimate software comes from named, "
        "usually TLS, servers; stagers and LOLBin downloads (certutil, bitsadmin) often "
        "do not.",
        ["https://attack.mitre.org/techniques/T1105/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (client, server)."""
        if not has_table(con, "http"):
            return
        ev = TABLE_EVIDENCE_SQL.format(t="http")
        rows = query(con, f"""
            WITH h AS (
                SELECT * FROM http
                WHERE (regexp_matches(lower(coalesce(resp_mime_types, '')), '{EXE_MIME}')
                       OR regexp_matches(lower(coalesce(uri, '')), '{EXE_URI}'))
                  AND (http_host IS NULL OR http_host = ''
                       OR regexp_matches(http_host, '^\\[?[0-9a-f:.]+\\]?(:\\d+)?$'))),
            g AS (
                SELECT src_ip, dst_ip, dst_port, count(*) AS n,
                       sum(coalesce(response_body_len, 0))::BIGINT AS down,
                       string_agg(DISTINCT coalesce(uri, '(no URI logged)'), ', '
                           ORDER BY coalesce(uri, '(no URI logged)')) AS uris,
                       string_agg(DISTINCT resp_mime_types, ', ' ORDER BY resp_mime_types) AS mimes,
                       string_agg(DISTINCT user_agent, ', '
                           ORDER BY user_agent) AS uas, min(ts) AS t0,
                       {ev} AS ev
                FROM h GROUP BY ALL)
            SELECT {host_of('src_ip')} AS host, src_ip AS src, dst_ip AS dst,
                   {host_of('src_ip')} || ' downloaded ' || n || ' executable response(s) ('
                   || coalesce(mimes, 'by URI') || ', ' || format_bytes(down) || ') from ' ||
                   dst_ip || ':' || dst_port || ' over plain HTTP with no host name at ' ||
                   strftime(t0, '%Y-%m-%d %H:%M:%S') || ' UTC: ' || left(uris, 200) ||
                   coalesce('; user agent ' || left(uas, 100), '; no user agent') AS summary,
                   {{'host': src_ip, 'server': dst_ip, 'port': dst_port, 'uris': uris,
                     'mime_types': mimes, 'user_agents': uas, 'bytes': down}} AS matched, ev
            FROM g ORDER BY t0""")
        yield from findings_from_rows(self.META, rows, "http")
