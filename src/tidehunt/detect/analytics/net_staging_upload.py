"""An archive staged on a host (rar or 7z into C:\\Windows\\Debug and the like), then a
large upload from the same host: the two halves of exfiltration, joined."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import NET_PARTITION
from tidehunt.detect.analytics.base import (
    Analytic,
    Prepared,
    findings_from_rows,
    has_table,
    meta,
    query,
)
from tidehunt.detect.analytics.detector import columns_of
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

WINDOW_HOURS = 12
MIN_BYTES = 10 << 20
#: Archivers, by image name.
ARCHIVER_RX = r"\\(rar|winrar|7z|7za|7zr|7zg|makecab|tar|zip)\.exe$"
#: Folders APT40 and others stage archives in.
STAGING_RX = (r"\\(windows\\debug|windows\\temp|programdata|users\\public|perflogs|"
              r"\$recycle\.bin|windows\\tasks|intel|temp)\\")
ARCHIVE_RX = r"\.(rar|7z|zip|cab|tar|tgz|gz|r\d\d|\d{3})$"


class NetStagingUpload(Analytic):
    """Archive staging (Windows events) followed by an upload from the same host."""

    NAME: ClassVar[str] = "net_staging_upload"
    READS: ClassVar[frozenset[str]] = frozenset({"windows"})
    READS_ANY: ClassVar[frozenset[str]] = frozenset({"net_conn", "proxy"})
    #: --engine spark: flows by client, each bucket with every host's staging events
    #: (a scan of the Windows events, collected: archiving is rare).
    PARTITION: ClassVar[Mapping[str, str]] = NET_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0049", "Archive staged, then uploaded from the same host", "critical",
        ["T1074.001", "T1560.001", "T1567.002", "T1048"], ["collection", "exfiltration"],
        "A host created an archive (an archiver run with an add command, or a .rar, .7z, "
        ".zip or .cab written to a staging folder such as C:\\Windows\\Debug, ProgramData "
        f"or Users\\Public), and within {WINDOW_HOURS} hours sent at least "
        f"{MIN_BYTES >> 20} MiB to a cloud service or an internet address. The host's "
        "addresses come from its Sysmon network events or the profile's hosts. APT40 "
        "staged RAR archives in C:\\Windows\\Debug before exfiltration.",
        ["https://attack.mitre.org/techniques/T1074/001/",
         "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a"], __name__)

    def prepared(self, con: Any) -> list[Prepared]:
        """The Windows events that stage an archive."""
        cols = set(columns_of(con, "windows"))

        def c(name: str) -> str:
            return f"lower({name})" if name in cols else "NULL::VARCHAR"

        return [Prepared("nsu_stage", f"""
                SELECT lower(host) AS h, ts, event_id,
                       coalesce({c('TargetFilename')}, {c('CommandLine')}) AS what,
                       _artefact, _locator, source_file, record_id
                FROM windows
                WHERE (event_id IN (1, 4688)
                       AND regexp_matches({c('Image')}, '{ARCHIVER_RX}')
                       AND regexp_matches({c('CommandLine')}, '\\s(a|u|-a)\\s'))
                   OR (event_id = 11 AND regexp_matches({c('TargetFilename')}, '{ARCHIVE_RX}')
                       AND regexp_matches({c('TargetFilename')}, '{STAGING_RX}'))""",
                         "windows")]

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, staging event's hour)."""
        if not has_table(con, "net_flow"):
            return
        rows = query(con, f"""
            WITH stage AS (SELECT * FROM nsu_stage),
            first_stage AS (
                SELECT h, min(ts) AS t0, arg_min(what, (ts, what))
                    FILTER (WHERE ts IS NOT NULL) AS what, count(*) AS n_stage,
                       list({{'table': 'windows', 'artefact': _artefact, 'locator': _locator,
                             'source_file': source_file, 'line': record_id, 'ts': ts}}
                            ORDER BY ts)[1:20] AS ev_s
                FROM stage GROUP BY h, date_trunc('hour', ts)),
            up AS (
                SELECT s.h, s.t0, s.what, s.n_stage, s.ev_s, f.src_ip,
                       coalesce(cl.cloud_service, f.name, f.dst_ip) AS dest,
                       sum(coalesce(f.bytes_out, 0))::BIGINT AS up, min(f.ts) AS t_up,
                       list({{'table': f.evidence_table, 'artefact': f._artefact,
                             'locator': f._locator, 'source_file': f.source_file,
                             'line': f.line, 'ts': f.ts}} ORDER BY f.ts)[1:50] AS ev_f
                FROM first_stage s JOIN host_ip hi ON hi.host = s.h
                JOIN net_flow f ON f.src_ip = hi.ip
                     AND f.ts BETWEEN s.t0 AND s.t0 + INTERVAL {WINDOW_HOURS} HOUR
                LEFT JOIN net_addr a ON a.ip = f.dst_ip
                LEFT JOIN (SELECT DISTINCT _locator, _artefact, cloud_service FROM net_cloud) cl
                     ON cl._locator = f._locator AND cl._artefact = f._artefact
                WHERE cl.cloud_service IS NOT NULL OR a.public
                GROUP BY ALL HAVING sum(coalesce(f.bytes_out, 0)) >= {MIN_BYTES})
            SELECT h AS host, src_ip AS src, dest AS dst,
                   h || ' staged ' || coalesce(what, 'an archive') || ' at ' ||
                   strftime(t0, '%Y-%m-%d %H:%M') || ' UTC (' || n_stage ||
                   ' staging event(s)), then sent ' || format_bytes(up) || ' to ' || dest ||
                   ' from ' || src_ip || ' starting ' || strftime(t_up, '%H:%M') || ' UTC, ' ||
                   round(epoch(t_up - t0) / 60)::BIGINT || ' min later' AS summary,
                   {{'host': h, 'archive': what, 'destination': dest, 'bytes_out': up,
                     'staged': t0, 'upload_start': t_up}} AS matched,
                   list_concat(ev_s, ev_f) AS ev
            FROM up ORDER BY t0, h, dest""")
        yield from findings_from_rows(self.META, rows, "windows")
