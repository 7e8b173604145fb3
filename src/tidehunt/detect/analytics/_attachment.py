"""Shared base of the attachment analytics: one finding per attachment (or file inside
one) whose analysis found indicators of a kind, at the level of the worst of them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import MAIL_PARTITION, Analytic, findings_from_rows, query
from tidehunt.model.finding import Finding

_IND_TYPE = ('[{"id": "VARCHAR", "severity": "VARCHAR", "detail": "VARCHAR", '
             '"technique": "VARCHAR", "cve": "VARCHAR"}]')
LEVEL_RANK = ("CASE i.severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 "
              "WHEN 'low' THEN 1 ELSE 0 END")
#: Attachment rows with their message's subject and sender, one row per indicator.
INDICATORS_SQL = f"""
    SELECT a.*, m.subject AS mail_subject, m.from_addr AS mail_from, m."to" AS mail_to,
           m._locator AS m_loc, m.source_file AS m_src, m.ts AS m_ts,
           i.id AS ind_id, i.severity AS ind_level, i.detail AS ind_detail,
           i.technique AS ind_technique, i.cve AS ind_cve, {LEVEL_RANK} AS ind_rank
    FROM mail_attachment a
    LEFT JOIN mail m ON m._artefact = a._artefact AND m._locator = a.mail_locator,
    LATERAL (SELECT unnest(from_json(a.analysis, '{_IND_TYPE}'), recursive := true)) i
    WHERE a.analysis IS NOT NULL"""


class AttachmentIndicators(Analytic):
    """Attachments whose indicators match ``IDS`` (a regular expression over their IDs)."""

    IDS: ClassVar[str]
    READS: ClassVar[frozenset[str]] = frozenset({"mail", "mail_attachment"})
    #: Every finding is of one message: partitioned by its evidence file on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = MAIL_PARTITION

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per file, the worst indicator first in its summary."""
        rows = query(con, f"""
            WITH i AS ({INDICATORS_SQL}),
            hit AS (SELECT * FROM i WHERE regexp_full_match(ind_id, ?))
            SELECT NULL AS host,
                   min(mail_from) AS src, min(filename) AS dst,
                   CASE max(ind_rank) WHEN 4 THEN 'critical' WHEN 3 THEN 'high'
                        WHEN 2 THEN 'medium' WHEN 1 THEN 'low' ELSE 'informational' END
                       AS level,
                   min(filename) || ' (' || min(kind) ||
                   CASE WHEN min(depth) > 0 THEN ', inside ' || min(parent) ELSE '' END ||
                   ') in mail "' || coalesce(min(mail_subject), '(no subject)') || '" from ' ||
                   coalesce(min(mail_from), '?') || ': ' ||
                   arg_max(ind_detail, (ind_rank * 1000 - length(ind_id), ind_detail))
                       FILTER (WHERE ind_rank * 1000 - length(ind_id) IS NOT NULL) ||
                   CASE WHEN count(DISTINCT ind_id) > 1
                        THEN ' (+' || (count(DISTINCT ind_id) - 1) || ': ' ||
                             string_agg(DISTINCT ind_id, ', ' ORDER BY ind_id) || ')' ELSE '' END ||
                   CASE WHEN min(lure_themes) IS NOT NULL
                        THEN '; lure themes: ' || min(lure_themes) ELSE '' END AS summary,
                   {{'filename': min(filename), 'sha256': min(sha256), 'kind': min(kind),
                     'indicators': string_agg(DISTINCT ind_id, ',' ORDER BY ind_id),
                     'cves': min(cves), 'urls': left(min(urls), 500),
                     'lnk_target': min(lnk_target), 'lnk_arguments': left(min(lnk_arguments), 500),
                     'password': min(password), 'lure_themes': min(lure_themes),
                     'subject': min(mail_subject), 'from': min(mail_from), 'to': min(mail_to),
                     'extracted': min(extracted)}} AS matched,
                   [{{'table': 'mail_attachment', 'artefact': _artefact, 'locator': _locator,
                      'source_file': min(source_file), 'line': NULL::BIGINT, 'ts': min(ts)}},
                    {{'table': 'mail', 'artefact': _artefact, 'locator': min(m_loc),
                      'source_file': min(m_src), 'line': NULL::BIGINT, 'ts': min(m_ts)}}] AS ev
            FROM hit GROUP BY _artefact, _locator
            ORDER BY min(ts), _artefact, _locator""", [self.IDS])
        yield from findings_from_rows(self.META, rows, "mail_attachment")
