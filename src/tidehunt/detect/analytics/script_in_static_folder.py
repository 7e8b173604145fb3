"""Server-side scripts served from folders meant for images, uploads and static files."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    ATTACK_T1505_003,
    DECODED_STEM,
    EVIDENCE_SQL,
    EXECUTED_EXT,
    HOST_SQL,
    NSA_WEBSHELLS,
    Analytic,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

STATIC_RX = (r"/(uploads?|upload_files?|images?|imgs?|pics?|static|css|js|fonts?|"
             r"media|files|attachments?|avatars?|thumbs?|icons?|downloads?)/")


class ScriptInStaticFolder(Analytic):
    """A 2xx answer for .php/.jsp/.aspx... under an upload or image folder."""

    NAME: ClassVar[str] = "script_in_static_folder"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access"})
    #: Every finding is of one server (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"web_access": HOST_SQL}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0008", "Server-side script served from an upload or static folder",
        "high", ["T1505.003", "T1036"], ["persistence", "defense-evasion"],
        "A script file answered with 2xx from a folder that should only hold images, "
        "uploads or static content: the usual place a web shell lands after an upload flaw "
        "is exploited, disguised among legitimate files.",
        [NSA_WEBSHELLS, ATTACK_T1505_003], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, URI)."""
        rows = query(con, f"""
            WITH r AS (SELECT *, {HOST_SQL} AS h, {DECODED_STEM} AS s FROM web_access
                       WHERE status BETWEEN 200 AND 299)
            SELECT h AS host, min(client_ip) AS src, min(uri_stem) AS dst,
                   'Script ' || min(uri_stem) || ' served from a static folder: ' ||
                   count(*) || ' requests from ' || string_agg(DISTINCT client_ip, ', '
                       ORDER BY client_ip)
                   AS summary,
                   {{'uri': min(uri_stem), 'clients': string_agg(DISTINCT client_ip, ', '
                       ORDER BY client_ip),
                     'methods': string_agg(DISTINCT method, ','
                         ORDER BY method), 'requests': count(*)}}
                     AS matched,
                   {EVIDENCE_SQL} AS ev
            FROM r WHERE regexp_matches(s, ?) AND regexp_matches(s, '{EXECUTED_EXT}')
            GROUP BY h, s ORDER BY min(ts)""", [STATIC_RX])
        yield from findings_from_rows(self.META, rows)
