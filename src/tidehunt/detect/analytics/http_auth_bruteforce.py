"""Password guessing against HTTP authentication (Tomcat manager and others)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    APT40_ADVISORY,
    EVIDENCE_SQL,
    HOST_SQL,
    Analytic,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

THRESHOLD = 10


class HttpAuthBruteforce(Analytic):
    """Ten or more 401 answers to one client on one application; high if a login follows."""

    NAME: ClassVar[str] = "http_auth_bruteforce"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access"})
    #: Every finding is of one server (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"web_access": HOST_SQL}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0003", "HTTP authentication brute force (e.g. Tomcat manager)", "medium",
        ["T1110.001", "T1078", "T1190"], ["credential-access", "initial-access"],
        "One client is refused (HTTP 401) ten or more times on the same application, such "
        "as the Tomcat manager. Raised to high when someone then logs in to that "
        "application successfully: the usual way a WAR web shell gets deployed.",
        ["https://attack.mitre.org/techniques/T1110/001/", APT40_ADVISORY], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """Per (host, client, application = first path segment)."""
        rows = query(con, f"""
            WITH r AS (SELECT *, {HOST_SQL} AS h,
                              regexp_extract(lower(uri_stem), '^/[^/;?]*') AS app
                       FROM web_access),
            fails AS (SELECT h, client_ip, app, count(*) AS n, min(ts) AS t0, max(ts) AS t1,
                             {EVIDENCE_SQL} AS ev
                      FROM r WHERE status = 401 GROUP BY h, client_ip, app
                      HAVING count(*) >= {THRESHOLD}),
            logins AS (SELECT h, app, user, client_ip, min(ts) AS ts FROM r
                       WHERE status BETWEEN 200 AND 299 AND user IS NOT NULL
                       GROUP BY h, app, user, client_ip)
            SELECT f.h AS host, f.client_ip AS src, f.app AS dst,
                   f.n || ' refused logins (HTTP 401) to ' || f.app || ' from ' ||
                   coalesce(f.client_ip, '?') ||
                   coalesce('; then logged in: ' || string_agg(DISTINCT l.user || ' from ' ||
                            l.client_ip, ', '
                                ORDER BY l.user || ' from ' || l.client_ip), '') AS summary,
                   CASE WHEN count(l.user) > 0 THEN 'high' END AS level,
                   min(l.user) AS user,
                   {{'application': f.app, 'client_ip': f.client_ip, 'failures': f.n,
                     'first': f.t0, 'last': f.t1,
                     'logins_after': string_agg(DISTINCT l.user || '@' || l.client_ip, ', '
                         ORDER BY l.user || '@' || l.client_ip)}}
                     AS matched,
                   f.ev AS ev
            FROM fails f LEFT JOIN logins l
              ON l.app = f.app AND l.h IS NOT DISTINCT FROM f.h AND l.ts > f.t0
            GROUP BY f.h, f.client_ip, f.app, f.n, f.t0, f.t1, f.ev ORDER BY f.t0""")
        yield from findings_from_rows(self.META, rows)
