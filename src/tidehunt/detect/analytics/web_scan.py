"""Vulnerability scanning of a web server: one client, many paths, mostly not found."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    EVIDENCE_SQL,
    HOST_SQL,
    Analytic,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

MIN_PATHS = 200
MIN_ERROR_SHARE = 0.5


class WebScan(Analytic):
    """A client asking for 200+ distinct paths, at least half answered 4xx."""

    NAME: ClassVar[str] = "web_scan"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access"})
    #: Every finding is of one server (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"web_access": HOST_SQL}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0012", "Web vulnerability scan from one client", "medium",
        ["T1595.002"], ["reconnaissance"],
        "One client requested 200 or more distinct paths and most were refused or not "
        "found: a vulnerability scanner probing for known application flaws, the step "
        "before APT40 exploits a public-facing server.",
        ["https://attack.mitre.org/techniques/T1595/002/",
         "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, client); evidence is the first 1,000 requests."""
        rows = query(con, f"""
            SELECT {HOST_SQL} AS host, client_ip AS src,
                   'Scan from ' || coalesce(client_ip, '?') || ': ' || count(*) ||
                   ' requests for ' || count(DISTINCT uri_stem) || ' paths, ' ||
                   round(100.0 * count(*) FILTER (WHERE status BETWEEN 400 AND 499) / count(*))
                   || '% answered 4xx, ' || strftime(min(ts), '%Y-%m-%d %H:%M') || ' to ' ||
                   strftime(max(ts), '%Y-%m-%d %H:%M') || ' UTC' AS summary,
                   {{'client_ip': client_ip, 'requests': count(*),
                     'paths': count(DISTINCT uri_stem),
                     'not_found': count(*) FILTER (WHERE status = 404),
                     'user_agents': left(string_agg(DISTINCT user_agent, ' | '
                         ORDER BY user_agent), 300)}}
                     AS matched,
                   {EVIDENCE_SQL} AS ev
            FROM web_access GROUP BY 1, 2
            HAVING count(DISTINCT uri_stem) >= {MIN_PATHS}
               AND count(*) FILTER (WHERE status BETWEEN 400 AND 499)
                   >= {MIN_ERROR_SHARE} * count(*)
            ORDER BY min(ts)""")
        yield from findings_from_rows(self.META, rows)
