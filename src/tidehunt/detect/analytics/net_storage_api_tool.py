"""A program, not a person, talking to a storage service's API: non-browser user agents
on Dropbox, Graph, Google Drive, GitHub and paste APIs, and APT40's own Dropbox tool."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import (
    APT40_DROPBOX_UA,
    BROWSER_UA_RX,
    FLOW_EVIDENCE_SQL,
    NET_PARTITION,
    TOOL_UA_RX,
    host_of,
)
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, has_table, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

#: Official sync clients and Office apps that use these APIs as themselves.
OFFICIAL_RX = (r"(?i)(dropboxdesktopclient|dropbox/\d|skydrivesync|onedrive|"
               r"microsoft office|microsoft\.graph|msal|googledrivefs|google drive|"
               r"backup and sync|box sync|box drive|boxdrive|github desktop|git/\d|"
               r"teams/|outlook)")


class NetStorageApiTool(Analytic):
    """Requests to a catalogued storage API with a tool's or no user agent."""

    NAME: ClassVar[str] = "net_storage_api_tool"
    READS: ClassVar[frozenset[str]] = frozenset()
    READS_ANY: ClassVar[frozenset[str]] = frozenset({"net_conn", "proxy"})
    #: Every finding is of one client (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = NET_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0050", "Non-browser client on a cloud storage API", "medium",
        ["T1567.002", "T1071.001"], ["exfiltration", "command-and-control"],
        "HTTP or proxied requests to a storage service's API endpoint (catalogue `api` "
        "hosts: content.dropboxapi.com, graph.microsoft.com, www.googleapis.com/upload, "
        "uploads.github.com, api.telegram.org...) whose user agent is not a browser and "
        "not the service's own client. Critical for the user agent of APT40's Dropbox "
        "tool (a 2014 Chrome string, as in SigmaHQ rule 5ba715b6), high for a known tool "
        "or library (rclone, curl, python-requests, PowerShell, Go) or no user agent. "
        "Needs cleartext HTTP or a proxy that logs TLS requests.",
        ["https://attack.mitre.org/techniques/T1567/002/",
         "https://github.com/SigmaHQ/sigma/blob/master/rules-emerging-threats/2019/TA/"
         "APT40/proxy_apt_apt40_dropbox_tool_ua.yml"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, service, user agent)."""
        if not has_table(con, "net_flow"):
            return
        ua = APT40_DROPBOX_UA.replace("'", "''")
        rows = query(con, f"""
            WITH hits AS (
                SELECT f.*, a.service,
                       coalesce(f.user_agent, '') AS ua0
                FROM net_flow f JOIN cloud_api a
                  ON (f.name = a.host OR f.name LIKE '%.' || a.host)
                 AND (a.path = '' OR coalesce(regexp_extract(f.url, '^(?:[a-z]+://[^/]+)?(/.*)$',
                                                             1), '') LIKE a.path || '%')
                WHERE f.user_agent IS NOT NULL OR f.evidence_table = 'proxy'
                   OR f.method IS NOT NULL),
            g AS (
                SELECT src_ip, service, ua0, count(*) AS n, min(name) AS name,
                       sum(coalesce(bytes_out, 0))::BIGINT AS up,
                       string_agg(DISTINCT "user", ', ' ORDER BY "user") AS users, min(ts) AS t0,
                       {FLOW_EVIDENCE_SQL} AS ev
                FROM hits
                WHERE ua0 = '{ua}' OR regexp_matches(ua0, '{TOOL_UA_RX}')
                   OR (NOT regexp_matches(ua0, '{BROWSER_UA_RX}')
                       AND NOT regexp_matches(ua0, '{OFFICIAL_RX}'))
                GROUP BY ALL)
            SELECT {host_of('src_ip')} AS host, src_ip AS src, service AS dst,
                   split_part(users, ', ', 1) AS "user",
                   CASE WHEN ua0 = '{ua}' THEN 'critical'
                        WHEN regexp_matches(ua0, '{TOOL_UA_RX}') THEN 'high' END AS level,
                   {host_of('src_ip')} || coalesce(' as ' || users, '') || ' made ' || n ||
                   ' request(s) to the ' || service || ' API (' || name || ') with ' ||
                   CASE WHEN ua0 = '{ua}' THEN 'the user agent of APT40''s Dropbox tool'
                        WHEN ua0 = '' THEN 'no user agent'
                        ELSE 'user agent "' || left(ua0, 120) || '"' END ||
                   ', sending ' || format_bytes(up) || ', from ' ||
                   strftime(t0, '%Y-%m-%d %H:%M') || ' UTC' AS summary,
                   {{'host': src_ip, 'service': service, 'user_agent': ua0, 'requests': n,
                     'bytes_out': up}} AS matched, ev
            FROM g ORDER BY t0""")
        yield from findings_from_rows(self.META, rows, "http")
