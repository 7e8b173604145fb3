"""Assets exposed to the CVEs APT40 exploits (and KEV's), ranked, with exploit attempts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    DECODED_QUERY,
    DECODED_STEM,
    Analytic,
    Prepared,
    findings_from_rows,
    has_table,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class VulnExposure(Analytic):
    """Each (asset, CVE) of ``vuln_exposure`` (computed from the inventory with the
    version ranges), raised by exploit attempts seen in the web logs."""

    NAME: ClassVar[str] = "vuln_exposure"
    READS: ClassVar[frozenset[str]] = frozenset({"inventory"})
    #: --engine spark: the exploit attempts come from a scan of the web logs (each batch
    #: against the exposures); the driver reduces them, per exposure.
    REDUCE: ClassVar[bool] = True
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0035", "Asset exposed to a vulnerability APT40 exploits", "high",
        ["T1190", "T1203", "T1588.006"], ["initial-access", "execution",
                                          "resource-development"],
        "An inventory entry's product and version fall in the affected ranges of a CVE that "
        "public reports say APT40 exploited (Log4Shell, the Confluence OGNL injection, "
        "ProxyShell, WinRAR CVE-2023-38831, the Office exploits), or a product the CISA KEV "
        "catalogue lists. Critical when the asset faces the internet or the web logs show "
        "exploit attempts against it (JNDI lookups, Confluence OGNL paths, ProxyShell "
        "autodiscover requests) on that host (or in a log whose path names it); KEV-only "
        "matches, whose versions are not checked, are low. An internet-facing in-house "
        "application (inventory column custom) is reported at medium: no advisory covers "
        "it, and it was APT40's door in the 2024 advisory's case.",
        ["https://www.cisa.gov/known-exploited-vulnerabilities-catalog",
         "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a"], __name__)

    def prepared(self, con: Any) -> list[Prepared]:
        """The web requests that match an exposure's exploit pattern on its host."""
        if not (has_table(con, "vuln_exposure") and has_table(con, "web_access")):
            return []
        return [Prepared("ve_attempt", f"""
            SELECT v.rid, w.ts, w.client_ip, w._artefact, w._locator, w.source_file, w.line
            FROM vuln_exposure v JOIN web_access w
              ON v.exploit_uri IS NOT NULL
             AND regexp_matches({DECODED_STEM.replace('uri_stem', 'w.uri_stem')} || '?' ||
                                {DECODED_QUERY.replace('uri_query', 'w.uri_query')},
                                v.exploit_uri)
             AND (v.host IS NULL
                  OR lower(split_part(coalesce(w.host, w.vhost, ''), '.', 1))
                     = lower(split_part(v.host, '.', 1))
                  -- a log with no host name: its path names the server (logs/app01/...)
                  OR (w.host IS NULL AND contains(lower(w.source_file),
                                                  lower(split_part(v.host, '.', 1)))))""",
                         "web_access")]

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (asset, CVE), APT40 first."""
        if not has_table(con, "vuln_exposure"):
            return
        attempts = """
            SELECT rid, count(*) AS n, min(ts) AS first, string_agg(DISTINCT
                   client_ip, ', ' ORDER BY client_ip) AS clients,
                   list({'table': 'web_access', 'artefact': _artefact,
                         'locator': _locator, 'source_file': source_file,
                         'line': line, 'ts': ts} ORDER BY ts, _locator)[1:50] AS ev
            FROM ve_attempt GROUP BY rid""" if has_table(con, "ve_attempt") else (
            "SELECT NULL::BIGINT AS rid, 0 AS n, NULL::TIMESTAMPTZ AS first, "
            "NULL AS clients, [] AS ev WHERE false")
        rows = query(con, f"""
            WITH a AS ({attempts})
            SELECT v.host, v.cve AS dst, a.clients AS src,
                   CASE WHEN v.apt40 IS NOT NULL AND (coalesce(a.n, 0) > 0 OR
                                                      v.internet_facing) THEN 'critical'
                        WHEN v.apt40 IS NOT NULL THEN 'high'
                        WHEN coalesce(a.n, 0) > 0 THEN 'high'
                        WHEN v.cve = 'IN-HOUSE-APP' THEN 'medium'
                        ELSE 'low' END AS level,
                   coalesce(v.host, 'an asset') || ': ' || v.product ||
                   coalesce(' ' || v.version, '') ||
                   CASE WHEN v.cve = 'IN-HOUSE-APP' THEN ' is an ' || v.name
                        ELSE ' is exposed to ' || v.cve || ' (' || v.name || ')' END ||
                   coalesce(', exploited by APT40: ' || v.apt40, '') ||
                   coalesce('; in KEV since ' || nullif(v.kev_added, '') || ', due ' ||
                            nullif(v.kev_due, '') ||
                            CASE WHEN v.overdue THEN ' (overdue)' ELSE '' END, '') ||
                   CASE WHEN v.internet_facing THEN '; internet-facing' ELSE '' END ||
                   CASE WHEN coalesce(a.n, 0) > 0 THEN '; ' || a.n ||
                        ' exploit attempt(s) in the web logs from ' || a.clients ||
                        ' since ' || strftime(a.first, '%Y-%m-%d %H:%M') ELSE '' END ||
                   coalesce('; ' || v.note, '') AS summary,
                   {{'cve': v.cve, 'product': v.product, 'version': v.version,
                     'apt40': v.apt40, 'kev_due': v.kev_due, 'attempts': coalesce(a.n, 0),
                     'internet_facing': v.internet_facing}} AS matched,
                   list_concat([{{'table': 'inventory', 'artefact': v.artefact,
                                 'locator': v.locator, 'source_file': v.source_file,
                                 'line': NULL::BIGINT, 'ts': NULL::TIMESTAMPTZ}}],
                               coalesce(a.ev, [])) AS ev
            FROM vuln_exposure v LEFT JOIN a ON a.rid = v.rid
            ORDER BY v.rid""")
        yield from findings_from_rows(self.META, rows, "inventory")
