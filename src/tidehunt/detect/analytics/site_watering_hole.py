"""Watering-hole signs in a site's scripts: ScanBox code, new third-party origins."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class SiteWateringHole(Analytic):
    """Scripts with ScanBox traits (high; critical with two or more), new third-party
    script origins (high) and changed local scripts (medium) against the baseline."""

    NAME: ClassVar[str] = "site_watering_hole"
    READS: ClassVar[frozenset[str]] = frozenset({"site_script"})
    #: Every finding is of one script (its source, or its inline code's hash):
    #: partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {
        "site_script": "coalesce(src, 'inline ' || code_sha256)"}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0021", "Watering-hole script on the site (ScanBox traits or new origin)",
        "high", ["T1189", "T1584.004", "T1056.003", "T1592"],
        ["initial-access", "resource-development", "collection", "reconnaissance"],
        "A page of the site loads script that hooks keystrokes on every input, enumerates "
        "plugins and security software, or discovers local addresses over WebRTC/STUN, or "
        "beacons in ScanBox's /i/ URL grammar; or the site now loads script from a "
        "third-party origin (or changed local script code) that the baseline did not have. "
        "APT40 injected ScanBox into sites its targets visit.",
        ["https://attack.mitre.org/techniques/T1189/",
         "https://attack.mitre.org/groups/G0065/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (script source or inline hash), listing the pages."""
        rows = query(con, """
            WITH s AS (SELECT *, coalesce(src, 'inline ' || code_sha256) AS what
                       FROM site_script
                       WHERE traits IS NOT NULL
                          OR (baseline = 'new' AND (third_party OR src IS NOT NULL)))
            SELECT NULL AS host, coalesce(min(origin), min(src)) AS dst,
                   CASE WHEN max(traits) IS NOT NULL
                        THEN 'Script ' || what || ' shows ScanBox traits (' || max(traits) ||
                             ')' ELSE 'Script ' || what || ' is new against the baseline' END
                   || ' on ' || count(DISTINCT page) || ' page(s), e.g. ' || min(page)
                   AS summary,
                   CASE WHEN max(length(traits) - length(replace(traits, ',', ''))) >= 1
                        THEN 'critical'
                        WHEN max(traits) IS NULL AND NOT bool_or(third_party) THEN 'medium'
                   END AS level,
                   {'script': what, 'origin': min(origin), 'traits': max(traits),
                    'baseline': max(baseline), 'pages': string_agg(DISTINCT page, ', '
                        ORDER BY page)}
                     AS matched,
                   list({'table': 'site_script', 'artefact': _artefact, 'locator': _locator,
                         'source_file': source_file, 'line': NULL::BIGINT, 'ts': ts}
                        ORDER BY page)[1:1000] AS ev
            FROM s GROUP BY what ORDER BY what""")
        yield from findings_from_rows(self.META, rows, "site_script")
