"""Service accounts used interactively on Windows: a console, RDP or cached logon (4624
types 2, 10, 11) of a service account, or its credentials typed into mstsc, runas, a UAC
prompt or a shell (4648). The ``auth`` side (identity providers, VPN) is
th-analytic-0041; this is the same tradecraft in the Security log."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
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


class LogonServiceInteractive(Analytic):
    """Interactive Windows logons (4624 types 2, 10, 11) and explicit-credential use by an
    interactive program (4648) of accounts the profile (or the default patterns svc_,
    sa-, ...-svc, machine$) names as service accounts."""

    NAME: ClassVar[str] = "logon_service_interactive"
    READS: ClassVar[frozenset[str]] = frozenset({"windows"})
    #: Every finding is of one host (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = WINDOWS_PARTITION
    PARTITION_KEEP: ClassVar[Mapping[str, str] | None] = {
        "windows": "event_id IN (4624, 4648)"}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0061", "Service account used interactively on Windows", "high",
        ["T1078.002", "T1078.003"], ["initial-access", "persistence",
                                     "privilege-escalation", "defense-evasion"],
        "A service account (organisation profile service_accounts patterns, matched "
        "against the account name and DOMAIN\\name; else svc_, sa-, srv-, -svc and machine "
        "accounts) logged on at a console (4624 type 2, also what runas leaves), over RDP "
        "(type 10) or with cached credentials (type 11), or had its credentials used "
        "explicitly (4648) by mstsc, runas, consent (a UAC prompt), explorer, a shell, mmc "
        "or PsExec. Services log on as type 5 and batch jobs as type 4, and neither types "
        "a password into a dialog: a person using a service's credentials has taken them. "
        "An application that calls LogonUser with an interactive logon type for its "
        "service account looks the same: name the service accounts precisely in the "
        "profile (service_accounts) to leave such an account out.",
        ["https://attack.mitre.org/techniques/T1078/002/",
         "https://attack.mitre.org/techniques/T1078/003/",
         "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a"], __name__)
    #: 4624 logon types a person makes: console, RemoteInteractive, CachedInteractive.
    LOGON_TYPES: ClassVar[dict[int, str]] = {
        2: "interactive logon (4624 type 2)", 10: "RDP logon (4624 type 10)",
        11: "cached interactive logon (4624 type 11)"}
    #: Programs through which a person types another account's credentials (4648).
    EXPLICIT_PROCESSES: ClassVar[tuple[str, ...]] = (
        "mstsc", "runas", "consent", "explorer", "cmd", "powershell", "powershell_ise",
        "pwsh", "mmc", "net", "net1", "psexec", "psexec64")

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, account, kind of logon, source or program)."""
        have = {c.lower(): c for c in columns_of(con, "windows")}
        if "targetusername" not in have:
            return

        def col(name: str) -> str:
            c = have.get(name.lower())
            return f'nullif(nullif(trim(w."{c}"), \'-\'), \'\')' if c else "NULL::VARCHAR"

        kinds = " ".join(f"WHEN {t} THEN '{k}'" for t, k in self.LOGON_TYPES.items())
        procs = r"(^|[\\/])(" + "|".join(self.EXPLICIT_PROCESSES) + r")\.exe$"
        rows = query(con, f"""
            WITH w AS (
                SELECT w.host, w.ts, w.event_id, w._artefact, w._locator, w.source_file,
                       w.record_id, TRY_CAST({col('LogonType')} AS INT) AS lt,
                       {col('TargetUserName')} AS acct, {col('TargetDomainName')} AS adom,
                       {col('IpAddress')} AS ip, {col('WorkstationName')} AS wks,
                       {col('ProcessName')} AS proc, {col('SubjectUserName')} AS subj,
                       {col('SubjectDomainName')} AS sdom,
                       {col('TargetServerName')} AS target
                FROM windows w
                WHERE w.event_id IN (4624, 4648)
                  AND coalesce(lower(w.channel), 'security') = 'security'),
            svc AS (
                SELECT w.*, coalesce(adom || '\\', '') || acct AS account FROM w
                WHERE acct IS NOT NULL AND EXISTS (
                    SELECT 1 FROM org_service o
                    WHERE regexp_matches(lower(acct), o.pattern)
                       OR regexp_matches(lower(coalesce(adom || '\\', '') || acct), o.pattern))),
            e AS (
                SELECT *, CASE lt {kinds} END AS kind,
                       CASE WHEN ip IN ('127.0.0.1', '::1') THEN NULL ELSE ip END AS src,
                       NULL::VARCHAR AS program, NULL::VARCHAR AS actor
                FROM svc WHERE event_id = 4624 AND lt IN ({", ".join(map(str, self.LOGON_TYPES))})
                UNION ALL
                SELECT *, 'explicit credentials (4648)' AS kind, NULL AS src,
                       regexp_extract(proc, '[^\\\\/]+$') AS program,
                       coalesce(sdom || '\\', '') || subj AS actor
                FROM svc WHERE event_id = 4648 AND regexp_matches(lower(proc), ?)),
            g AS (
                SELECT host, account, kind, src, wks, program, actor, target,
                       count(*) AS n, min(ts) AS t0,
                       list({{'table': 'windows', 'artefact': _artefact, 'locator': _locator,
                             'source_file': source_file, 'line': record_id, 'ts': ts}}
                            ORDER BY ts, record_id)[1:100] AS ev
                FROM e GROUP BY ALL)
            SELECT host, account AS "user", src, target AS dst,
                   CASE WHEN program IS NULL
                        THEN n || ' ' || replace(kind, 'logon', 'logon(s)') ||
                             ' of the service account ' || account ||
                             coalesce(' on ' || host, '') ||
                             coalesce(' from ' || src, '') ||
                             coalesce(' (workstation ' || wks || ')', '')
                        ELSE n || ' use(s) of the service account ' || account ||
                             '''s credentials by ' || program ||
                             coalesce(' run by ' || actor, '') ||
                             coalesce(' on ' || host, '') ||
                             coalesce(' towards ' || target, '') || ' (4648)' END ||
                   '; first ' || strftime(t0, '%Y-%m-%d %H:%M') || ' UTC' AS summary,
                   {{'account': account, 'kind': kind, 'source': src, 'workstation': wks,
                     'program': program, 'run_by': actor, 'target': target}} AS matched, ev
            FROM g ORDER BY t0, host, account""", [procs])
        yield from findings_from_rows(self.META, rows, "windows")
