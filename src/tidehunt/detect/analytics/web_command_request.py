"""Requests whose parameters carry shell commands: a web shell being driven."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    APT40_ADVISORY,
    ATTACK_T1505_003,
    DECODED_QUERY,
    EVIDENCE_SQL,
    HOST_SQL,
    Analytic,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

#: A parameter value that is an OS command (Windows or Unix recon, downloaders, shells).
COMMAND_RX = (
    r"(^|[&;?])[a-z0-9_.\[\]-]{0,24}=[^&]*?\b(whoami|uname|ipconfig|ifconfig|systeminfo|"
    r"tasklist|netstat|hostname|nltest|wmic|quser|net\s+(user|group|localgroup|view|share|use)"
    r"|cmd(\.exe)?\s*/[ck]|powershell|certutil|bitsadmin|/bin/(ba|da)?sh|"
    r"cat\s+/etc/(passwd|shadow|hosts)|wget\s+https?:|curl\s+(-\S+\s+)*https?:|nc\s+-[el]|"
    r"chmod\s+[0-7+]|rundll32|regsvr32|mshta)\b"
    r"|(^|&)(cmd|c|command|exec|execute|run|shell|code)=(id|ls|dir|pwd|ver|set)(\s|;|&|$)"
)


class WebCommandRequest(Analytic):
    """URL parameters that hold OS commands (``?cmd=whoami``, ``?c=uname -a``)."""

    NAME: ClassVar[str] = "web_command_request"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access"})
    #: Every finding is of one server (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"web_access": HOST_SQL}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0001", "Web request carrying an OS command (web shell in use)", "high",
        ["T1505.003", "T1059"], ["persistence", "execution"],
        "A URL parameter holds an operating-system command such as whoami, uname, net "
        "user or cmd /c: the signature of a web shell being driven over HTTP.",
        [ATTACK_T1505_003,
         APT40_ADVISORY],
        __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, client, URI) whose requests carry commands."""
        rows = query(con, f"""
            WITH r AS (SELECT *, {DECODED_QUERY} AS q FROM web_access
                       WHERE uri_query IS NOT NULL)
            SELECT {HOST_SQL} AS host, client_ip AS src, uri_stem AS dst,
                   'OS command in requests to ' || uri_stem || ' from ' ||
                   coalesce(client_ip, '?') || ' (' || count(*) || ' requests, first: ' ||
                   arg_min(q, (ts, q)) FILTER (WHERE ts IS NOT NULL) || ')' AS summary,
                   {{'uri': uri_stem, 'client_ip': client_ip, 'requests': count(*),
                     'first_query': arg_min(q, (ts, q))
                         FILTER (WHERE ts IS NOT NULL), 'last_query': arg_max(q, (ts, q))
                         FILTER (WHERE ts IS NOT NULL),
                     'statuses': string_agg(DISTINCT status::VARCHAR, ','
                         ORDER BY status::VARCHAR)}} AS matched,
                   {EVIDENCE_SQL} AS ev
            FROM r WHERE regexp_matches(q, ?)
            GROUP BY 1, 2, 3 ORDER BY min(ts)""", [COMMAND_RX])
        yield from findings_from_rows(self.META, rows)
