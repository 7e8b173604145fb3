"""Server scripts that no rule names but whose content looks like a shell or a packer."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    FILE_EVIDENCE_SQL,
    WEBROOT_KEEP,
    WEBROOT_PARTITION,
    Analytic,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class WebrootScriptHeuristics(Analytic):
    """Three or more dangerous functions, or dense high-entropy code, with no YARA match."""

    NAME: ClassVar[str] = "webroot_script_heuristics"
    READS: ClassVar[frozenset[str]] = frozenset({"file"})
    #: Every finding is of files of one scan: partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = WEBROOT_PARTITION
    PARTITION_KEEP: ClassVar[Mapping[str, str] | None] = WEBROOT_KEEP
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0014", "Server script with web-shell traits (heuristics)", "medium",
        ["T1505.003", "T1027"], ["persistence", "defense-evasion"],
        "A PHP, ASP, ASPX or JSP file combines three or more functions that run input as "
        "code or commands, densely (one call or more per KiB), or is packed: entropy of "
        "5.8 bits per byte or more with a single token of 1,000+ characters. High when both "
        "hold. Catches shells no signature knows.",
        ["https://media.defense.gov/2020/Jun/09/2002313081/-1/-1/0/"
         "CSI-DETECT-AND-PREVENT-WEB-SHELL-MALWARE-20200422.PDF",
         "https://attack.mitre.org/techniques/T1505/003/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per file."""
        rows = query(con, f"""
            WITH f AS (SELECT *, dangerous_count >= 3 AND dangerous_per_kb >= 1.0 AS many,
                              entropy >= 5.8 AND longest_token >= 1000 AS packed
                       FROM webroot_file WHERE server_script AND yara IS NULL)
            SELECT host, path AS dst,
                   path || ' (' || kind || '): ' ||
                   CASE WHEN many THEN 'uses ' || dangerous || ' (' || dangerous_per_kb ||
                        ' calls per KiB)' ELSE '' END ||
                   CASE WHEN many AND packed THEN '; ' ELSE '' END ||
                   CASE WHEN packed THEN 'packed (entropy ' || round(entropy, 2) ||
                        ', longest token ' || longest_token || ')' ELSE '' END AS summary,
                   CASE WHEN many AND packed THEN 'high' END AS level,
                   {{'path': path, 'kind': kind, 'dangerous': dangerous, 'per_kb': dangerous_per_kb,
                     'entropy': entropy, 'longest_token': longest_token,
                     'sha256': sha256}} AS matched,
                   {FILE_EVIDENCE_SQL} AS ev
            FROM f WHERE many OR packed GROUP BY ALL ORDER BY path""")
        yield from findings_from_rows(self.META, rows, "file")
