"""Script URIs first requested just after a WAR deploy: the shell the WAR carried."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    APT40_ADVISORY,
    ATTACK_T1505_003,
    DECODED_STEM,
    EVIDENCE_SQL,
    HOST_SQL,
    SCRIPT_EXT,
    Analytic,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.detect.analytics.war_deploy import DEPLOY_SQL
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class NewScriptAfterDeploy(Analytic):
    """A server-side script first served within a day after a deploy on the same host."""

    NAME: ClassVar[str] = "new_script_after_deploy"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access"})
    #: Every finding is of one server (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"web_access": HOST_SQL}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0005", "New server-side script used right after a WAR deploy",
        "critical", ["T1505.003"], ["persistence"],
        "A script URI (JSP, PHP, ASPX ...) that the logs had never served appears, and is "
        "answered with 2xx, within 24 hours after an application was deployed through the "
        "manager console of the same server: the web shell inside the deployed archive.",
        [ATTACK_T1505_003, APT40_ADVISORY], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per new script URI."""
        rows = query(con, f"""
            WITH r AS (SELECT *, {HOST_SQL} AS h, {DECODED_STEM} AS s FROM web_access),
            dep AS (SELECT h, ts FROM r WHERE {DEPLOY_SQL}),
            first AS (SELECT h, s, min(ts) AS first_ts FROM r GROUP BY h, s),
            new AS (SELECT f.h, f.s, f.first_ts, max(d.ts) AS deployed FROM first f
                    JOIN dep d ON d.h IS NOT DISTINCT FROM f.h AND f.first_ts > d.ts
                              AND f.first_ts <= d.ts + INTERVAL 1 DAY
                    WHERE regexp_matches(f.s, '{SCRIPT_EXT}')
                    GROUP BY f.h, f.s, f.first_ts)
            SELECT r.h AS host, min(r.client_ip) AS src, min(r.uri_stem) AS dst,
                   'New script ' || min(r.uri_stem) || ' first used ' ||
                   strftime(n.first_ts, '%Y-%m-%d %H:%M:%S') || ' UTC, ' ||
                   date_diff('second', n.deployed, n.first_ts) ||
                   ' s after a WAR deploy; ' || count(*) || ' requests (' ||
                   count(*) FILTER (WHERE r.method = 'POST') || ' POST) from ' ||
                   string_agg(DISTINCT r.client_ip, ', ' ORDER BY r.client_ip) AS summary,
                   {{'uri': min(r.uri_stem), 'clients': string_agg(DISTINCT r.client_ip, ', '
                       ORDER BY r.client_ip),
                     'requests': count(*), 'deployed': n.deployed,
                     'first_seen': n.first_ts}} AS matched,
                   {EVIDENCE_SQL.replace("_artefact", "r._artefact")} AS ev
            FROM r JOIN new n ON r.h IS NOT DISTINCT FROM n.h AND r.s = n.s
            WHERE r.status BETWEEN 200 AND 299
            GROUP BY r.h, n.s, n.first_ts, n.deployed ORDER BY n.first_ts""")
        yield from findings_from_rows(self.META, rows)
