"""Large uploads to cloud storage, against the sending host's own baseline and its peers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, has_table, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

MIN_BYTES = 100 << 20
FACTOR = 10


class NetCloudUpload(Analytic):
    """An hour in which a host sent at least 100 MiB to one cloud service, ten times its
    own median hour of cloud traffic (or with no history) and more than it received."""

    NAME: ClassVar[str] = "net_cloud_upload"
    READS: ClassVar[frozenset[str]] = frozenset({"net_conn"})
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0046", "Large upload to a cloud storage service", "high",
        ["T1567.002", "T1567.001", "T1048"], ["exfiltration"],
        f"In one hour a host sent at least {MIN_BYTES >> 20} MiB to one catalogued cloud "
        "service (Dropbox, OneDrive/Graph, Google Drive, Box, Mega, GitHub, paste and "
        f"transfer sites), at least {FACTOR} times its own median hour of traffic to cloud "
        "services (or with no history), and sent more than it received. The score's parts "
        "are in the summary: bytes, the out/in ratio, the host's median and its peers' "
        "median for that hour. Critical from 1 GiB with a ratio of 10 or more. APT40 "
        "exfiltrates to Dropbox, OneDrive and GitHub in hours that blend with business.",
        ["https://attack.mitre.org/techniques/T1567/002/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, service, hour)."""
        if not has_table(con, "net_cloud"):
            return
        rows = query(con, f"""
            WITH h AS (
                SELECT src_ip, cloud_service, date_trunc('hour', ts) AS hour,
                       sum(coalesce(bytes_out, 0))::BIGINT AS up,
                       sum(coalesce(bytes_in, 0))::BIGINT AS down,
                       count(*) AS n, min(name) AS name,
                       list({{'table': 'net_conn', 'artefact': _artefact, 'locator': _locator,
                             'source_file': source_file, 'line': line, 'ts': ts}}
                            ORDER BY ts, _locator)[1:100] AS ev
                FROM net_cloud GROUP BY src_ip, cloud_service, hour),
            host_h AS (SELECT src_ip, hour, sum(up) AS up FROM h GROUP BY ALL),
            base AS (SELECT src_ip, median(up) AS med, count(*) AS hours FROM host_h
                     GROUP BY src_ip),
            peers AS (SELECT a.src_ip, a.hour, median(coalesce(b.up, 0)) AS pmed
                      FROM host_h a LEFT JOIN host_h b ON b.hour = a.hour
                                                       AND b.src_ip <> a.src_ip
                      GROUP BY a.src_ip, a.hour)
            SELECT h.src_ip AS host, h.src_ip AS src, h.cloud_service AS dst,
                   CASE WHEN h.up >= 1073741824 AND h.up >= 10 * greatest(h.down, 1)
                        THEN 'critical' END AS level,
                   h.src_ip || ' sent ' || format_bytes(h.up::BIGINT) || ' to ' ||
                   h.cloud_service ||
                   ' (' || h.name || ') in the hour from ' ||
                   strftime(h.hour, '%Y-%m-%d %H:00') || ' UTC over ' || h.n ||
                   ' connection(s): out/in ' || round(h.up / greatest(h.down, 1), 1) ||
                   ', its median cloud hour ' || format_bytes(b.med::BIGINT) || ' over ' ||
                   b.hours || ' hour(s), peers that hour ' ||
                   format_bytes(coalesce(p.pmed, 0)::BIGINT) AS summary,
                   {{'host': h.src_ip, 'service': h.cloud_service, 'bytes_out': h.up,
                     'bytes_in': h.down, 'host_median': b.med, 'peer_median': p.pmed,
                     'hour': strftime(h.hour, '%Y-%m-%dT%H:00Z')}} AS matched,
                   h.ev AS ev
            FROM h JOIN base b USING (src_ip)
            LEFT JOIN peers p ON p.src_ip = h.src_ip AND p.hour = h.hour
            WHERE h.up >= {MIN_BYTES} AND h.up > h.down
              AND (h.up >= {FACTOR} * b.med OR b.hours < 3)
            ORDER BY h.hour, h.src_ip, h.cloud_service""")
        yield from findings_from_rows(self.META, rows, "net_conn")
