"""Hosts that reached a watering hole: the injected script's host (or the site, when the
scan knows its address) resolved or contacted from the case's Windows hosts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import Analytic, Prepared, findings_from_rows, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

_HOST_RX = "^[a-z]+://([^/:?#@]+)"


class SiteWateringHoleVisit(Analytic):
    """Sysmon DNS queries (22) and connections (3) to the host of a script the site scan
    flagged (ScanBox traits, or a new third-party origin), or to the site itself."""

    NAME: ClassVar[str] = "site_watering_hole_visit"
    READS: ClassVar[frozenset[str]] = frozenset({"site_script", "windows"})
    #: --engine spark: Windows DNS and connection events by host, each bucket with the
    #: flagged site scripts (a scan of site_script, collected: they are few).
    PARTITION: ClassVar[Mapping[str, str]] = {"windows": "lower(host)"}
    PARTITION_KEEP: ClassVar[Mapping[str, str]] = {
        "windows": "event_id IN (3, 22) AND host IS NOT NULL"}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0033", "A host reached the watering hole's injected script", "high",
        ["T1189", "T1592", "T1594"], ["initial-access", "reconnaissance"],
        "A Windows host resolved or connected to the host of a script that the site scan "
        "flagged on a site the organisation's people read (ScanBox traits or a new "
        "third-party origin): the browser ran the actor's profiling code, which is how "
        "APT40 chooses whom to phish next and with what.",
        ["https://attack.mitre.org/techniques/T1189/",
         "https://attack.mitre.org/techniques/T1592/"], __name__)

    def prepared(self, con: Any) -> list[Prepared]:
        """The site scan's flagged scripts, with the host each loads from."""
        return [Prepared("swhv_flagged", f"""
            SELECT _artefact, _locator, source_file, traits,
                   lower(regexp_extract(coalesce(origin, src, page), '{_HOST_RX}', 1)) AS dom
            FROM site_script
            WHERE traits IS NOT NULL OR (baseline = 'new' AND third_party)""",
                         "site_script")]

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, domain)."""
        have = {r[0].lower(): r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = "
            "'windows'").fetchall()}
        qn, dh = have.get("queryname"), have.get("destinationhostname")
        if not qn and not dh:
            return
        cond = " OR ".join(f'lower(w."{c}") = d.dom' for c in (qn, dh) if c)
        img = f'w."{have["image"]}"' if "image" in have else "NULL"
        rows = query(con, f"""
            WITH flagged AS (SELECT * FROM swhv_flagged),
            d AS (SELECT dom, min(_artefact) AS art, min(_locator) AS loc,
                         min(source_file) AS src, string_agg(DISTINCT coalesce(traits,
                         'new third-party script'), '; ' ORDER BY coalesce(traits,
                         'new third-party script')) AS why
                  FROM flagged WHERE dom IS NOT NULL AND dom <> '' GROUP BY dom),
            hit AS (
                SELECT d.*, w.host, w.ts, w._artefact AS wart, w._locator AS wloc,
                       w.source_file AS wsrc, w.event_id, {img} AS img
                FROM windows w JOIN d ON ({cond})
                WHERE w.event_id IN (3, 22) AND w.host IS NOT NULL)
            SELECT host, regexp_extract(min(img), '[^\\\\]+$') AS src, dom AS dst,
                   host || ' reached ' || dom || ' (' || min(why) || ') at ' ||
                   strftime(min(ts), '%Y-%m-%d %H:%M:%S') || ' UTC: ' ||
                   count(*) FILTER (WHERE event_id = 22) || ' DNS queries, ' ||
                   count(*) FILTER (WHERE event_id = 3) || ' connections by ' ||
                   coalesce(regexp_extract(min(img), '[^\\\\]+$'), '?') AS summary,
                   {{'domain': dom, 'flagged': min(why), 'process': min(img)}} AS matched,
                   list_concat([{{'table': 'site_script', 'artefact': min(art),
                                 'locator': min(loc), 'source_file': min(src),
                                 'line': NULL::BIGINT, 'ts': NULL::TIMESTAMPTZ}}],
                               list({{'table': 'windows', 'artefact': wart, 'locator': wloc,
                                     'source_file': wsrc, 'line': NULL::BIGINT, 'ts': ts}}
                                    ORDER BY ts, wloc)[1:50]) AS ev
            FROM hit GROUP BY host, dom ORDER BY min(ts), host, dom""")
        yield from findings_from_rows(self.META, rows, "windows")
