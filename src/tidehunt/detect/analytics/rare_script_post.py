"""POSTs to a server-side script that only one or two clients of a busy site use."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    ATTACK_T1505_003,
    DECODED_STEM,
    EVIDENCE_SQL,
    HOST_SQL,
    NSA_WEBSHELLS,
    SCRIPT_EXT,
    Analytic,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

MIN_SITE_CLIENTS = 3
MIN_SITE_REQUESTS = 50


class RareScriptPost(Analytic):
    """A script URI that receives POSTs from at most two clients on a site with many."""

    NAME: ClassVar[str] = "rare_script_post"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access"})
    #: Every finding is of one server (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"web_access": HOST_SQL}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0006", "POSTs to a script only one or two clients use", "medium",
        ["T1505.003"], ["persistence"],
        "A server-side script (JSP, PHP, ASPX ...) is POSTed to successfully, and every "
        "request for it comes from one or two client addresses, on a site that serves "
        "many clients: the access pattern the NSA/ASD web-shell guidance tells defenders "
        "to look for.",
        [NSA_WEBSHELLS, ATTACK_T1505_003], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per rare script URI."""
        rows = query(con, f"""
            WITH r AS (SELECT *, {HOST_SQL} AS h, {DECODED_STEM} AS s FROM web_access),
            site AS (SELECT h, count(DISTINCT client_ip) AS clients, count(*) AS n
                     FROM r GROUP BY h),
            uri AS (SELECT h, s, count(DISTINCT client_ip) AS clients,
                           count(*) FILTER (WHERE method = 'POST'
                                            AND status BETWEEN 200 AND 299) AS posts
                    FROM r WHERE regexp_matches(s, '{SCRIPT_EXT}') GROUP BY h, s)
            SELECT r.h AS host, min(r.client_ip) AS src, min(r.uri_stem) AS dst,
                   u.posts || ' POSTs to ' || min(r.uri_stem) || ', used only by ' ||
                   string_agg(DISTINCT r.client_ip, ', '
                       ORDER BY r.client_ip) || ' (the site has ' ||
                   site.clients || ' clients)' AS summary,
                   {{'uri': min(r.uri_stem), 'clients': string_agg(DISTINCT r.client_ip, ', '
                       ORDER BY r.client_ip),
                     'posts': u.posts, 'site_clients': site.clients}} AS matched,
                   {EVIDENCE_SQL} AS ev
            FROM r JOIN uri u ON r.h IS NOT DISTINCT FROM u.h AND r.s = u.s
                   JOIN site ON site.h IS NOT DISTINCT FROM r.h
            WHERE u.posts > 0 AND u.clients <= 2 AND site.clients >= {MIN_SITE_CLIENTS}
              AND site.n >= {MIN_SITE_REQUESTS}
            GROUP BY r.h, u.s, u.posts, site.clients ORDER BY min(r.ts)""")
        yield from findings_from_rows(self.META, rows)
