"""Files whose modification time was set back: mtime far before ctime, unlike siblings."""

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

MIN_GAP_S = 2 * 86400


class WebrootTimestomp(Analytic):
    """mtime two or more days before ctime while the folder's other files agree."""

    NAME: ClassVar[str] = "webroot_timestomp"
    READS: ClassVar[frozenset[str]] = frozenset({"file"})
    #: Every finding is of files of one scan: partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = WEBROOT_PARTITION
    PARTITION_KEEP: ClassVar[Mapping[str, str] | None] = WEBROOT_KEEP
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0015", "Web-root file with a back-dated modification time", "high",
        ["T1070.006", "T1505.003"], ["defense-evasion", "persistence"],
        "The file's modification time lies two or more days before its inode change time "
        "(which touch cannot set), while the other files of its folder show no such gap: "
        "its time was copied from a neighbour to hide a new file (timestomping). Only "
        "meaningful on the original file system, not on copied evidence.",
        ["https://attack.mitre.org/techniques/T1070/006/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per file."""
        rows = query(con, f"""
            WITH d AS (SELECT *, regexp_replace(path, '/?[^/]*$', '') AS dir FROM webroot_file),
            s AS (SELECT _artefact, dir, median(ctime_gap_s) AS med, count(*) AS n
                  FROM d GROUP BY _artefact, dir)
            SELECT host, path AS dst,
                   path || ': modified ' || strftime(mtime, '%Y-%m-%d %H:%M') ||
                   ' but changed ' || strftime(ctime, '%Y-%m-%d %H:%M') || ' UTC (' ||
                   (ctime_gap_s // 86400) || ' days later); its ' || (n - 1) ||
                   ' siblings show no such gap' AS summary,
                   {{'path': path, 'mtime': mtime, 'ctime': ctime, 'kind': kind,
                     'sha256': sha256}} AS matched,
                   {FILE_EVIDENCE_SQL} AS ev
            FROM d JOIN s USING (_artefact, dir)
            WHERE ctime_gap_s >= {MIN_GAP_S} AND s.n >= 3 AND s.med < 3600
            GROUP BY ALL ORDER BY path""")
        yield from findings_from_rows(self.META, rows, "file")
