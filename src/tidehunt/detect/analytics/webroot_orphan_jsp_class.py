"""Compiled JSPs in Tomcat's work folder whose source page is gone: a deleted shell."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    WEBROOT_KEEP,
    WEBROOT_PARTITION,
    Analytic,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class WebrootOrphanJspClass(Analytic):
    """work/Catalina/<host>/<app>/org/apache/jsp/..._jsp.class with no matching .jsp."""

    NAME: ClassVar[str] = "webroot_orphan_jsp_class"
    READS: ClassVar[frozenset[str]] = frozenset({"file"})
    #: Every finding is of files of one scan: partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = WEBROOT_PARTITION
    PARTITION_KEEP: ClassVar[Mapping[str, str] | None] = WEBROOT_KEEP
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0016", "Compiled JSP with no source page (deleted web shell)", "high",
        ["T1505.003", "T1070.004"], ["persistence", "defense-evasion"],
        "Tomcat keeps the compiled class of every JSP it served under work/. A class whose "
        ".jsp no longer exists in the web application was served and then deleted: how a "
        "JSP web shell is cleaned up after use, or a memory shell's dropper.",
        ["https://media.defense.gov/2020/Jun/09/2002313081/-1/-1/0/"
         "CSI-DETECT-AND-PREVENT-WEB-SHELL-MALWARE-20200422.PDF",
         "https://attack.mitre.org/techniques/T1505/003/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per orphan class."""
        rows = query(con, """
            WITH c AS (
                SELECT *, regexp_extract(path,
                    '(^|/)work/[^/]+/[^/]+/([^/]+)/org/apache/jsp/(.*)_jsp\\.class$', 2)
                    AS app,
                    regexp_extract(path,
                    '(^|/)work/[^/]+/[^/]+/([^/]+)/org/apache/jsp/(.*)_jsp\\.class$', 3)
                    AS mangled
                FROM webroot_file),
            o AS (SELECT *, replace(replace(replace(replace(mangled, '_002d', '-'),
                                    '_002e', '.'), '_005f', '_'), '_0020', ' ') || '.jsp'
                          AS jsp,
                         CASE WHEN app IN ('_', 'ROOT') THEN 'ROOT' ELSE app END AS webapp
                  FROM c WHERE mangled <> '')
            SELECT o.host, o.path AS dst,
                   o.path || ' was compiled from ' || o.webapp || '/' || o.jsp ||
                   ', which is not in the web root' AS summary,
                   {'class': o.path, 'expected_jsp': o.webapp || '/' || o.jsp,
                     'sha256': o.sha256} AS matched,
                   list({'table': 'file', 'artefact': o._artefact, 'locator': o._locator,
                          'source_file': o.root || '/' || o.path, 'line': NULL::BIGINT,
                          'ts': o.ts}) AS ev
            FROM o WHERE NOT EXISTS (
                SELECT 1 FROM webroot_file j WHERE j._artefact = o._artefact
                  AND lower(j.path) LIKE '%' || lower(o.webapp || '/' || o.jsp))
            GROUP BY ALL ORDER BY o.path""")
        yield from findings_from_rows(self.META, rows, "file")
