"""Server scripts where only images or uploads belong, or behind an image extension."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    FILE_EVIDENCE_SQL,
    STATIC_DIR_RX,
    WEBROOT_KEEP,
    WEBROOT_PARTITION,
    Analytic,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

IMAGE_EXT = ("jpg", "jpeg", "png", "gif", "bmp", "ico", "svg", "webp", "txt", "css", "js")


class WebrootMisplacedScript(Analytic):
    """PHP/ASPX/JSP content in an upload or static folder, or named like an image."""

    NAME: ClassVar[str] = "webroot_misplaced_script"
    READS: ClassVar[frozenset[str]] = frozenset({"file"})
    #: Every finding is of files of one scan: partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = WEBROOT_PARTITION
    PARTITION_KEEP: ClassVar[Mapping[str, str] | None] = WEBROOT_KEEP
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0017", "Server script in an upload/static folder or disguised by name",
        "high", ["T1505.003", "T1036.008"], ["persistence", "defense-evasion"],
        "A file whose content is PHP, ASP, ASPX or JSP sits in a folder meant for uploads, "
        "images or static files, or carries an image or text extension: web shells are "
        "dropped there through upload flaws and disguised as legitimate files.",
        ["https://media.defense.gov/2020/Jun/09/2002313081/-1/-1/0/"
         "CSI-DETECT-AND-PREVENT-WEB-SHELL-MALWARE-20200422.PDF",
         "https://attack.mitre.org/techniques/T1505/003/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per file."""
        exts = ", ".join(f"'{e}'" for e in IMAGE_EXT)
        rows = query(con, f"""
            SELECT host, path AS dst,
                   path || ': ' || kind || ' code ' ||
                   CASE WHEN ext IN ({exts}) THEN 'behind a .' || ext || ' name'
                        ELSE 'in an upload/static folder' END AS summary,
                   {{'path': path, 'kind': kind, 'ext': ext, 'sha256': sha256}} AS matched,
                   {FILE_EVIDENCE_SQL} AS ev
            FROM webroot_file WHERE server_script
              AND (ext IN ({exts}) OR regexp_matches(lower(path), ?))
            GROUP BY ALL ORDER BY path""", [STATIC_DIR_RX])
        yield from findings_from_rows(self.META, rows, "file")
