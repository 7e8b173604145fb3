"""HTTP tunnels through a web shell: reGeorg / Neo-reGeorg style socket commands."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    APT40_ADVISORY,
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

#: reGeorg's command grammar in the query (connect, read, forward, disconnect with a target).
TUNNEL_RX = (r"(^|&)cmd=(connect|disconnect|read|forward)(&|$)"
             r"|(^|&)(target|host)=[^&]+&port=\d+"
             r"|(^|&)(proxy|file=conn)(&|$)")


class WebTunnelRequest(Analytic):
    """reGeorg-style tunnel commands (``?cmd=connect&target=...&port=...``) in requests."""

    NAME: ClassVar[str] = "web_tunnel_request"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access"})
    #: Every finding is of one server (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"web_access": HOST_SQL}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0002", "HTTP tunnel commands sent to a web shell (reGeorg style)", "high",
        ["T1572", "T1090.003", "T1505.003"], ["command-and-control", "persistence"],
        "Requests use the socket-tunnel grammar of reGeorg and its successors (cmd=connect, "
        "read, forward, disconnect, or target and port parameters): a web shell relaying "
        "traffic into the internal network, as APT40 does with reGeorg.",
        [APT40_ADVISORY, "https://attack.mitre.org/techniques/T1572/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, client, URI)."""
        rows = query(con, f"""
            WITH r AS (SELECT *, {DECODED_QUERY} AS q FROM web_access
                       WHERE uri_query IS NOT NULL)
            SELECT {HOST_SQL} AS host, client_ip AS src, uri_stem AS dst,
                   'Tunnel commands to ' || uri_stem || ' from ' || coalesce(client_ip, '?')
                   || ' (' || count(*) || ' requests: ' ||
                   string_agg(DISTINCT regexp_extract(q, 'cmd=([a-z]+)', 1), ', '
                       ORDER BY regexp_extract(q, 'cmd=([a-z]+)', 1)) || ')'
                   AS summary,
                   {{'uri': uri_stem, 'client_ip': client_ip, 'requests': count(*),
                     'first_query': arg_min(q, (ts, q)) FILTER (WHERE ts IS NOT NULL)}} AS matched,
                   {EVIDENCE_SQL} AS ev
            FROM r WHERE regexp_matches(q, ?)
            GROUP BY 1, 2, 3 ORDER BY min(ts)""", [TUNNEL_RX])
        yield from findings_from_rows(self.META, rows)
