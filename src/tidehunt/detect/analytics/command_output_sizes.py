"""Response sizes that swing like command output, from one script to one client."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    ATTACK_T1505_003,
    DECODED_STEM,
    EVIDENCE_SQL,
    HOST_SQL,
    NSA_WEBSHELLS,
    Analytic,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

MIN_POSTS = 5
MIN_SPREAD = 10  # largest response at least ten times the smallest


class CommandOutputSizes(Analytic):
    """Many POSTs from one client to one script, with wildly varying response sizes."""

    NAME: ClassVar[str] = "command_output_sizes"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access"})
    #: Every finding is of one server (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"web_access": HOST_SQL}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0007", "Web-shell conversation: varying output sizes to one client",
        "high", ["T1505.003", "T1059"], ["persistence", "execution"],
        "One or two clients POST repeatedly to the same script and the answers vary from "
        "tiny to very large (at least tenfold) with many distinct sizes: commands going in, "
        "their output coming back. A form or API posts give near-constant sizes.",
        [NSA_WEBSHELLS, ATTACK_T1505_003], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, client, script)."""
        rows = query(con, f"""
            WITH r AS (SELECT *, {HOST_SQL} AS h, {DECODED_STEM} AS s FROM web_access),
            uri AS (SELECT h, s FROM r GROUP BY h, s HAVING count(DISTINCT client_ip) <= 2),
            p AS (SELECT r.* FROM r JOIN uri ON uri.h IS NOT DISTINCT FROM r.h AND uri.s = r.s
                  WHERE method = 'POST' AND status BETWEEN 200 AND 299
                    AND bytes_sent IS NOT NULL)
            SELECT h AS host, client_ip AS src, min(uri_stem) AS dst,
                   count(*) || ' POSTs from ' || coalesce(client_ip, '?') || ' to ' ||
                   min(uri_stem) || ' answered with ' || count(DISTINCT bytes_sent) ||
                   ' different sizes from ' || min(bytes_sent) || ' to ' || max(bytes_sent) ||
                   ' bytes' AS summary,
                   {{'uri': min(uri_stem), 'client_ip': client_ip, 'posts': count(*),
                     'distinct_sizes': count(DISTINCT bytes_sent),
                     'min_bytes': min(bytes_sent), 'max_bytes': max(bytes_sent)}} AS matched,
                   {EVIDENCE_SQL} AS ev
            FROM p GROUP BY h, client_ip, s
            HAVING count(*) >= {MIN_POSTS} AND count(DISTINCT bytes_sent) >= {MIN_POSTS}
               AND max(bytes_sent) >= {MIN_SPREAD} * greatest(min(bytes_sent), 1)
            ORDER BY min(ts)""")
        yield from findings_from_rows(self.META, rows)
