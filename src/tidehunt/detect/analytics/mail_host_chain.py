"""A mailed attachment or link that shows up on a host, and what ran there next."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    MAIL_PARTITION,
    Analytic,
    Prepared,
    findings_from_rows,
    has_table,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

#: How long after a mail its attachment or link may first appear on a host.
REACH_DAYS = 7
#: How long after that the host's process starts are followed.
FOLLOW_MINUTES = 120
#: Processes that turn an opened lure into code running (exploit, macro, script, LOLBin).
FOLLOW_RX = (r"\\(eqnedt32|cmd|powershell|pwsh|mshta|wscript|cscript|rundll32|regsvr32|"
             r"certutil|bitsadmin|msiexec|schtasks|at|curl|wmic|forfiles|conhost|msbuild|"
             r"installutil|rar|winrar|7z)\.exe$")
#: Attachment names too generic to follow (inline images, signatures).
GENERIC_RX = r"^(image\d*|att\d+|logo|outlook|signature|attachment-\d+)(\.[a-z0-9]+)?$"
_EVENTS = (1, 11, 15, 22, 3, 4688, 4663, 23, 26)


class MailHostChain(Analytic):
    """Mail attachment names and hashes, and link domains, joined to Windows events."""

    NAME: ClassVar[str] = "mail_host_chain"
    READS: ClassVar[frozenset[str]] = frozenset({"mail", "windows"})
    #: --engine spark: in two stages. Each mail's needles (attachment names and hashes,
    #: link domains) come from its message's bucket (with its attachments); the Windows
    #: events then go by host, each bucket with every mail's needles.
    PARTITION: ClassVar[Mapping[str, str]] = {"windows": "lower(host)"}
    PARTITION_KEEP: ClassVar[Mapping[str, str]] = {
        "windows": f"event_id IN ({', '.join(map(str, _EVENTS))})"}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0032", "Phishing chain: a mailed attachment or link reaches a host",
        "high", ["T1566.001", "T1566.002", "T1204.002", "T1203"],
        ["initial-access", "execution"],
        f"Within {REACH_DAYS} days of a mail, a Windows event on a host names its attachment "
        "(a file written, a command line, a process image, or a Sysmon hash equal to the "
        "attachment's) or resolves or connects to a link's domain; the process starts on that "
        f"host in the next {FOLLOW_MINUTES} minutes that turn a lure into code (EQNEDT32, "
        "cmd, PowerShell, mshta, certutil, bitsadmin...) are listed and raise the level to "
        "critical. Outlook writing lure.rtf, then EQNEDT32, then bitsadmin, is one story.",
        ["https://attack.mitre.org/techniques/T1566/001/",
         "https://attack.mitre.org/techniques/T1204/002/"], __name__)

    def prepared(self, con: Any) -> list[Prepared]:
        """Each mail's needles: its attachments' names and hashes, its links' domains."""
        att_sql = "SELECT NULL AS mloc, NULL AS art, NULL AS kind, NULL AS needle, " \
                  "NULL AS sha, NULL AS md5 WHERE false"
        if has_table(con, "mail_attachment"):
            att_sql = f"""
                SELECT mail_locator AS mloc, _artefact AS art, 'attachment' AS kind,
                       lower(filename) AS needle, lower(sha256) AS sha, lower(md5) AS md5
                FROM mail_attachment
                WHERE length(filename) >= 6 AND kind NOT IN ('image', 'empty')
                  AND NOT regexp_full_match(lower(filename), '{GENERIC_RX}')"""
        return [Prepared("mhc_needles", f"""
            WITH own AS (SELECT d FROM mail_own_domain UNION SELECT domain FROM org_domain),
            needles AS (
                {att_sql}
                UNION ALL
                SELECT _locator, _artefact, 'link',
                       lower(regexp_extract(u, '^[a-z]+://([^/:?#@]+)', 1)), NULL, NULL
                FROM (SELECT _locator, _artefact,
                             unnest(string_split(urls, chr(10))) AS u FROM mail
                      WHERE urls IS NOT NULL))
            SELECT DISTINCT n.*, m.ts AS mts, m.subject, m.from_addr,
                   m.source_file AS msrc
            FROM needles n JOIN mail m ON m._locator = n.mloc AND m._artefact = n.art
            WHERE n.needle IS NOT NULL AND length(n.needle) >= 4
              AND (n.kind = 'attachment' OR (n.needle NOT IN (SELECT d FROM own)
                   AND NOT EXISTS (SELECT 1 FROM own o WHERE n.needle LIKE '%.' || o.d)))""",
                         MAIL_PARTITION)]

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (mail, host)."""
        have = {r[0].lower(): r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = "
            "'windows'").fetchall()}

        def col(name: str, raw: bool = False) -> str:
            real = have.get(name.lower())
            if not real:
                return "''"
            return f'w."{real}"' if raw else f'lower(w."{real}")'

        image, target, cmd = col("Image"), col("TargetFilename"), col("CommandLine")
        hashes, query_name, dest = col("Hashes"), col("QueryName"), col("DestinationHostname")
        if image == "''" and target == "''" and cmd == "''" and query_name == "''":
            return
        events = ", ".join(map(str, _EVENTS))
        rows = query(con, f"""
            WITH n AS (SELECT * FROM mhc_needles),
            w AS (SELECT * FROM windows w WHERE event_id IN ({events})),
            touch AS (
                SELECT n.*, w.host AS whost, w.ts AS wts, w._artefact AS wart,
                       w._locator AS wloc, w.source_file AS wsrc, w.event_id AS eid,
                       {col("Image", True)} AS img, {col("TargetFilename", True)} AS tgt
                FROM n JOIN w ON w.ts BETWEEN n.mts - INTERVAL 1 HOUR
                                          AND n.mts + INTERVAL {REACH_DAYS} DAY
                WHERE w.host IS NOT NULL AND (
                      (n.kind = 'attachment' AND (
                          ends_with({target}, '\\' || n.needle) OR
                          ends_with({image}, '\\' || n.needle) OR
                          strpos({cmd}, n.needle) > 0 OR
                          (n.sha IS NOT NULL AND strpos({hashes}, n.sha) > 0) OR
                          (n.md5 IS NOT NULL AND strpos({hashes}, 'md5=' || n.md5) > 0)))
                   OR (n.kind = 'link' AND (
                          {query_name} = n.needle OR {dest} = n.needle OR
                          strpos({cmd}, n.needle) > 0)))),
            first AS (
                SELECT art, mloc, whost, min(wts) AS t1,
                       string_agg(DISTINCT kind || ' ' || needle, ', '
                                  ORDER BY kind || ' ' || needle) AS what,
                       arg_min(coalesce(nullif(tgt, ''), img),
                               (wts, coalesce(nullif(tgt, ''), img)))
                           FILTER (WHERE wts IS NOT NULL) AS first_path,
                       arg_min(regexp_extract(img, '[^\\\\]+$'),
                               (wts, regexp_extract(img, '[^\\\\]+$')))
                           FILTER (WHERE wts IS NOT NULL) AS first_proc,
                       min(mts) AS mts, min(subject) AS subject, min(from_addr) AS from_addr,
                       min(msrc) AS msrc,
                       list({{'table': 'windows', 'artefact': wart, 'locator': wloc,
                             'source_file': wsrc, 'line': NULL::BIGINT, 'ts': wts}}
                            ORDER BY wts, wloc)[1:20] AS tev
                FROM touch GROUP BY art, mloc, whost),
            fw AS (
                SELECT f.art, f.mloc, f.whost, w.ts, w._artefact AS wart, w._locator AS wloc,
                       w.source_file AS wsrc,
                       regexp_extract({col("Image", True)}, '[^\\\\]+$') AS proc
                FROM first f JOIN w ON w.host = f.whost
                    AND w.ts BETWEEN f.t1 AND f.t1 + INTERVAL {FOLLOW_MINUTES} MINUTE
                WHERE w.event_id IN (1, 4688) AND regexp_matches({image}, '{FOLLOW_RX}')),
            follow AS (
                SELECT art, mloc, whost,
                       list({{'table': 'windows', 'artefact': wart, 'locator': wloc,
                             'source_file': wsrc, 'line': NULL::BIGINT, 'ts': ts}}
                            ORDER BY ts, wloc)[1:30] AS fev
                FROM fw GROUP BY art, mloc, whost),
            procs AS (
                SELECT art, mloc, whost, string_agg(proc, ', ' ORDER BY t0, proc) AS procs
                FROM (SELECT art, mloc, whost, proc, min(ts) AS t0 FROM fw
                      GROUP BY art, mloc, whost, proc)
                GROUP BY art, mloc, whost)
            SELECT f.whost AS host, f.from_addr AS src, f.what AS dst,
                   CASE WHEN fo.procs IS NOT NULL THEN 'critical' END AS level,
                   'mail "' || coalesce(f.subject, '(no subject)') || '" from ' ||
                   coalesce(f.from_addr, '?') || ' reached ' || f.whost || ' at ' ||
                   strftime(f.t1, '%Y-%m-%d %H:%M:%S') || ' UTC (' || f.what || ': ' ||
                   coalesce(f.first_proc || ' ', '') || coalesce(f.first_path, '') || ')' ||
                   coalesce('; then within ' || {FOLLOW_MINUTES} || ' min on ' || f.whost ||
                            ': ' || fo.procs, '') AS summary,
                   {{'subject': f.subject, 'from': f.from_addr, 'reached': f.what,
                     'first_seen': strftime(f.t1, '%Y-%m-%dT%H:%M:%SZ'),
                     'followed_by': fo.procs}} AS matched,
                   list_concat([{{'table': 'mail', 'artefact': f.art, 'locator': f.mloc,
                                 'source_file': f.msrc, 'line': NULL::BIGINT,
                                 'ts': f.mts}}], f.tev, coalesce(fo.fev, [])) AS ev
            FROM first f
            LEFT JOIN (SELECT follow.art, follow.mloc, follow.whost, follow.fev, procs.procs
                       FROM follow JOIN procs USING (art, mloc, whost)) fo
              ON fo.art = f.art AND fo.mloc = f.mloc AND fo.whost = f.whost
            ORDER BY f.t1, f.whost, f.mloc""")
        yield from findings_from_rows(self.META, rows, "mail")
