"""The first mail of a sender domain the case's mail history has not seen before."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    Analytic,
    Prepared,
    findings_from_rows,
    has_table,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

#: Days of mail history a domain must be absent from for its first mail to count.
HISTORY_DAYS = 7


class MailFirstSeenDomain(Analytic):
    """First mail from an outside domain after at least a week of history, carrying an
    attachment or a link."""

    NAME: ClassVar[str] = "mail_first_seen_domain"
    READS: ClassVar[frozenset[str]] = frozenset({"mail"})
    #: --engine spark: by sender domain, with the start of the mail history and the
    #: flagged attachments (both prepared from scans of their tables) beside each bucket.
    PARTITION: ClassVar[Mapping[str, str]] = {"mail": "from_domain"}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0030", "First mail from a sender domain never seen before", "low",
        ["T1566.001", "T1566.002", "T1583.001"], ["initial-access", "resource-development"],
        f"The earliest mail in the case from a domain that is not the organisation's own or "
        f"a partner's, at least {HISTORY_DAYS} days after the case's mail history starts, "
        "with an attachment or a link: spear-phishing domains are registered for the "
        "campaign, so the first contact is the one to look at. The level rises to medium "
        "when that first mail's attachment was flagged.",
        ["https://attack.mitre.org/techniques/T1583/001/"], __name__)

    def prepared(self, con: Any) -> list[Prepared]:
        """The mail history's start (a minimum per batch) and the flagged attachments."""
        out = [Prepared("mfsd_start", "SELECT min(ts) AS t0 FROM mail", "mail")]
        if has_table(con, "mail_attachment"):
            out.append(Prepared(
                "mfsd_flagged", "SELECT _artefact, mail_locator FROM mail_attachment "
                "WHERE severity IN ('medium', 'high', 'critical')", "mail_attachment"))
        return out

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per new domain."""
        att = ("EXISTS (SELECT 1 FROM mfsd_flagged a WHERE a._artefact = f._artefact AND "
               "a.mail_locator = f._locator)" if has_table(con, "mfsd_flagged") else "false")
        rows = query(con, f"""
            WITH own AS (SELECT d FROM mail_own_domain UNION SELECT domain FROM org_domain
                         UNION SELECT unnest(domains) FROM org_trusted),
            start AS (SELECT min(t0) AS t0 FROM mfsd_start),
            per AS (SELECT from_domain, count(*) AS n, min(ts) AS first_ts FROM mail
                    WHERE from_domain IS NOT NULL AND ts IS NOT NULL GROUP BY from_domain),
            f AS (SELECT m.*, per.n FROM mail m JOIN per ON m.from_domain = per.from_domain
                                             AND m.ts = per.first_ts, start
                  WHERE per.first_ts >= start.t0 + INTERVAL {HISTORY_DAYS} DAY
                    AND m.from_domain NOT IN (SELECT d FROM own)
                    AND NOT EXISTS (SELECT 1 FROM own o WHERE m.from_domain LIKE '%.' || o.d)
                    AND (m.attachment_count > 0 OR m.url_count > 0))
            SELECT NULL AS host, min(from_addr) AS src, from_domain AS dst,
                   CASE WHEN bool_or({att}) THEN 'medium' END AS level,
                   'first mail from ' || from_domain || ' in ' ||
                   (SELECT date_diff('day', t0, min(f.ts)) FROM start) ||
                   ' days of mail history (' || min(n) || ' in all), with ' ||
                   max(attachment_count) || ' attachment(s) and ' || max(url_count) ||
                   ' link(s): "' || coalesce(min(subject), '(no subject)') || '" from ' ||
                   min(from_addr) AS summary,
                   {{'domain': from_domain, 'from': min(from_addr), 'subject': min(subject),
                     'mails_from_domain': min(n)}} AS matched,
                   list({{'table': 'mail', 'artefact': _artefact, 'locator': _locator,
                         'source_file': source_file, 'line': NULL::BIGINT, 'ts': ts}}
                        ORDER BY _artefact, _locator) AS ev
            FROM f GROUP BY from_domain ORDER BY min(ts), from_domain""")
        yield from findings_from_rows(self.META, rows, "mail")
