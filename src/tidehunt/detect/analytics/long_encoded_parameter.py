"""Very long base64 or hex parameter values: encoded payloads passed to a script."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    ATTACK_T1505_003,
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

MIN_LEN = 256
ENCODED_RX = (rf"(^|&)[^=&]*=(%2b|%2f|%3d|[a-z0-9+/]){{{MIN_LEN},}}(=|%3d){{0,2}}(&|$)"
              rf"|(^|&)[^=&]*=[0-9a-f]{{{MIN_LEN},}}(&|$)")


class LongEncodedParameter(Analytic):
    """A query parameter of 256+ base64 or hex characters."""

    NAME: ClassVar[str] = "long_encoded_parameter"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access"})
    #: Every finding is of one server (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"web_access": HOST_SQL}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0009", "Long encoded parameter sent to a script", "medium",
        ["T1505.003", "T1027", "T1132.001"], ["persistence", "defense-evasion"],
        "A query parameter carries 256 or more base64 or hex characters, how encoded "
        "commands and payloads reach a web shell (China Chopper variants, Behinder).",
        [NSA_WEBSHELLS, ATTACK_T1505_003], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, client, URI)."""
        rows = query(con, f"""
            WITH r AS (SELECT *, lower(uri_query) AS q FROM web_access
                       WHERE length(uri_query) >= {MIN_LEN})
            SELECT {HOST_SQL} AS host, client_ip AS src, uri_stem AS dst,
                   count(*) || ' requests to ' || uri_stem || ' from ' ||
                   coalesce(client_ip, '?') || ' with an encoded parameter of up to ' ||
                   max(length(uri_query)) || ' characters' AS summary,
                   {{'uri': uri_stem, 'client_ip': client_ip, 'requests': count(*),
                     'first_query': left(arg_min(uri_query, (ts, uri_query))
                         FILTER (WHERE ts IS NOT NULL), 300)}} AS matched,
                   {EVIDENCE_SQL} AS ev
            FROM r WHERE regexp_matches(q, ?)
            GROUP BY 1, 2, 3 ORDER BY min(ts)""", [ENCODED_RX])
        yield from findings_from_rows(self.META, rows)
