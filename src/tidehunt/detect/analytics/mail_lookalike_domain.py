"""Sender domains that imitate the organisation's own domains (typos, homoglyphs, IDN)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, in_bucket, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

#: Characters and pairs phishers swap in for look-alikes, folded before comparing.
SKELETON_SQL = ("replace(replace(replace(replace(replace(replace(replace(lower({x}), "
                "'rn', 'm'), 'vv', 'w'), '0', 'o'), '1', 'l'), 'i', 'l'), '5', 's'), '-', '')")
_EV = ("{'table': 'mail', 'artefact': _artefact, 'locator': _locator, 'source_file': "
       "source_file, 'line': NULL::BIGINT, 'ts': ts}")
_EVIDENCE = ("list({'table': 'mail', 'artefact': _artefact, 'locator': _locator, "
             "'source_file': source_file, 'line': NULL::BIGINT, 'ts': ts} ORDER BY ts)[1:1000]")
#: A Reply-To address's domain, and a link's host (``u``), as the analytic compares them.
REPLY_DOMAIN_SQL = "lower(regexp_extract(reply_to, '@(.+)$', 1))"
LINK_DOMAIN_SQL = "lower(regexp_extract(u, '^[a-z]+://([^/:?#@]+)', 1))"
#: Every domain of a message (sender, Reply-To, links): its keys under --engine spark.
DOMAINS_SQL = (f"list_concat([lower(from_domain), {REPLY_DOMAIN_SQL}], list_transform("
               f"coalesce(string_split(urls, chr(10)), []::VARCHAR[]), "
               f"lambda u: {LINK_DOMAIN_SQL}))")


class MailLookalikeDomain(Analytic):
    """From, Reply-To or link domain within two edits of an own, partner or trusted domain,
    or equal to it once look-alike characters are folded (``c0rp``, ``rn`` for ``m``), or
    punycode (IDN)."""

    NAME: ClassVar[str] = "mail_lookalike_domain"
    READS: ClassVar[frozenset[str]] = frozenset({"mail"})
    #: --engine spark: a message goes to the bucket of each of its domains; a bucket
    #: reports the domains that are its own (``in_bucket``).
    PARTITION: ClassVar[Mapping[str, str]] = {"mail": DOMAINS_SQL}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0022", "Mail from a look-alike of the organisation's own domain", "high",
        ["T1566.001", "T1566.002", "T1583.001", "T1036"],
        ["initial-access", "resource-development", "defense-evasion"],
        "The sender's, Reply-To or a link's domain is not one of the organisation's own, "
        "partner or trusted domains (the organisation profile's, else those that receive "
        "the case's mail) but is within two edits of one (one for a name of six letters "
        "or fewer), matches it once look-alike characters are folded (0/o, 1/l, rn/m, "
        "vv/w), or is an IDN (xn--) name: "
        "how spear-phishing impersonates a trusted sender.",
        ["https://attack.mitre.org/techniques/T1566/001/",
         "https://attack.mitre.org/techniques/T1583/001/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per look-alike domain."""
        sk = SKELETON_SQL.format
        rows = query(con, f"""
            WITH own AS (SELECT d FROM mail_own_domain
                         UNION SELECT domain FROM org_domain
                         UNION SELECT unnest(domains) FROM org_trusted),
            roles AS (
                SELECT m._artefact AS art, m._locator AS loc, 'from' AS role,
                       lower(m.from_domain) AS d FROM mail m
                UNION ALL
                SELECT _artefact, _locator, 'reply_to', {REPLY_DOMAIN_SQL} FROM mail
                UNION ALL
                SELECT _artefact, _locator, 'link', {LINK_DOMAIN_SQL}
                FROM (SELECT _artefact, _locator, unnest(string_split(urls, chr(10))) AS u
                      FROM mail WHERE urls IS NOT NULL)),
            cand AS (
                SELECT m.*, r.d AS dom, r.role FROM mail m
                JOIN roles r ON r.art = m._artefact AND r.loc = m._locator
                WHERE r.d IS NOT NULL AND r.d <> '' AND r.d NOT IN (SELECT d FROM own)
                  AND NOT EXISTS (SELECT 1 FROM own o WHERE r.d LIKE '%.' || o.d)),
            hit AS (
                SELECT cand.*, o.d AS own_domain,
                       damerau_levenshtein(cand.dom, o.d) AS dist
                FROM cand JOIN own o
                  ON (damerau_levenshtein(cand.dom, o.d) <=
                          CASE WHEN length(split_part(o.d, '.', 1)) <= 6 THEN 1 ELSE 2 END
                      OR {sk(x="cand.dom")} = {sk(x="o.d")}
                      OR (cand.dom LIKE 'xn--%' OR cand.dom LIKE '%.xn--%')))
            SELECT NULL AS host, min(from_addr) AS src, dom AS dst,
                   count(DISTINCT (_artefact, _locator)) || ' mail(s) with ' ||
                   string_agg(DISTINCT role, '/' ORDER BY role) || ' domain ' || dom ||
                   ', a look-alike of ' || min(own_domain) || ' (' ||
                   CASE WHEN min(dist) <= 2 AND dom NOT LIKE '%xn--%' THEN min(dist) || ' edit(s)'
                        WHEN dom LIKE '%xn--%' THEN 'IDN name'
                        ELSE 'look-alike characters' END || '); subjects: ' ||
                   left(string_agg(DISTINCT subject, ' | ' ORDER BY subject), 200) AS summary,
                   {{'domain': dom, 'own_domain': min(own_domain), 'role': min(role),
                     'from': min(from_addr), 'subject': min(subject)}} AS matched,
                   list(DISTINCT {_EV} ORDER BY {_EV})[1:1000] AS ev
            FROM hit WHERE {in_bucket('dom')} GROUP BY dom ORDER BY min(ts)""")
        yield from findings_from_rows(self.META, rows, "mail")
