"""One session or token used from two addresses: a stolen cookie or token replayed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._auth import AUTH_EVIDENCE
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, in_bucket, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class AuthSessionReuse(Analytic):
    """A session or token ID seen from addresses in two different /24 (or /48) networks."""

    NAME: ClassVar[str] = "auth_session_reuse"
    READS: ClassVar[frozenset[str]] = frozenset({"auth"})
    #: --engine spark: each sign-in goes to the bucket of its session ID and to that of
    #: its token ID; a bucket reports the IDs that are its own (``in_bucket``).
    PARTITION: ClassVar[Mapping[str, str]] = {"auth": "[session_id, token_id]"}
    PARTITION_KEEP: ClassVar[Mapping[str, str]] = {"auth": "src_ip IS NOT NULL"}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0040", "One session or token used from two addresses", "high",
        ["T1550.004", "T1539", "T1528"], ["defense-evasion", "lateral-movement",
                                          "credential-access"],
        "The same session, correlation or token identifier appears with client addresses "
        "in two different networks (/24 for IPv4, /48 for IPv6): a session cookie, JWT or "
        "token taken from one place and replayed from another, as APT40 does with stolen "
        "tokens on remote-access appliances.",
        ["https://attack.mitre.org/techniques/T1550/004/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per session or token."""
        rows = query(con, f"""
            WITH ids AS (
                SELECT *, unnest([session_id, token_id]) AS sid,
                       CASE WHEN src_ip LIKE '%:%' THEN array_to_string(
                                string_split(src_ip, ':')[1:3], ':')
                            ELSE regexp_replace(src_ip, '\\.\\d+$', '') END AS net
                FROM auth WHERE src_ip IS NOT NULL)
            SELECT NULL AS host, min("user") AS "user", min(src_ip) AS src,
                   max(src_ip) AS dst,
                   'session ' || left(sid, 40) || ' of ' || min("user") || ' used from ' ||
                   count(DISTINCT net) || ' networks (' ||
                   string_agg(DISTINCT src_ip, ', ' ORDER BY src_ip) || ') between ' ||
                   strftime(min(ts), '%Y-%m-%d %H:%M') || ' and ' ||
                   strftime(max(ts), '%Y-%m-%d %H:%M') || ' UTC' AS summary,
                   {{'session': sid, 'user': min("user"),
                     'addresses': string_agg(DISTINCT src_ip, ', ' ORDER BY src_ip)}}
                       AS matched,
                   {AUTH_EVIDENCE} AS ev
            FROM ids WHERE sid IS NOT NULL AND sid <> '' AND {in_bucket('sid')}
            GROUP BY sid HAVING count(DISTINCT net) >= 2
            ORDER BY min(ts), sid""")
        yield from findings_from_rows(self.META, rows, "auth")
