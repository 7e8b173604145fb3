"""Sign-ins that should have used a second factor and did not."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._auth import AUTH_EVIDENCE
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class AuthSingleFactor(Analytic):
    """Successful interactive sign-ins with no second factor, to accounts or apps the
    organisation profile says need MFA (all of them when it says nothing)."""

    NAME: ClassVar[str] = "auth_single_factor"
    READS: ClassVar[frozenset[str]] = frozenset({"auth"})
    #: Every finding is of one user (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"auth": '"user"'}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0036", "Single-factor sign-in where MFA is required", "high",
        ["T1078", "T1133", "T1556.006"], ["initial-access", "persistence", "defense-evasion"],
        "A successful interactive sign-in used only a password (Entra "
        "singleFactorAuthentication, a VPN row with no factor) to an account or application "
        "the organisation profile's mfa_required names (every sign-in when the profile says "
        "nothing, at medium). APT40 signs in with stolen credentials to remote-access "
        "services that do not enforce MFA.",
        ["https://attack.mitre.org/techniques/T1078/",
         "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (account, application, address)."""
        rows = query(con, f"""
            WITH m AS (SELECT * FROM org_mfa LIMIT 1),
            s AS (SELECT a.* FROM auth a, m
                  WHERE a.result = 'success' AND coalesce(a.interactive, true)
                    AND a.mfa IN ('none', 'password')
                    AND (m.all_required OR list_contains(m.users, a.user)
                         OR list_contains(m.apps, lower(coalesce(a.app, '')))))
            SELECT NULL AS host, "user", src_ip AS src, app AS dst,
                   CASE WHEN (SELECT configured FROM m) THEN 'high' ELSE 'medium' END
                       AS level,
                   count(*) || ' sign-in(s) of ' || "user" || ' to ' ||
                   coalesce(app, 'an application') || ' from ' || coalesce(src_ip, '?') ||
                   coalesce(' (' || min(country) || ')', '') ||
                   ' with a password only, where MFA is required; first ' ||
                   strftime(min(ts), '%Y-%m-%d %H:%M') || ' UTC' AS summary,
                   {{'user': "user", 'app': app, 'src_ip': src_ip,
                     'provider': min(provider)}} AS matched,
                   {AUTH_EVIDENCE} AS ev
            FROM s GROUP BY "user", app, src_ip ORDER BY min(ts), "user", app, src_ip""")
        yield from findings_from_rows(self.META, rows, "auth")
