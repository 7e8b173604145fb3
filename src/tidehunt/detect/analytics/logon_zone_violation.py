"""Windows logons across zones the policy keeps apart: a network or RDP logon (4624
types 3 and 10) from a zone that may not reach the host, or explicit credentials (4648)
used towards one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import violation_sql, zone_of
from tidehunt.detect.analytics.base import (
    WINDOWS_PARTITION,
    Analytic,
    findings_from_rows,
    meta,
    query,
)
from tidehunt.detect.analytics.detector import columns_of
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta


class LogonZoneViolation(Analytic):
    """A logon whose source and target zones the policy does not connect."""

    NAME: ClassVar[str] = "logon_zone_violation"
    READS: ClassVar[frozenset[str]] = frozenset({"windows"})
    #: Every finding is of one host (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = WINDOWS_PARTITION
    PARTITION_KEEP: ClassVar[Mapping[str, str] | None] = {
        "windows": "event_id IN (4624, 4648)"}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0057", "Logon across zones the policy keeps apart", "high",
        ["T1021.001", "T1021.002", "T1078"], ["lateral-movement"],
        "Needs zones and allow rules in the organisation profile, and the host's address "
        "(its Sysmon network events, or hosts: in the profile). A 4624 logon of type 10 "
        "(RDP, checked as TCP 3389) or type 3 (network, checked as TCP 445) whose source "
        "address is in a zone the policy does not allow to reach the host's zone on that "
        "port; or a 4648 (explicit credentials) from the host towards such an address. "
        "Critical for RDP.",
        ["https://attack.mitre.org/techniques/T1021/001/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (source, target host, logon kind, user)."""
        cols = set(columns_of(con, "windows"))
        if not {"IpAddress", "TargetUserName"} <= cols or not con.execute(
                "SELECT count(*) FROM org_zone").fetchone()[0]:
            return
        lt = "TRY_CAST(LogonType AS INT)" if "LogonType" in cols else "NULL::INT"
        rows = query(con, f"""
            WITH hip AS (SELECT host, min(ip) AS ip FROM host_ip GROUP BY host),
            l AS (
                SELECT w.*, {lt} AS lt, hi.ip AS host_addr FROM windows w
                JOIN hip hi ON hi.host = lower(w.host)
                            OR hi.host = split_part(lower(w.host), '.', 1)
                WHERE w.event_id IN (4624, 4648) AND w.IpAddress IS NOT NULL
                  AND w.IpAddress NOT IN ('-', '::1', '127.0.0.1')),
            e AS (
                SELECT l.*,
                       CASE WHEN event_id = 4648 THEN host_addr ELSE IpAddress END AS s_ip,
                       CASE WHEN event_id = 4648 THEN IpAddress ELSE host_addr END AS d_ip,
                       CASE WHEN lt = 10 THEN 3389 ELSE 445 END AS port,
                       CASE WHEN event_id = 4648 THEN 'explicit credentials (4648)'
                            WHEN lt = 10 THEN 'RDP logon (4624 type 10)'
                            ELSE 'network logon (4624 type 3)' END AS kind
                FROM l WHERE event_id = 4648 OR lt IN (3, 10)),
            z AS (
                SELECT e.*, {zone_of('s')} AS sz, {zone_of('d')} AS dz,
                       s.isolated AND s.zone = d.zone AS iso
                FROM e JOIN net_addr s ON s.ip = e.s_ip JOIN net_addr d ON d.ip = e.d_ip),
            v AS (SELECT * FROM z WHERE {violation_sql('sz', 'dz', "'tcp'", 'port', 'iso')}),
            g AS (
                SELECT lower(host) AS h, s_ip, d_ip, kind, port, sz, dz,
                       TargetUserName AS tuser, count(*) AS n, min(ts) AS t0,
                       list({{'table': 'windows', 'artefact': _artefact, 'locator': _locator,
                             'source_file': source_file, 'line': record_id, 'ts': ts}}
                            ORDER BY ts)[1:50] AS ev
                FROM v GROUP BY ALL)
            SELECT h AS host, tuser AS "user", s_ip AS src, d_ip AS dst,
                   CASE WHEN port = 3389 THEN 'critical' END AS level,
                   kind || ' of ' || coalesce(tuser, '?') || ' on ' || h || ': ' || s_ip ||
                   ' (' || sz || ') to ' || d_ip || ' (' || dz || '), ' || n ||
                   ' time(s) from ' || strftime(t0, '%Y-%m-%d %H:%M') ||
                   ' UTC; no allow rule covers ' || sz || ' to ' || dz || ' on tcp/' ||
                   port AS summary,
                   {{'host': h, 'user': tuser, 'source': s_ip, 'target': d_ip,
                     'kind': kind, 'src_zone': sz, 'dst_zone': dz}} AS matched, ev
            FROM g ORDER BY t0""")
        yield from findings_from_rows(self.META, rows, "windows")
