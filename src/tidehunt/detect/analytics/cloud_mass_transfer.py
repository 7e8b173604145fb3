"""Mass download from, or upload to, cloud storage by one account in one hour."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

MIN_FILES = 50
DOWNLOAD = ("filedownloaded", "filesyncdownloadedfull", "filesyncdownloadedpartial",
            "download", "filecopied", "export")
UPLOAD = ("fileuploaded", "filesyncuploadedfull", "upload", "create", "filesyncuploadedpartial")


class CloudMassTransfer(Analytic):
    """At least 50 files downloaded (or uploaded) in one hour by one account, and at least
    five times that account's median hour."""

    NAME: ClassVar[str] = "cloud_mass_transfer"
    READS: ClassVar[frozenset[str]] = frozenset({"cloud_audit"})
    #: Every finding is of one user (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"cloud_audit": '"user"'}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0042", "Mass download from or upload to cloud storage", "high",
        ["T1530", "T1567.002"], ["collection", "exfiltration"],
        f"One account downloaded (SharePoint, OneDrive, Google Drive) or uploaded at least "
        f"{MIN_FILES} files in one hour, five times or more its own median hour: a mailbox "
        "or tenant account harvesting documents, or staging data out through the cloud.",
        ["https://attack.mitre.org/techniques/T1530/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (account, hour, direction)."""
        dl = ", ".join(f"'{x}'" for x in DOWNLOAD)
        ul = ", ".join(f"'{x}'" for x in UPLOAD)
        rows = query(con, f"""
            WITH t AS (SELECT *, CASE WHEN lower(operation) IN ({dl}) THEN 'download'
                                      WHEN lower(operation) IN ({ul}) THEN 'upload' END AS dir,
                              date_trunc('hour', ts) AS hour
                       FROM cloud_audit),
            h AS (SELECT "user", dir, hour, count(*) AS n, count(DISTINCT object) AS files
                  FROM t WHERE dir IS NOT NULL GROUP BY ALL),
            med AS (SELECT "user", dir, median(n) AS m FROM h GROUP BY ALL),
            hit AS (SELECT h.* , med.m FROM h JOIN med USING ("user", dir)
                    WHERE h.files >= {MIN_FILES} AND h.n >= 5 * med.m
                       OR (h.files >= {MIN_FILES} AND (SELECT count(*) FROM h h2
                           WHERE h2."user" = h."user" AND h2.dir = h.dir) = 1))
            SELECT NULL AS host, t."user", min(t.src_ip) AS src, hit.dir AS dst,
                   t."user" || ' ' || hit.dir || 'ed ' || min(hit.files) || ' files in the '
                   || 'hour from ' || strftime(hit.hour, '%Y-%m-%d %H:00') || ' UTC (' ||
                   min(t.workload) || '; median hour ' || min(hit.m) || ' events)' ||
                   coalesce(' from ' || min(t.src_ip), '') AS summary,
                   {{'user': t."user", 'direction': hit.dir, 'files': min(hit.files),
                     'hour': strftime(hit.hour, '%Y-%m-%dT%H:00Z')}} AS matched,
                   list({{'table': 'cloud_audit', 'artefact': t._artefact,
                         'locator': t._locator, 'source_file': t.source_file,
                         'line': NULL::BIGINT, 'ts': t.ts}} ORDER BY t.ts, t._locator)[1:200]
                       AS ev
            FROM hit JOIN t ON t."user" = hit."user" AND t.dir = hit.dir AND t.hour = hit.hour
            GROUP BY t."user", hit.dir, hit.hour ORDER BY hit.hour, t."user", hit.dir""")
        yield from findings_from_rows(self.META, rows, "cloud_audit")
