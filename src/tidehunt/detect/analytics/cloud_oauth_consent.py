"""Consent to an OAuth application (or a token granted to one)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._cloud import CLOUD_EVIDENCE
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class CloudOauthConsent(Analytic):
    """Entra 'Consent to application' / delegated permission grants; Google token
    'authorize' events."""

    NAME: ClassVar[str] = "cloud_oauth_consent"
    READS: ClassVar[frozenset[str]] = frozenset({"cloud_audit"})
    #: Every finding is of one user (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"cloud_audit": '"user"'}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0044", "OAuth application granted access to an account", "medium",
        ["T1098", "T1528", "T1550.001"], ["persistence", "credential-access"],
        "An account consented to an application (Entra: Consent to application, delegated "
        "permission grant, app role assignment; Google: token authorize): the application "
        "keeps access to mail and files through its token, whatever happens to the "
        "password. Check every consent to an application the organisation does not know.",
        ["https://attack.mitre.org/techniques/T1528/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (account, application)."""
        rows = query(con, f"""
            SELECT NULL AS host, "user", min(src_ip) AS src, coalesce(app, '?') AS dst,
                   "user" || ' granted ' || coalesce(app, 'an application') ||
                   ' access (' || string_agg(DISTINCT operation, ', ' ORDER BY operation) ||
                   ') at ' || strftime(min(ts), '%Y-%m-%d %H:%M') || ' UTC' ||
                   coalesce(' from ' || min(src_ip), '') AS summary,
                   {{'user': "user", 'app': app}} AS matched,
                   {CLOUD_EVIDENCE} AS ev
            FROM cloud_audit
            WHERE lower(operation) LIKE 'consent to application%'
               OR lower(operation) LIKE 'add delegated permission grant%'
               OR lower(operation) LIKE 'add app role assignment%'
               OR (provider = 'google' AND lower(workload) = 'token'
                   AND lower(operation) = 'authorize')
            GROUP BY "user", app ORDER BY min(ts), "user", app""")
        yield from findings_from_rows(self.META, rows, "cloud_audit")
