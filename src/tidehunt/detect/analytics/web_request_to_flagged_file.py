"""Requests for files the web-root scan flagged: the shell being used, from where."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    DECODED_STEM,
    EVIDENCE_SQL,
    HOST_SQL,
    STATIC_DIR_RX,
    Analytic,
    Prepared,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

#: What the scan counts as flagged (mirrors the webroot analytics at high or above).
FLAGGED_SQL = (f"yara IS NOT NULL OR (server_script AND (dangerous_count >= 3 OR baseline "
               f"IN ('new', 'modified') OR regexp_matches(lower(path), '{STATIC_DIR_RX}')))")


#: What may stand before the request path in the file's path: nothing (the scanned folder
#: is the document root) or a usual document-root folder (a Tomcat app's folder included).
DOCROOT_RX = (r"^$|(^|/)(wwwroot|htdocs|html|public_html|www|public|httpdocs|site|web|"
              r"webapps|webapps/root)$")


class WebRequestToFlaggedFile(Analytic):
    """Access-log requests whose path ends in a file the web-root scan flagged."""

    NAME: ClassVar[str] = "web_request_to_flagged_file"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access", "file"})
    #: --engine spark: by server, each bucket with the flagged files (a scan of the
    #: file table, collected: flagged files are few).
    PARTITION: ClassVar[Mapping[str, str]] = {"web_access": HOST_SQL}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0019", "Requests for a file the web-root scan flagged", "critical",
        ["T1505.003"], ["persistence"],
        "The access log shows requests for a file that the web-root scan flagged (a YARA "
        "match, web-shell heuristics, a script in an upload folder, or a new script "
        "against the baseline): who used the shell, when, and how often.",
        ["https://attack.mitre.org/techniques/T1505/003/"], __name__)

    def prepared(self, con: Any) -> list[Prepared]:
        """The web-root scan's flagged files."""
        return [Prepared("wrff_flagged", f"""
            SELECT DISTINCT '/' || lower(path) AS p, path FROM file
            WHERE coalesce(origin, 'webroot') = 'webroot' AND ({FLAGGED_SQL})""", "file")]

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (server, flagged file, client)."""
        rows = query(con, f"""
            WITH f AS (SELECT DISTINCT p, path FROM wrff_flagged),
            r AS (SELECT *, {DECODED_STEM} AS s FROM web_access
                  WHERE regexp_matches({DECODED_STEM}, '/[^/]+\\.[a-z0-9]+$'))
            SELECT {HOST_SQL} AS host, r.client_ip AS src,
                   min(f.path) AS dst,
                   count(*) || ' requests (' || count(*) FILTER (WHERE method = 'POST') ||
                   ' POST) for flagged file ' || min(f.path) || ' from ' ||
                   coalesce(r.client_ip, '?') || ', ' ||
                   strftime(min(r.ts), '%Y-%m-%d %H:%M') || ' to ' ||
                   strftime(max(r.ts), '%Y-%m-%d %H:%M') || ' UTC' AS summary,
                   {{'file': min(f.path), 'uri': min(r.uri_stem), 'client_ip': r.client_ip,
                     'requests': count(*),
                     'statuses': string_agg(DISTINCT r.status::VARCHAR, ','
                         ORDER BY r.status::VARCHAR)}} AS matched,
                   {EVIDENCE_SQL} AS ev
            FROM r JOIN f ON f.p LIKE '%' || r.s
             AND regexp_matches(left(f.p, length(f.p) - length(r.s)), ?)
            GROUP BY 1, 2, r.s ORDER BY min(r.ts)""", [DOCROOT_RX])
        yield from findings_from_rows(self.META, rows)
