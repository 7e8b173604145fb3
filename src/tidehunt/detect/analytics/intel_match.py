"""Indicators of the case's intel seen in its evidence: a typed join of each indicator's
value against the columns that hold that kind of value, in every table. Network
indicators (``cidr``) are joined in SQL too: every distinct address of the address
columns is numbered (IPv4 as IPv4-mapped IPv6, so one 128-bit space holds both) and
matches a network whose first address it equals once the host bits are shifted out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    Analytic,
    findings_from_rows,
    has_table,
    meta,
    query,
    table_names,
)
from tidehunt.detect.spark_tables import SparkCase, duckdb_map
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

#: (table, indicator type, SQL giving the observed value, host column or NULL).
#: Values are lower-cased here as the indicators are; ``{c}`` names a column that may be
#: missing from the windows table (its EventData names vary) and is checked first.
TARGETS: tuple[tuple[str, str, str, str], ...] = (
    ("windows", "ip", '{SourceIp}', "host"), ("windows", "ip", '{DestinationIp}', "host"),
    ("windows", "ip", '{IpAddress}', "host"),
    ("windows", "domain", 'lower({QueryName})', "host"),
    ("windows", "domain", 'lower({DestinationHostname})', "host"),
    ("windows", "sha256", "lower(regexp_extract({Hashes}, 'SHA256=([0-9A-Fa-f]{{64}})', 1))",
     "host"),
    ("windows", "md5", "lower(regexp_extract({Hashes}, 'MD5=([0-9A-Fa-f]{{32}})', 1))", "host"),
    ("windows", "filename", "lower(regexp_extract({TargetFilename}, '[^\\\\\\\\/]+$'))", "host"),
    ("windows", "filename", "lower(regexp_extract({Image}, '[^\\\\\\\\/]+$'))", "host"),
    ("web_access", "ip", "client_ip", "host"), ("web_access", "ip", "xff", "host"),
    ("web_access", "user-agent", "user_agent", "host"),
    ("mail", "email", "lower(from_addr)", "NULL"), ("mail", "email", "lower(reply_to)", "NULL"),
    ("mail", "email", "lower(return_path)", "NULL"), ("mail", "email", "lower(sender)", "NULL"),
    ("mail", "domain", "lower(from_domain)", "NULL"),
    ("mail", "ip", "x_originating_ip", "NULL"),
    ("mail", "url", "unnest(string_split(urls, chr(10)))", "NULL"),
    ("mail", "domain", "lower(regexp_extract(unnest(string_split(urls, chr(10))), "
     "'^[a-z]+://([^/:?#@]+)', 1))", "NULL"),
    ("mail_attachment", "sha256", "sha256", "NULL"), ("mail_attachment", "md5", "md5", "NULL"),
    ("mail_attachment", "filename", "lower(filename)", "NULL"),
    ("mail_attachment", "url", "unnest(string_split(urls, chr(10)))", "NULL"),
    ("file", "sha256", "sha256", "host"), ("file", "md5", "md5", "host"),
    ("file", "filename", "lower(name)", "host"),
    ("site_script", "domain", "lower(regexp_extract(coalesce(origin, src), "
     "'^[a-z]+://([^/:?#@]+)', 1))", "NULL"),
    ("net_conn", "ip", "dst_ip", "src_ip"), ("net_conn", "ip", "src_ip", "dst_ip"),
    ("dns", "domain", "query", "src_ip"),
    ("dns", "ip", "unnest(string_split(answers, ','))", "src_ip"),
    ("http", "domain", "http_host", "src_ip"), ("http", "user-agent", "user_agent", "src_ip"),
    ("http", "ip", "dst_ip", "src_ip"),
    ("tls", "domain", "server_name", "src_ip"), ("tls", "ip", "dst_ip", "src_ip"),
    ("proxy", "domain", "url_host", "src_ip"), ("proxy", "ip", "dst_ip", "src_ip"),
    ("proxy", "url", "url", "src_ip"), ("proxy", "user-agent", "user_agent", "src_ip"),
)
_LOCATOR = {"web_access": "line"}

#: DuckDB macros numbering an address string as a UHUGEINT (None when it is not one):
#: ``th_ip_num('203.0.113.7')`` = 0xffff00000000 + the IPv4 number, IPv6 with ``::``
#: expanded, a zone (``%eth0``) or brackets dropped, ``::ffff:a.b.c.d`` as IPv4. The
#: numbering is :func:`tidehunt.intel.model.net_range`'s.
IP_NUM_MACROS: tuple[str, ...] = (
    r"""CREATE OR REPLACE TEMP MACRO th_ip4_int(v) AS CASE
        WHEN regexp_full_match(v, '[0-9]{1,3}(\.[0-9]{1,3}){3}') THEN list_reduce(
            string_split(v, '.'), lambda a, b: a * 256 + TRY_CAST(b AS UTINYINT),
            0::UHUGEINT) END""",
    r"""CREATE OR REPLACE TEMP MACRO th_ip6_side(s) AS
        CASE WHEN s = '' THEN []::VARCHAR[] ELSE string_split(s, ':') END""",
    r"""CREATE OR REPLACE TEMP MACRO th_ip6_groups(v) AS CASE
        WHEN NOT regexp_full_match(v, '[0-9a-f:]{2,39}') OR len(string_split(v, '::')) > 2
            THEN NULL
        WHEN v LIKE '%::%' THEN list_concat(
            th_ip6_side(split_part(v, '::', 1)),
            list_transform(range(8 - len(th_ip6_side(split_part(v, '::', 1)))
                                 - len(th_ip6_side(split_part(v, '::', 2)))), lambda x: '0'),
            th_ip6_side(split_part(v, '::', 2)))
        ELSE string_split(v, ':') END""",
    r"""CREATE OR REPLACE TEMP MACRO th_ip6_int(g) AS CASE WHEN len(g) = 8 THEN list_reduce(
        g, lambda a, b: a * 65536 + TRY_CAST('0x' || b AS USMALLINT), 0::UHUGEINT) END""",
    r"""CREATE OR REPLACE TEMP MACRO th_ip_num1(v) AS CASE
        WHEN v NOT LIKE '%:%' THEN 281470681743360::UHUGEINT + th_ip4_int(v)
        WHEN v LIKE '::ffff:%.%' THEN 281470681743360::UHUGEINT + th_ip4_int(substr(v, 8))
        ELSE th_ip6_int(th_ip6_groups(v)) END""",
    r"""CREATE OR REPLACE TEMP MACRO th_ip_num(x) AS
        th_ip_num1(lower(split_part(trim(x, '[] '), '%', 1)))""",
)
_HIT_COLS = ("i.type, i.value, i.source, i.age_days, i.lifetime_days, i.score, i.expired, "
             "i.context, i.artefact AS iart, i.locator AS iloc, i.source_file AS ifile")
#: Network indicators: each distinct address inside one (and inside no listed network),
#: then the observations of those addresses. An address is inside a network when both
#: agree once its host bits are shifted out: a hash join per distinct prefix length
#: (a handful), where a range join would compare every address with every network.
#: The CTEs are materialised so the numbering runs once per distinct address and the
#: shifted keys exist before the hash joins (inlined, DuckDB plans a cross product).
_INSIDE_SQL = """
    ipn AS MATERIALIZED (SELECT v, th_ip_num(v) AS num
                         FROM (SELECT DISTINCT v FROM o WHERE kind = 'ip')),
    net AS (SELECT value, CAST(net_shift AS UHUGEINT) AS sh,
                   CAST(net_lo AS UHUGEINT) >> CAST(net_shift AS UHUGEINT) AS key
            FROM intel_live WHERE type = 'cidr'),
    probe AS MATERIALIZED (
        SELECT p.v, p.num, s.sh, p.num >> s.sh AS key
        FROM ipn p CROSS JOIN (SELECT DISTINCT sh FROM net) s WHERE p.num IS NOT NULL),
    inside AS MATERIALIZED (
        SELECT p.v, p.num, net.value FROM probe p
        JOIN net ON net.sh = p.sh AND net.key = p.key)"""
_CIDR_SQL = _INSIDE_SQL + f""",
    wnet AS (SELECT CAST(net_shift AS UHUGEINT) AS sh,
                    CAST(net_lo AS UHUGEINT) >> CAST(net_shift AS UHUGEINT) AS key
             FROM intel_warn_net),
    wprobe AS MATERIALIZED (
        SELECT i.num, s.sh, i.num >> s.sh AS key
        FROM (SELECT DISTINCT num FROM inside) i CROSS JOIN (SELECT DISTINCT sh FROM wnet) s),
    listed AS (SELECT DISTINCT p.num FROM wprobe p
               JOIN wnet w ON w.sh = p.sh AND w.key = p.key),
    cidr_hit AS (
        SELECT o.*, {_HIT_COLS}
        FROM inside s JOIN o ON o.kind = 'ip' AND o.v = s.v
        JOIN intel_live i ON i.type = 'cidr' AND i.value = s.value
        WHERE s.num NOT IN (SELECT num FROM listed)),"""


#: Domain indicators that a domain observed ends with after a dot (its subdomains): each
#: suffix after a dot of the observed value, joined on equality. (A join on
#: ``o.v = i.value OR ends_with(o.v, '.' || i.value)`` compared every observation with
#: every indicator of its type: with a feed of 20,000 domains over the 100x benchmark
#: case, 2.57 s against 0.23 s.) The pairs are those of that condition, once each: a value
#: equal to an indicator does not also end with it after a dot.
_SUFFIX_HIT = f"""
    SELECT o.tbl, o.kind, o.v, o.host, o.ts, o._artefact, o._locator, o.src_file, o.line,
           {_HIT_COLS}
    FROM (SELECT *, unnest(list_transform(range(1, len(string_split(v, '.'))),
                 lambda k: array_to_string(string_split(v, '.')[k + 1:], '.'))) AS sfx
          FROM o WHERE kind = 'domain' AND contains(v, '.')) o
    JOIN intel_live i ON i.type = 'domain' AND i.value = o.sfx"""


class IntelMatch(Analytic):
    """Every live (or, in retro-hunt mode, expired) indicator value found in the case."""

    NAME: ClassVar[str] = "intel_match"
    SPARK: ClassVar[bool] = True
    #: Why META names no ATT&CK technique: a value from a feed is evidence of the actor,
    #: not of a technique; the findings it confirms carry theirs.
    NO_TECHNIQUE: ClassVar[str] = "indicator matches are not techniques"
    READS: ClassVar[frozenset[str]] = frozenset({"indicator"})
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0034", "Threat-intel indicator seen in the evidence", "high", [],
        ["command-and-control", "initial-access"],
        "An indicator of the case's intel (the bundled APT40 pack, --intel files, fetched "
        "feeds) equals a value the evidence holds in a column of its kind: an address in a "
        "connection, logon or request, a domain in a DNS query, connection, mail or link "
        "(its subdomains too), a hash of an attachment, scanned file or process image, a "
        "file name, an e-mail address, a user agent; an address inside a network "
        "indicator (CIDR, IPv4 and IPv6). Each match says the indicator's "
        "source, age and current score; expired indicators match only in retro-hunt mode "
        "and say so; warninglisted values never match.",
        ["https://www.misp-project.org/2019/09/12/Decaying-of-indicators.html/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (indicator, host or table)."""
        yield from self._run(con, None)

    def run_spark(self, con: Any, ctx: RunContext, job: SparkCase) -> Iterator[Finding]:
        """The same findings, the tables scanned and joined to the indicators on Spark."""
        yield from self._run(con, job)

    def _run(self, con: Any, job: SparkCase | None) -> Iterator[Finding]:
        if not has_table(con, "intel_live"):
            return
        obs = observations(con)
        if not obs:
            return
        cidr = bool(con.execute("SELECT count(*) FROM intel_live WHERE type = 'cidr'")
                    .fetchall()[0][0]) and has_table(con, "intel_warn_net")
        if cidr:
            for macro in IP_NUM_MACROS:
                con.execute(macro)
        if job is None:
            union = "\nUNION ALL\n".join(q for qs in obs.values() for q in qs)
            source = f"SELECT * FROM ({union}) WHERE v IS NOT NULL AND v <> ''"
        else:  # the observations that can match, found on Spark (the rest never join)
            con.register("intel_obs", spark_candidates(con, job, obs, cidr))
            source = "SELECT * FROM intel_obs"
        rows = query(con, f"""
            WITH o AS ({source}),
            {_CIDR_SQL if cidr else ""}
            hit AS (
                SELECT o.*, {_HIT_COLS}
                FROM o JOIN intel_live i ON i.type = o.kind AND o.v = i.value
                UNION ALL
                {_SUFFIX_HIT}
                {"UNION ALL SELECT * FROM cidr_hit" if cidr else ""})
            SELECT host, CASE WHEN type = 'cidr' AND count(DISTINCT v) = 1 THEN min(v)
                              ELSE value END AS dst, NULL AS src,
                   CASE WHEN bool_and(expired) THEN 'low'
                        WHEN max(score) >= 50 THEN 'high'
                        WHEN max(score) >= 20 THEN 'medium' ELSE 'low' END AS level,
                   type || ' ' || value || CASE WHEN type = 'cidr' THEN ' (' ||
                       count(DISTINCT v) || ' address(es) inside: ' || array_to_string(
                       list_sort(list_distinct(list(v)))[1:5], ', ') ||
                       CASE WHEN count(DISTINCT v) > 5 THEN ', ...' ELSE '' END || ')'
                       ELSE '' END || ' from ' || string_agg(DISTINCT source, ', '
                       ORDER BY source) || ' seen ' || count(*) || ' time(s) in ' ||
                   string_agg(DISTINCT tbl, ', ' ORDER BY tbl) ||
                   coalesce(' on ' || host, '') || ': indicator ' ||
                   CASE WHEN min(age_days) IS NULL THEN 'of unknown age'
                        ELSE CAST(round(min(age_days)) AS BIGINT) || ' days old' END ||
                   ', score ' || max(score) || CASE WHEN bool_and(expired)
                        THEN ' (expired after ' || min(lifetime_days) ||
                             ' days: retro-hunt match)' ELSE '' END ||
                   coalesce('; ' || left(min(context), 200), '') AS summary,
                   {{'type': type, 'value': value, 'sources': string_agg(DISTINCT source,
                     ', ' ORDER BY source), 'age_days': min(age_days),
                     'score': max(score), 'expired': bool_and(expired),
                     'addresses': CASE WHEN type = 'cidr' THEN array_to_string(list_sort(
                         list_distinct(list(v)))[1:20], ', ') END,
                     'first_match': strftime(min(ts), '%Y-%m-%dT%H:%M:%SZ')}} AS matched,
                   list_concat(
                     [{{'table': 'indicator', 'artefact': min(iart), 'locator': min(iloc),
                        'source_file': min(ifile), 'line': NULL::BIGINT,
                        'ts': NULL::TIMESTAMPTZ}}],
                     list({{'table': tbl, 'artefact': _artefact, 'locator': _locator,
                           'source_file': src_file, 'line': line, 'ts': ts}}
                          ORDER BY ts, _artefact, _locator)[1:100]) AS ev
            FROM hit GROUP BY type, value, host
            ORDER BY min(ts), type, value, host""")
        yield from findings_from_rows(self.META, rows, "indicator")


def observations(con: Any) -> dict[str, list[str]]:
    """Per table, the SELECTs of its observed values (``OBS_COLUMNS``), one per scan."""
    obs: dict[str, list[str]] = {}
    #: (table, host, src, loc) -> [(kind, expr)]: one scan of the table for them all
    scans: dict[tuple[str, str, str, str], list[tuple[str, str]]] = {}
    cols: dict[str, dict[str, str]] = {}
    tables = table_names(con)
    for table, kind, expr, host in TARGETS:
        if table not in tables:
            continue
        if table not in cols:
            cols[table] = {r[0].lower(): r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                [table]).fetchall()}
        have = cols[table]
        names = re.findall(r"(?<!\{)\{([A-Za-z]+)\}(?!\})", expr)
        if not all(n.lower() in have for n in names):
            continue
        sql_expr = expr.format(**{n: f'"{have[n.lower()]}"' for n in names})
        src = "root || '/' || path" if table == "file" else "source_file"
        loc = "line" if table in ("web_access", "net_conn", "dns", "http", "tls",
                                  "proxy") else "NULL::BIGINT"
        if "unnest(" not in sql_expr:
            scans.setdefault((table, host, src, loc), []).append((kind, sql_expr))
            continue
        obs.setdefault(table, []).append(
            f"""SELECT '{table}' AS tbl, '{kind}' AS kind, {sql_expr} AS v,
                {host} AS host, ts, _artefact, _locator, {src} AS src_file,
                {loc} AS line
                FROM {table}""")
    for (table, host, src, loc), values in scans.items():
        # the values of one table's columns from one scan of it: each scan of a view
        # over many parts holds a reader per part (memory beyond DuckDB's limit)
        pairs = ", ".join(f"{{'kind': '{kind}', 'v': {expr}}}" for kind, expr in values)
        obs.setdefault(table, []).append(
            f"""SELECT tbl, x.kind AS kind, x.v AS v, host, ts, _artefact,
                _locator, src_file, line
                FROM (SELECT '{table}' AS tbl, {host} AS host, ts, _artefact,
                             _locator, {src} AS src_file, {loc} AS line,
                             unnest([{pairs}]) AS x
                      FROM {table})""")
    return obs


#: The observations as they leave a Spark executor (typed for Spark's Arrow conversion).
OBS_SCHEMA = pa.schema([("tbl", pa.string()), ("kind", pa.string()), ("v", pa.string()),
                        ("host", pa.string()), ("ts", pa.timestamp("us", "UTC")),
                        ("_artefact", pa.string()), ("_locator", pa.string()),
                        ("src_file", pa.string()), ("line", pa.int64())])
OBS_DDL = ("tbl string, kind string, v string, host string, ts timestamp, "
           "_artefact string, _locator string, src_file string, line long")
_OBS_CAST = ("SELECT tbl, kind, CAST(v AS VARCHAR) AS v, CAST(host AS VARCHAR) AS host, "
             "ts, _artefact, CAST(_locator AS VARCHAR) AS _locator, src_file, "
             "CAST(line AS BIGINT) AS line FROM ({q}) WHERE v IS NOT NULL AND v <> ''")
#: What an observation can match: its value as it is, every suffix after a dot of a
#: domain, and an address inside a network (``inside``, found on the driver).
_KEEP = """SELECT * FROM ({q}) o
    WHERE EXISTS (SELECT 1 FROM keys WHERE keys.type = o.kind AND keys.value = o.v)
    OR (o.kind = 'domain' AND EXISTS (
        SELECT 1 FROM (SELECT unnest(list_transform(
            range(1, len(string_split(o.v, '.'))),
            lambda k: array_to_string(string_split(o.v, '.')[k + 1:], '.'))) AS s) x
        WHERE x.s IN (SELECT value FROM keys WHERE type = 'domain')))
    OR (o.kind = 'ip' AND o.v IN (SELECT v FROM inside))"""


def spark_candidates(con: Any, job: SparkCase, obs: dict[str, list[str]],
                     cidr: bool) -> pa.Table:
    """The observations of every table that can match an indicator, as a Spark job.

    Each table is scanned on Spark, and each partition takes its observations with the
    local engine's SQL and keeps those whose value, a domain suffix of it, or its address
    being inside a network can match (the indicator values travel with the job: a
    broadcast join in each partition). Networks need 128-bit numbers, which Spark lacks:
    the distinct addresses observed are collected and the driver's DuckDB finds those
    inside a network, as the local engine does. The kept rows are a superset of the
    matches, so the local engine's join over them gives its findings exactly."""
    keys = con.sql("SELECT DISTINCT type, value FROM intel_live WHERE type <> 'cidr'"
                   ).to_arrow_table()
    def scan(sql: str, tables: dict[str, pa.Table] | None = None) -> Any:
        """Every table's observations through ``sql`` ({q}: one observation query)."""
        frames = [duckdb_map(job.frame(table), table, sql.format(q=_OBS_CAST.format(q=q)),
                             OBS_SCHEMA, OBS_DDL, tables)
                  for table, queries in obs.items() for q in queries]
        union = frames[0]
        for f in frames[1:]:
            union = union.unionAll(f)
        return union

    inside = pa.table({"v": pa.array([], pa.string())})
    if cidr:
        ips = scan("{q}").where("kind = 'ip'").select("v").distinct().toArrow()
        con.register("intel_obs_ip", ips)
        inside = con.sql(f"""WITH o AS (SELECT 'ip' AS kind, v FROM intel_obs_ip),
            {_INSIDE_SQL}
            SELECT DISTINCT v FROM inside""").to_arrow_table()
        con.unregister("intel_obs_ip")
    out = scan(_KEEP, {"keys": keys, "inside": inside})
    return out.toArrow().cast(OBS_SCHEMA)
