"""Sign-ins from Tor exits, VPS ranges or known compromised SOHO routers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._auth import AUTH_EVIDENCE
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class AuthRiskyNetwork(Analytic):
    """Sign-in attempts from an address on a --risky-networks list (tor, vps, soho...)."""

    NAME: ClassVar[str] = "auth_risky_network"
    READS: ClassVar[frozenset[str]] = frozenset({"auth"})
    #: Every finding is of one user (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"auth": '"user"'}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0039", "Sign-in from a Tor exit, VPS range or compromised SOHO router",
        "high", ["T1090.003", "T1584.008", "T1078"],
        ["command-and-control", "resource-development", "initial-access"],
        "Sign-ins (successful: high; failed only: medium) come from an address on one of the "
        "lists given with --risky-networks: Tor exit nodes, VPS and hosting ranges, or the "
        "SOHO routers advisories name. APT40 relays through compromised SOHO devices "
        "(ASD-24).",
        ["https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (account, address)."""
        rows = query(con, f"""
            SELECT NULL AS host, "user", src_ip AS src, min(c.category) AS dst,
                   CASE WHEN bool_or(result = 'success') THEN 'high' ELSE 'medium' END
                       AS level,
                   count(*) || ' sign-in attempt(s) of ' || "user" || ' (' ||
                   count(*) FILTER (WHERE result = 'success') || ' successful) from ' ||
                   src_ip || ', on the ' || min(c.category) || ' list ' || min(c.list) ||
                   '; first ' || strftime(min(ts), '%Y-%m-%d %H:%M') || ' UTC' AS summary,
                   {{'user': "user", 'src_ip': src_ip, 'category': min(c.category),
                     'list': min(c.list)}} AS matched,
                   {AUTH_EVIDENCE} AS ev
            FROM auth JOIN auth_ip_class c ON c.ip = auth.src_ip
            GROUP BY "user", src_ip ORDER BY min(ts), "user", src_ip""")
        yield from findings_from_rows(self.META, rows, "auth")
