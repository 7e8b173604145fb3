"""Mail that fails sender authentication or answers to someone other than its sender."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, meta, query
from tidehunt.detect.analytics.mail_lookalike_domain import _EVIDENCE
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class MailSenderMismatch(Analytic):
    """DMARC fail, SPF and DKIM both failing, or a Reply-To/Return-Path on another domain.

    Medium for one sign; high when authentication fails and replies go elsewhere.
    """

    NAME: ClassVar[str] = "mail_sender_mismatch"
    READS: ClassVar[frozenset[str]] = frozenset({"mail"})
    #: Every finding is of one sender (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"mail": "from_addr"}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0023", "Mail failing sender authentication or replying elsewhere",
        "medium", ["T1566.001", "T1566.002", "T1656"], ["initial-access", "defense-evasion"],
        "The receiving server recorded DMARC fail, or SPF and DKIM both not passing, or the "
        "Reply-To / Return-Path domain differs from the From domain. Both together (a "
        "forged sender whose replies go to the actor) are high.",
        ["https://attack.mitre.org/techniques/T1566/",
         "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per message."""
        rows = query(con, f"""
            WITH m AS (
                SELECT *,
                  (dmarc = 'fail' OR (coalesce(spf, 'none') NOT IN ('pass', 'neutral')
                                      AND coalesce(dkim, 'none') <> 'pass'
                                      AND (spf IS NOT NULL OR dkim IS NOT NULL)))
                    AS auth_fail,
                  lower(regexp_extract(coalesce(reply_to, ''), '@(.+)$', 1)) AS rd,
                  lower(regexp_extract(coalesce(return_path, ''), '@(.+)$', 1)) AS pd
                FROM mail WHERE from_domain IS NOT NULL),
            f AS (SELECT *, (rd <> '' AND rd <> from_domain
                             AND NOT rd LIKE '%.' || from_domain) AS reply_elsewhere
                  FROM m)
            SELECT NULL AS host, from_addr AS src, coalesce(reply_to, from_addr) AS dst,
                   'Mail "' || coalesce(left(subject, 80), '') || '" from ' || from_addr ||
                   CASE WHEN auth_fail THEN ': SPF ' || coalesce(spf, '-') || ', DKIM ' ||
                        coalesce(dkim, '-') || ', DMARC ' || coalesce(dmarc, '-') ELSE '' END ||
                   CASE WHEN reply_elsewhere THEN '; replies go to ' || reply_to ELSE '' END
                   AS summary,
                   CASE WHEN auth_fail AND reply_elsewhere THEN 'high' END AS level,
                   {{'from': from_addr, 'reply_to': reply_to, 'return_path': return_path,
                     'spf': spf, 'dkim': dkim, 'dmarc': dmarc, 'subject': subject}}
                     AS matched,
                   {_EVIDENCE} AS ev
            FROM f WHERE auth_fail OR reply_elsewhere
            GROUP BY ALL ORDER BY min(ts)""")
        yield from findings_from_rows(self.META, rows, "mail")
