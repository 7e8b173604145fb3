"""Uploads to cloud storage against the sending host's own hour-of-week baseline, its
median hour and its peers, in the organisation's time zone and business calendar."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import (
    FLOW_EVIDENCE_SQL,
    NET_PARTITION,
    host_of,
    level_sql,
    parts_sql,
)
from tidehunt.detect.analytics.base import (
    Analytic,
    Prepared,
    findings_from_rows,
    has_table,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

MIN_BYTES = 100 << 20
FACTOR = 10
#: Weeks of history the hour-of-week baseline needs; with fewer, the host's median
#: cloud hour (over at least 3 hours) stands in.
MIN_WEEKS = 2
#: Baselines below this count as this (1 MiB), so ratios to near-zero stay readable.
FLOOR = 1 << 20


class NetCloudUpload(Analytic):
    """An hour in which a host sent at least 100 MiB to one cloud service, ten times what
    it sends in that hour of the week (or its median cloud hour, without weeks of
    history), and more than it received. Business hours do not excuse it: APT40 works in
    hours that overlap its victims' business day."""

    NAME: ClassVar[str] = "net_cloud_upload"
    READS: ClassVar[frozenset[str]] = frozenset()
    READS_ANY: ClassVar[frozenset[str]] = frozenset({"net_conn", "proxy"})
    #: --engine spark: by client, in two stages: every client's hourly uploads (the
    #: peers' side) are summed per bucket of clients, and read by the second stage.
    PARTITION: ClassVar[Mapping[str, str]] = NET_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0046", "Upload to a cloud storage service above the host's baseline",
        "high", ["T1567.002", "T1567.001", "T1048"], ["exfiltration"],
        f"In one hour a host (or proxy user) sent at least {MIN_BYTES >> 20} MiB to one "
        "catalogued cloud service (Dropbox, OneDrive/Graph, Google Drive, Box, Mega, "
        f"GitHub, paste and transfer sites), at least {FACTOR} times its own baseline and "
        "more than it received. The baseline is the median of the same hour of the week "
        f"(in the profile's time zone) over the host's other weeks, given {MIN_WEEKS} or "
        "more; else the host's median hour of cloud traffic. The score's parts are in the "
        "summary: the ratio to the baseline, the volume, the out/in ratio, the peers' "
        "median that hour and whether it was outside business hours (profile calendar). "
        "A steady upload in business hours is still flagged when the host's own history "
        "says it is new.",
        ["https://attack.mitre.org/techniques/T1567/002/"], __name__)

    def prepared(self, con: Any) -> list[Prepared]:
        """Each client's bytes sent to cloud services per hour (of every client)."""
        if not has_table(con, "net_cloud"):
            return []
        return [Prepared("ncu_host_hour", """
            SELECT src_ip, hour, sum(up)::BIGINT AS up FROM (
                SELECT src_ip, date_trunc('hour', ts) AS hour,
                       sum(coalesce(bytes_out, 0))::BIGINT AS up
                FROM net_cloud GROUP BY src_ip, cloud_service, hour)
            GROUP BY ALL""", NET_PARTITION)]

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (host, service, local day), over the hours flagged that day."""
        if not has_table(con, "net_cloud"):
            return
        score, why = parts_sql(
            ("c.weeks >= 2 AND c.up >= 100 * c.base_w", "40",
             "round(c.up / c.base_w)::BIGINT || 'x its ' || c.slot_name || ' median of ' || "
             "format_bytes(c.base_how::BIGINT) || ' over ' || c.weeks || ' other week(s)'"),
            ("c.weeks >= 2 AND c.up < 100 * c.base_w", "30",
             "round(c.up / c.base_w)::BIGINT || 'x its ' || c.slot_name || ' median of ' || "
             "format_bytes(c.base_how::BIGINT) || ' over ' || c.weeks || ' other week(s)'"),
            ("c.weeks < 2", "20",
             "'no weekly history; ' || CASE WHEN c.hours < 3 THEN 'first cloud hours seen' "
             "ELSE round(c.up / greatest(c.med, {FLOOR}))::BIGINT || 'x its median cloud "
             "hour of ' || format_bytes(c.med::BIGINT) END".replace("{FLOOR}", str(FLOOR))),
            ("c.up >= 1073741824", "20", "'at least 1 GiB'"),
            ("c.up < 1073741824", "10", "'at least 100 MiB'"),
            ("c.up >= 10 * greatest(c.down, 1)", "15",
             "'out/in ' || round(c.up / greatest(c.down, 1), 1)"),
            ("c.up >= 10 * greatest(c.pmed, " + str(FLOOR) + ")", "10",
             "'peers'' median that hour ' || format_bytes(coalesce(c.pmed, 0)::BIGINT)"),
            ("NOT c.business", "15", "'outside business hours'"),
            ("c.cloud_category IN ('storage', 'transfer', 'paste')", "5",
             "c.cloud_category || ' service'"))
        rows = query(con, f"""
            WITH f AS (SELECT *, date_trunc('hour', ts) AS hour FROM net_cloud),
            h AS (
                SELECT src_ip, cloud_service, min(cloud_category) AS cloud_category, hour,
                       sum(coalesce(bytes_out, 0))::BIGINT AS up,
                       sum(coalesce(bytes_in, 0))::BIGINT AS down,
                       count(*) AS n, min(name) AS name,
                       string_agg(DISTINCT "user", ', ' ORDER BY "user") AS users,
                       {FLOW_EVIDENCE_SQL} AS ev
                FROM f GROUP BY src_ip, cloud_service, hour),
            host_h AS (SELECT src_ip, hour, up FROM ncu_host_hour),
            base AS (SELECT src_ip, median(up) AS med, count(*) AS hours FROM host_h
                     GROUP BY src_ip),
            seen_w AS (SELECT DISTINCT src_ip, date_trunc('week', local_ts(ts)) AS wk
                       FROM net_flow),
            cand AS (SELECT h.*, date_trunc('week', local_ts(h.hour)) AS wk,
                            how_slot(h.hour) AS slot, in_business(h.hour) AS business,
                            strftime(local_ts(h.hour), '%a %H:00') AS slot_name
                     FROM h WHERE h.up >= {MIN_BYTES} AND h.up > h.down),
            hist AS (
                SELECT c.src_ip, c.cloud_service, c.hour,
                       median(coalesce(o.up, 0)) AS base_how, count(*) AS weeks
                FROM cand c JOIN seen_w w ON w.src_ip = c.src_ip AND w.wk <> c.wk
                LEFT JOIN host_h o ON o.src_ip = c.src_ip
                     AND date_trunc('week', local_ts(o.hour)) = w.wk
                     AND how_slot(o.hour) = c.slot
                GROUP BY ALL),
            peers AS (SELECT a.src_ip, a.hour, median(coalesce(b.up, 0)) AS pmed
                      FROM (SELECT DISTINCT src_ip, hour FROM cand) a
                      LEFT JOIN host_h b ON b.hour = a.hour AND b.src_ip <> a.src_ip
                      GROUP BY a.src_ip, a.hour),
            c AS (
                SELECT cand.*, coalesce(hist.base_how, 0) AS base_how,
                       greatest(coalesce(hist.base_how, 0), {FLOOR}) AS base_w,
                       coalesce(hist.weeks, 0) AS weeks, b.med, b.hours, p.pmed
                FROM cand JOIN base b USING (src_ip)
                LEFT JOIN hist ON hist.src_ip = cand.src_ip
                     AND hist.cloud_service = cand.cloud_service AND hist.hour = cand.hour
                LEFT JOIN peers p ON p.src_ip = cand.src_ip AND p.hour = cand.hour),
            flagged AS (
                SELECT c.*, {score} AS score, {why} AS why FROM c
                WHERE (c.weeks >= {MIN_WEEKS} AND c.up >= {FACTOR} * c.base_w)
                   OR (c.weeks < {MIN_WEEKS}
                       AND (c.up >= {FACTOR} * greatest(c.med, {FLOOR}) OR c.hours < 3))),
            day AS (
                SELECT src_ip, cloud_service, local_ts(hour)::DATE AS day,
                       sum(up)::BIGINT AS up, sum(down)::BIGINT AS down, sum(n) AS n,
                       count(*) AS hours_flagged, min(hour) AS h0, max(hour) AS h1,
                       max(score) AS score, arg_max(why, (score, why))
                           FILTER (WHERE score IS NOT NULL) AS why,
                       arg_max(slot_name, (score, slot_name))
                           FILTER (WHERE score IS NOT NULL) AS slot_name,
                       bool_and(business) AS all_business, bool_or(business) AS some_business,
                       min(name) AS name, string_agg(DISTINCT users, ', ' ORDER BY users) AS users,
                       min(med) AS med, min(hours) AS hours, max(weeks) AS weeks,
                       arg_max(base_how, (score, base_how))
                           FILTER (WHERE score IS NOT NULL) AS base_how,
                       arg_max(pmed, (score, pmed)) FILTER (WHERE score IS NOT NULL) AS pmed,
                       flatten(list(ev ORDER BY hour))[1:100] AS ev
                FROM flagged GROUP BY src_ip, cloud_service, day)
            SELECT {host_of('src_ip')} AS host, src_ip AS src, cloud_service AS dst,
                   split_part(users, ', ', 1) AS "user",
                   {level_sql('score')} AS level,
                   {host_of('src_ip')} || CASE WHEN {host_of('src_ip')} <> src_ip
                       THEN ' (' || src_ip || ')' ELSE '' END ||
                   coalesce(' as ' || users, '') || ' sent ' || format_bytes(up) ||
                   ' to ' || cloud_service || ' (' || coalesce(name, '?') || ') in ' ||
                   hours_flagged || ' hour(s) above its baseline on ' || strftime(day, '%Y-%m-%d')
                   || ' (' || calendar_tz() || '), from ' || strftime(h0, '%H:00') || ' to ' ||
                   strftime(h1, '%H:59') || ' UTC, ' ||
                   CASE WHEN all_business THEN 'all inside business hours'
                        WHEN some_business THEN 'partly outside business hours'
                        ELSE 'outside business hours' END ||
                   ', over ' || n || ' connection(s); its median cloud hour ' ||
                   format_bytes(med::BIGINT) || ' over ' || hours ||
                   ' hour(s). Top hour (' || slot_name || ') score ' || score || ': ' || why
                   AS summary,
                   {{'host': src_ip, 'service': cloud_service, 'bytes_out': up,
                     'bytes_in': down, 'hours_flagged': hours_flagged,
                     'how_baseline': base_how, 'weeks': weeks, 'host_median': med,
                     'peer_median': pmed, 'business_hours': all_business, 'score': score,
                     'users': users, 'day': strftime(day, '%Y-%m-%d'),
                     'first_hour': strftime(h0, '%Y-%m-%dT%H:00Z')}} AS matched,
                   ev
            FROM day ORDER BY h0, src_ip, cloud_service""")
        yield from findings_from_rows(self.META, rows, "net_conn")
