"""Web applications deployed through an application-server console (WAR upload)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    APT40_ADVISORY,
    ATTACK_T1505_003,
    EVIDENCE_SQL,
    HOST_SQL,
    Analytic,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

#: Deploy actions of the Tomcat manager (HTML upload, text API) and JBoss' JMX console.
DEPLOY_SQL = ("((method = 'POST' AND regexp_matches(lower(uri_stem), '^/manager/html/upload'))"
              " OR regexp_matches(lower(uri_stem), '^/manager/(text/)?deploy')"
              " OR (regexp_matches(lower(uri_stem), '^/jmx-console/') AND regexp_matches("
              "lower(coalesce(uri_query, '')), 'maindeployer|deploymentfilerepository')))"
              " AND status BETWEEN 200 AND 299")


class WarDeploy(Analytic):
    """A WAR file uploaded through the Tomcat manager (or JBoss JMX console)."""

    NAME: ClassVar[str] = "war_deploy"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access"})
    #: Every finding is of one server (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"web_access": HOST_SQL}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0004", "Web application deployed through the server's manager console",
        "high", ["T1505.003", "T1190"], ["persistence", "initial-access"],
        "A web application archive was uploaded and deployed through the Tomcat manager or "
        "the JBoss JMX console. Outside a change window this is how a JSP web shell is "
        "planted after the console's password was guessed or stolen.",
        [ATTACK_T1505_003, APT40_ADVISORY], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, client, user)."""
        rows = query(con, f"""
            SELECT {HOST_SQL} AS host, client_ip AS src, user,
                   count(*) || ' deploy request(s) to ' || string_agg(DISTINCT uri_stem, ', '
                       ORDER BY uri_stem)
                   || ' from ' || coalesce(client_ip, '?') || coalesce(' as ' || user, '')
                   AS summary,
                   {{'uris': string_agg(DISTINCT uri_stem, ', '
                       ORDER BY uri_stem), 'client_ip': client_ip,
                     'user': user, 'deploys': count(*)}} AS matched,
                   {EVIDENCE_SQL} AS ev
            FROM web_access WHERE {DEPLOY_SQL}
            GROUP BY 1, 2, 3 ORDER BY min(ts)""")
        yield from findings_from_rows(self.META, rows)
