"""SQL injection in requests; high when the database answered with an error."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    APT40_ADVISORY,
    DECODED_QUERY,
    DECODED_STEM,
    EVIDENCE_SQL,
    HOST_SQL,
    Analytic,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

SQLI_RX = (r"union(\s|/\*.*?\*/)+(all(\s|/\*.*?\*/)+)?select\b|'\s*(or|and)\s+'?\w+'?\s*=|"
           r"\b(or|and)\s+\d+\s*=\s*(\d+|@@)|@@version|xp_cmdshell|sp_oacreate|"
           r"waitfor\s+delay\s+'|benchmark\s*\(\s*\d|\bsleep\s*\(\s*\d|pg_sleep\s*\(|"
           r"information_schema\.|\bconvert\s*\(\s*int\s*,|;\s*(drop|exec|declare|shutdown)\s|"
           r"extractvalue\s*\(|updatexml\s*\(|load_file\s*\(|into\s+(out|dump)file")
#: IIS appends the ODBC/OLE DB error to cs-uri-query; a 500 answer is the other sign.
DB_ERROR_RX = r"80040e|odbc|sql_server|ora-\d{5}|mysql_|syntax error|unclosed quotation"


class SqlInjectionRequest(Analytic):
    """SQL injection payloads in the URI; raised to high when the database errored."""

    NAME: ClassVar[str] = "sql_injection_request"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access"})
    #: Every finding is of one server (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"web_access": HOST_SQL}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0010", "SQL injection against a web application", "medium",
        ["T1190"], ["initial-access"],
        "Requests carry SQL injection payloads (UNION SELECT, tautologies, @@version, "
        "stacked queries, time delays). High when the server answered 500 or the log "
        "carries the database's error: the payload reached the database.",
        ["https://attack.mitre.org/techniques/T1190/",
         APT40_ADVISORY], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, client, URI)."""
        rows = query(con, f"""
            WITH r AS (SELECT *, {DECODED_QUERY} || ' ' || {DECODED_STEM} AS q
                       FROM web_access)
            SELECT {HOST_SQL} AS host, client_ip AS src, uri_stem AS dst,
                   count(*) || ' SQL injection request(s) to ' || uri_stem || ' from ' ||
                   coalesce(client_ip, '?') || ' (statuses ' ||
                   string_agg(DISTINCT status::VARCHAR, ',' ORDER BY status::VARCHAR) || ')' ||
                   CASE WHEN bool_or(status = 500 OR regexp_matches(q, ?))
                        THEN '; the database answered with an error' ELSE '' END AS summary,
                   CASE WHEN bool_or(status = 500 OR regexp_matches(q, ?)) THEN 'high' END
                     AS level,
                   {{'uri': uri_stem, 'client_ip': client_ip, 'requests': count(*),
                     'first_query': left(arg_min(uri_query, (ts, uri_query))
                         FILTER (WHERE ts IS NOT NULL), 300)}} AS matched,
                   {EVIDENCE_SQL} AS ev
            FROM r WHERE regexp_matches(q, ?)
            GROUP BY 1, 2, 3 ORDER BY min(ts)""", [DB_ERROR_RX, DB_ERROR_RX, SQLI_RX])
        yield from findings_from_rows(self.META, rows)
