"""DNS tunnelling: many long, random-looking names under one domain, or TXT and NULL
answers by the hundred, from one client."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._net import (
    NET_PARTITION,
    TABLE_EVIDENCE_SQL,
    host_of,
    level_sql,
    parts_sql,
)
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, has_table, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

MIN_NAMES = 30
#: Second-level labels under which registrable domains sit one level deeper (com.au...).
SLD = ("com", "net", "org", "gov", "edu", "co", "ac", "or", "ne", "go", "mil", "ltd", "plc")
#: Shannon entropy of a label's characters, in DuckDB (bits per character).
ENTROPY = ("list_sum(list_transform(list_distinct(string_split(s, '')), lambda ch: "
           "-((length(s) - length(replace(s, ch, ''))) / length(s)) * "
           "log2((length(s) - length(replace(s, ch, ''))) / length(s))))")


class DnsTunnel(Analytic):
    """A client asked for many distinct long or high-entropy names under one domain."""

    NAME: ClassVar[str] = "dns_tunnel"
    READS: ClassVar[frozenset[str]] = frozenset({"dns"})
    #: Every finding is of one client (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = NET_PARTITION
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0053", "DNS tunnelling", "high",
        ["T1071.004", "T1048.003", "T1572"], ["command-and-control", "exfiltration"],
        f"One client asked for at least {MIN_NAMES} distinct names under one registered "
        "domain, and they are long (a mean of 20 or more characters before the domain), "
        "random (a mean Shannon entropy of 3.5 bits per character or more), or mostly "
        "TXT or NULL queries. Score parts: the number of names, their length and entropy, "
        "the TXT/NULL share and the NXDOMAIN share. Reverse lookups (arpa), .local and "
        "the organisation's own domains are left out.",
        ["https://attack.mitre.org/techniques/T1071/004/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (client, domain)."""
        if not has_table(con, "dns"):
            return
        sld = ", ".join(f"'{x}'" for x in SLD)
        score, why = parts_sql(
            ("names >= 300", "25", "names || ' distinct names'"),
            ("names < 300", "10", "names || ' distinct names'"),
            ("avg_len >= 40", "25", "'mean length ' || round(avg_len)::INT"),
            ("avg_len >= 20 AND avg_len < 40", "15", "'mean length ' || round(avg_len)::INT"),
            ("avg_ent >= 4", "20", "'entropy ' || round(avg_ent, 2)"),
            ("avg_ent >= 3.5 AND avg_ent < 4", "10", "'entropy ' || round(avg_ent, 2)"),
            ("txt_share >= 0.5", "20", "round(100 * txt_share)::INT || '% TXT/NULL'"),
            ("nx_share >= 0.5", "10", "round(100 * nx_share)::INT || '% NXDOMAIN'"))
        ev = TABLE_EVIDENCE_SQL.format(t="dns")
        rows = query(con, f"""
            WITH q AS (
                SELECT *, string_split(rtrim(lower(query), '.'), '.') AS labels FROM dns
                WHERE query IS NOT NULL AND NOT regexp_matches(lower(query),
                      '(\\.arpa|\\.local|\\.localdomain|\\.lan|\\.internal)\\.?$')),
            b AS (
                SELECT q.*,
                       CASE WHEN len(labels) >= 3 AND labels[-2] IN ({sld})
                                 AND length(labels[-1]) = 2 THEN 3 ELSE 2 END AS keep
                FROM q WHERE len(labels) >= 3),
            n AS (
                SELECT b.*, array_to_string(labels[-keep:], '.') AS domain,
                       array_to_string(labels[:len(labels) - keep], '.') AS sub
                FROM b),
            own AS (SELECT domain AS d FROM org_domain WHERE role = 'own'),
            g AS (
                SELECT src_ip, domain, count(DISTINCT sub) AS names, count(*) AS queries,
                       avg(length(replace(sub, '.', ''))) AS avg_len,
                       avg(CASE WHEN upper(qtype_name) IN ('TXT', 'NULL') THEN 1 ELSE 0 END)
                           AS txt_share,
                       avg(CASE WHEN upper(rcode_name) = 'NXDOMAIN' THEN 1 ELSE 0 END)
                           AS nx_share,
                       min(ts) AS t0, max(ts) AS t1, arg_max(sub, (length(sub), sub))
                           FILTER (WHERE length(sub) IS NOT NULL) AS longest,
                       {ev} AS ev
                FROM n WHERE domain NOT IN (SELECT d FROM own)
                  AND NOT EXISTS (SELECT 1 FROM own WHERE n.domain LIKE '%.' || own.d)
                GROUP BY src_ip, domain HAVING count(DISTINCT sub) >= {MIN_NAMES}),
            e AS (
                SELECT g.src_ip, g.domain, avg({ENTROPY}) AS avg_ent
                FROM g JOIN (SELECT DISTINCT src_ip, domain, replace(sub, '.', '') AS s
                             FROM n) x USING (src_ip, domain)
                WHERE length(x.s) > 0 GROUP BY ALL),
            s AS (
                SELECT g.*, e.avg_ent, {score} AS score, {why} AS why
                FROM g JOIN e USING (src_ip, domain)
                WHERE g.avg_len >= 20 OR e.avg_ent >= 3.5 OR g.txt_share >= 0.5)
            SELECT {host_of('src_ip')} AS host, src_ip AS src, domain AS dst,
                   {level_sql('score')} AS level,
                   {host_of('src_ip')} || ' asked for ' || names || ' distinct names under ' ||
                   domain || ' in ' || queries || ' queries from ' ||
                   strftime(t0, '%Y-%m-%d %H:%M') || ' to ' || strftime(t1, '%H:%M') ||
                   ' UTC, e.g. ' || left(longest, 80) || '.' || domain || '. Score ' ||
                   score || ': ' || why AS summary,
                   {{'host': src_ip, 'domain': domain, 'names': names, 'queries': queries,
                     'mean_length': round(avg_len, 1), 'entropy': round(avg_ent, 2),
                     'txt_share': round(txt_share, 2), 'score': score}} AS matched, ev
            FROM s ORDER BY t0""")
        yield from findings_from_rows(self.META, rows, "dns")
