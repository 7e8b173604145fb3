"""Mailbox rules and settings that forward or redirect mail (collection by forwarding)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._cloud import CLOUD_EVIDENCE
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class CloudMailForwarding(Analytic):
    """New-InboxRule / Set-InboxRule with ForwardTo, RedirectTo or ForwardAsAttachmentTo;
    Set-Mailbox with a forwarding address; Google email forwarding changes."""

    NAME: ClassVar[str] = "cloud_mail_forwarding"
    READS: ClassVar[frozenset[str]] = frozenset({"cloud_audit"})
    #: Every finding is of one user (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"cloud_audit": '"user"'}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0045", "Mailbox forwarding or redirect rule created", "high",
        ["T1114.003", "T1564.008"], ["collection", "defense-evasion"],
        "A mailbox got an inbox rule that forwards, redirects or attaches mail to another "
        "address, or a forwarding address on the mailbox itself: every message leaves the "
        "organisation without anyone opening it. Critical when the target is outside the "
        "organisation's own domains.",
        ["https://attack.mitre.org/techniques/T1114/003/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (mailbox, target)."""
        own = "SELECT domain AS d FROM org_domain WHERE role = 'own'"
        try:
            con.execute("SELECT 1 FROM mail_own_domain LIMIT 1")
            own = "SELECT d FROM mail_own_domain UNION " + own
        except Exception:  # noqa: BLE001 - no mail in the case: the profile alone
            pass
        rows = query(con, f"""
            WITH own AS ({own}),
            f AS (SELECT *, lower(regexp_extract(coalesce(target, ''),
                                                '@([^@\\s>;"\\]]+)', 1)) AS tdom
                  FROM cloud_audit
                  WHERE (lower(operation) IN ('new-inboxrule', 'set-inboxrule',
                                               'updateinboxrules', 'set-mailbox')
                         AND target IS NOT NULL)
                     OR lower(operation) IN ('email_forwarding_change',
                                             'change_email_forwarding'))
            SELECT NULL AS host, "user", min(src_ip) AS src, target AS dst,
                   CASE WHEN min(tdom) <> '' AND min(tdom) NOT IN (SELECT d FROM own)
                        THEN 'critical' END AS level,
                   coalesce(min(object), "user") || ': ' ||
                   string_agg(DISTINCT operation, ', ' ORDER BY operation) ||
                   ' forwards mail to ' || coalesce(target, '?') || ' (by ' || "user" ||
                   ' at ' || strftime(min(ts), '%Y-%m-%d %H:%M') || ' UTC)' AS summary,
                   {{'mailbox': min(object), 'by': "user", 'target': target}} AS matched,
                   {CLOUD_EVIDENCE} AS ev
            FROM f GROUP BY "user", target ORDER BY min(ts), "user", target""")
        yield from findings_from_rows(self.META, rows, "cloud_audit")
