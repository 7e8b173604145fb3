"""MFA fatigue: a burst of push challenges to one account, denied or unanswered."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

BURST = 5
WINDOW_MINUTES = 10


class AuthMfaFatigue(Analytic):
    """Five or more push challenges denied, unanswered or sent within ten minutes."""

    NAME: ClassVar[str] = "auth_mfa_fatigue"
    READS: ClassVar[frozenset[str]] = frozenset({"auth"})
    #: Every finding is of one user (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"auth": '"user"'}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0037", "MFA fatigue: a burst of push challenges to one account", "high",
        ["T1621", "T1110"], ["credential-access"],
        f"At least {BURST} push challenges for one account within {WINDOW_MINUTES} minutes "
        "were denied, timed out or only sent: someone with the password is pushing until "
        "the owner gives in. Critical when the burst ends in an approved challenge or a "
        "successful sign-in within 30 minutes.",
        ["https://attack.mitre.org/techniques/T1621/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per account and burst."""
        rows = query(con, f"""
            WITH p AS (
                SELECT *, count(*) OVER (PARTITION BY "user" ORDER BY ts RANGE BETWEEN
                       INTERVAL {WINDOW_MINUTES} MINUTE PRECEDING AND CURRENT ROW) AS n
                FROM auth WHERE mfa = 'push' AND coalesce(mfa_result, '') IN
                    ('denied', 'sent', 'timeout', '', 'rejected')),
            hot AS (SELECT "user", min(ts) FILTER (WHERE n >= {BURST}) AS hit FROM p
                    GROUP BY "user" HAVING max(n) >= {BURST}),
            burst AS (SELECT p.* FROM p JOIN hot USING ("user")
                      WHERE p.ts BETWEEN hot.hit - INTERVAL {WINDOW_MINUTES} MINUTE
                                     AND hot.hit + INTERVAL 1 HOUR),
            won AS (SELECT b."user", min(a.ts) AS t FROM (SELECT "user", max(ts) AS last
                                                        FROM burst GROUP BY "user") b
                    JOIN auth a ON a."user" = b."user" AND a.ts > b.last - INTERVAL 1 MINUTE
                     AND a.ts <= b.last + INTERVAL 30 MINUTE
                     AND (a.mfa_result = 'approved' OR (a.result = 'success' AND
                          coalesce(a.mfa, '') <> 'none'))
                    GROUP BY b."user")
            SELECT NULL AS host, b."user", min(src_ip) AS src, min(app) AS dst,
                   CASE WHEN min(won.t) IS NOT NULL THEN 'critical' END AS level,
                   count(*) || ' push challenge(s) to ' || b."user" || ' between ' ||
                   strftime(min(b.ts), '%H:%M') || ' and ' || strftime(max(b.ts), '%H:%M') ||
                   ' UTC on ' || strftime(min(b.ts), '%Y-%m-%d') || ' (' ||
                   count(*) FILTER (WHERE mfa_result = 'denied') || ' denied)' ||
                   CASE WHEN min(won.t) IS NOT NULL THEN '; then approved at ' ||
                        strftime(min(won.t), '%H:%M') || ': the owner gave in'
                        ELSE '' END AS summary,
                   {{'user': b."user", 'pushes': count(*), 'from': min(src_ip)}} AS matched,
                   list({{'table': 'auth', 'artefact': b._artefact, 'locator': b._locator,
                         'source_file': b.source_file, 'line': NULL::BIGINT, 'ts': b.ts}}
                        ORDER BY b.ts, b._locator)[1:200] AS ev
            FROM burst b LEFT JOIN won ON won."user" = b."user"
            GROUP BY b."user" ORDER BY min(b.ts), b."user" """)
        yield from findings_from_rows(self.META, rows, "auth")
