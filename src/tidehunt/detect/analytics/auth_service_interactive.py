"""Service accounts used interactively (a person at a keyboard with a service's password)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._auth import AUTH_EVIDENCE
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class AuthServiceInteractive(Analytic):
    """Interactive, successful sign-ins of accounts the profile (or the default patterns
    svc_, sa-, ...-svc, machine$) names as service accounts."""

    NAME: ClassVar[str] = "auth_service_interactive"
    READS: ClassVar[frozenset[str]] = frozenset({"auth"})
    #: Every finding is of one user (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"auth": '"user"'}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0041", "Service account used interactively", "high",
        ["T1078.002", "T1078.004"], ["initial-access", "persistence",
                                     "privilege-escalation"],
        "A service account (organisation profile service_accounts patterns, else svc_, sa-, "
        "srv-, -svc and machine accounts) signed in interactively to an identity provider "
        "or VPN: service credentials are for machines, and a person using one has taken "
        "it.",
        ["https://attack.mitre.org/techniques/T1078/002/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (account, address)."""
        rows = query(con, f"""
            WITH svc AS (SELECT a.* FROM auth a
                         WHERE a.result = 'success' AND coalesce(a.interactive, false)
                           AND EXISTS (SELECT 1 FROM org_service o
                                       WHERE regexp_matches(lower(a."user"), o.pattern)))
            SELECT NULL AS host, "user", src_ip AS src, min(app) AS dst,
                   count(*) || ' interactive sign-in(s) of the service account ' || "user" ||
                   ' from ' || coalesce(src_ip, '?') || ' to ' ||
                   string_agg(DISTINCT coalesce(app, '?'), ', ' ORDER BY coalesce(app, '?')) ||
                   '; first ' || strftime(min(ts), '%Y-%m-%d %H:%M') || ' UTC' AS summary,
                   {{'user': "user", 'src_ip': src_ip}} AS matched,
                   {AUTH_EVIDENCE} AS ev
            FROM svc GROUP BY "user", src_ip ORDER BY min(ts), "user", src_ip""")
        yield from findings_from_rows(self.META, rows, "auth")
