"""Spear-phishing from inside: an internal mailbox sending an outside-style lure."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.attachments.names import LURE_THEMES
from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    CLOUD_STORAGE_RX,
    MAIL_PARTITION,
    Analytic,
    findings_from_rows,
    has_table,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

LURE_RX = "(?i)" + "|".join(f"(?:{rx.pattern})" for rx in LURE_THEMES.values())


class MailInternalSpearphish(Analytic):
    """Mail from an own domain, not failing authentication, with a flagged attachment, or a
    lure subject and a link to file sharing or a raw IP outside the organisation."""

    NAME: ClassVar[str] = "mail_internal_spearphish"
    READS: ClassVar[frozenset[str]] = frozenset({"mail"})
    #: Every finding is of one message: partitioned by its evidence file on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = MAIL_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0031", "Internal mail carrying an outside-style lure (compromised mailbox)",
        "high", ["T1534", "T1566.001", "T1566.002", "T1078"],
        ["lateral-movement", "initial-access", "defense-evasion"],
        "A message from one of the organisation's own domains, that passed (or lacks) SPF, "
        "DKIM and DMARC, carries an attachment the analysis flagged (medium or worse) or "
        "links to file sharing, a paste site or a bare IP address outside the organisation "
        "under a lure subject (research, CV, interview, conference, shipping): what a "
        "stolen internal mailbox sends colleagues (internal spear-phishing).",
        ["https://attack.mitre.org/techniques/T1534/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per message."""
        att = ("(SELECT string_agg(a.filename || ' (' || a.severity || ': ' || "
               "coalesce(a.indicators, '') || ')', '; ' ORDER BY a.filename, a.severity, "
               "a.indicators) FROM mail_attachment a "
               "WHERE a._artefact = m._artefact AND a.mail_locator = m._locator AND "
               "a.severity IN ('medium', 'high', 'critical'))"
               if has_table(con, "mail_attachment") else "NULL")
        rows = query(con, f"""
            WITH own AS (SELECT d FROM mail_own_domain),
            m AS (
                SELECT m.*, {att} AS bad_att,
                       (SELECT string_agg(u, ' ') FROM (
                          SELECT unnest(string_split(coalesce(m.urls, ''), chr(10))) AS u) x
                        WHERE (regexp_matches(lower(u), ?) OR
                               regexp_matches(u, '^[a-z]+://\\d+\\.\\d+\\.\\d+\\.\\d+'))
                          AND NOT EXISTS (SELECT 1 FROM own o WHERE
                               lower(regexp_extract(u, '^[a-z]+://([^/:?#@]+)', 1)) = o.d
                               OR lower(regexp_extract(u, '^[a-z]+://([^/:?#@]+)', 1))
                                  LIKE '%.' || o.d)) AS bad_url
                FROM mail m
                WHERE m.from_domain IN (SELECT d FROM own)
                  AND coalesce(m.spf, '') NOT IN ('fail', 'softfail')
                  AND coalesce(m.dkim, '') <> 'fail' AND coalesce(m.dmarc, '') <> 'fail')
            SELECT NULL AS host, from_addr AS src, "to" AS dst,
                   'internal sender ' || from_addr || ' sent "' ||
                   coalesce(subject, '(no subject)') || '" to ' ||
                   (len(string_split(coalesce("to", '') || ',' || coalesce(cc, ''), ',')) -
                    CASE WHEN cc IS NULL THEN 1 ELSE 0 END) ||
                   ' recipient(s) with ' ||
                   coalesce('flagged attachment ' || bad_att, 'a lure subject and link(s) ' ||
                            bad_url) || ': a compromised mailbox?' AS summary,
                   {{'from': from_addr, 'subject': subject, 'attachments': bad_att,
                     'links': left(bad_url, 500)}} AS matched,
                   [{{'table': 'mail', 'artefact': _artefact, 'locator': _locator,
                      'source_file': source_file, 'line': NULL::BIGINT, 'ts': ts}}] AS ev
            FROM m
            WHERE bad_att IS NOT NULL
               OR (bad_url IS NOT NULL AND regexp_matches(coalesce(subject, ''), ?))
            ORDER BY ts, _artefact, _locator""", [CLOUD_STORAGE_RX, LURE_RX])
        yield from findings_from_rows(self.META, rows, "mail")
