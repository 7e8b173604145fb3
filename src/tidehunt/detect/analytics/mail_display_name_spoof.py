"""Display names that claim a trusted person or organisation the mail does not come from."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import MAIL_PARTITION, Analytic, findings_from_rows, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta
from tidehunt.org import fold_sql

_EV = ("[{'table': 'mail', 'artefact': _artefact, 'locator': _locator, "
       "'source_file': min(source_file), 'line': NULL::BIGINT, 'ts': min(ts)}]")
_ADDR_RX = r"([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})"


class MailDisplayNameSpoof(Analytic):
    """A trusted name (organisation profile) in the From display name of mail from outside
    that name's domains and addresses; or a display name that shows another address."""

    NAME: ClassVar[str] = "mail_display_name_spoof"
    READS: ClassVar[frozenset[str]] = frozenset({"mail"})
    #: Every finding is of one message: partitioned by its evidence file on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = MAIL_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0029", "Mail whose display name impersonates a trusted sender", "high",
        ["T1566.001", "T1656", "T1036"], ["initial-access", "defense-evasion"],
        "The From display name holds the name or alias of a person or organisation in the "
        "organisation profile's trusted list (compared without case, accents or look-alike "
        "characters) but the address is outside that entry's domains and addresses; or "
        "the display name shows an e-mail address of another domain than the real sender's "
        "(\"editor@navy.example\" <x@mail.example>). APT40 poses as journalists, trade "
        "publications, military bodies and NGOs.",
        ["https://attack.mitre.org/techniques/T1656/",
         "https://attack.mitre.org/techniques/T1566/001/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per message."""
        fn = fold_sql("from_name")
        rows = query(con, f"""
            WITH m AS (SELECT *, ' ' || {fn} || ' ' AS fn, lower(from_addr) AS addr,
                              lower(regexp_extract(from_name, '{_ADDR_RX}', 1)) AS shown
                       FROM mail WHERE from_name IS NOT NULL AND from_name <> ''),
            trusted AS (
                SELECT m.*, t.name AS trusted_name, t.domains AS t_domains,
                       'the display name "' || m.from_name || '" names the trusted ' ||
                       t.name || ', but the mail comes from ' || coalesce(m.from_addr, '?') ||
                       CASE WHEN len(t.domains) > 0
                            THEN ' (not ' || array_to_string(t.domains, ', ') || ')'
                            ELSE '' END AS why
                FROM m JOIN org_trusted t ON m.fn LIKE '% ' || t.folded || ' %'
                WHERE (len(t.domains) > 0 OR len(t.addresses) > 0)
                  AND NOT list_contains(t.addresses, m.addr)
                  AND NOT list_has_any(t.domains, [m.from_domain])
                  AND NOT EXISTS (SELECT 1 FROM unnest(t.domains) u(d)
                                  WHERE m.from_domain LIKE '%.' || u.d)),
            shown AS (
                SELECT m.*, NULL AS trusted_name, NULL::VARCHAR[] AS t_domains,
                       'the display name "' || m.from_name || '" shows the address ' ||
                       m.shown || ', but the mail comes from ' || coalesce(m.from_addr, '?')
                       AS why
                FROM m WHERE m.shown <> '' AND m.shown <> m.addr
                  AND split_part(m.shown, '@', 2) <> coalesce(m.from_domain, '')),
            hit AS (SELECT * FROM trusted UNION ALL
                    SELECT * FROM shown WHERE (_artefact, _locator) NOT IN
                        (SELECT (_artefact, _locator) FROM trusted))
            SELECT NULL AS host, from_addr AS src, min(trusted_name) AS dst,
                   string_agg(DISTINCT why, '; ' ORDER BY why) || '. Subject: ' ||
                   coalesce(min(subject), '(none)') AS summary,
                   {{'from': min(from_addr), 'display_name': min(from_name),
                     'trusted': min(trusted_name), 'subject': min(subject)}} AS matched,
                   {_EV} AS ev
            FROM hit GROUP BY _artefact, _locator, from_addr
            ORDER BY min(ts), _artefact, _locator""")
        yield from findings_from_rows(self.META, rows, "mail")
