"""Scripts and binaries that are new or changed against the known-good baseline."""

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


class WebrootBaselineChange(Analytic):
    """A server script (high) or executable/class (medium) not in the baseline as it is."""

    NAME: ClassVar[str] = "webroot_baseline_change"
    READS: ClassVar[frozenset[str]] = frozenset({"file"})
    #: Every finding is of files of one scan: partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = WEBROOT_PARTITION
    PARTITION_KEEP: ClassVar[Mapping[str, str] | None] = WEBROOT_KEEP
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0018", "Web-root script or binary new or changed since the baseline",
        "medium", ["T1505.003", "T1554"], ["persistence"],
        "Compared with the known-good baseline given with --baseline (a clean copy, a hash "
        "list or an earlier scan), this server script, executable or Java class is new or "
        "its content changed. High for server scripts.",
        ["https://media.defense.gov/2020/Jun/09/2002313081/-1/-1/0/"
         "CSI-DETECT-AND-PREVENT-WEB-SHELL-MALWARE-20200422.PDF",
         "https://attack.mitre.org/techniques/T1505/003/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per file."""
        rows = query(con, f"""
            SELECT host, path AS dst,
                   path || ' is ' || baseline || ' against the baseline (' || kind || ')'
                   AS summary,
                   CASE WHEN server_script THEN 'high' END AS level,
                   {{'path': path, 'baseline': baseline, 'kind': kind, 'sha256': sha256}}
                     AS matched,
                   {FILE_EVIDENCE_SQL} AS ev
            FROM webroot_file WHERE baseline IN ('new', 'modified')
              AND (server_script OR kind IN ('pe', 'class', 'elf', 'archive'))
            GROUP BY ALL ORDER BY path""")
        yield from findings_from_rows(self.META, rows, "file")
