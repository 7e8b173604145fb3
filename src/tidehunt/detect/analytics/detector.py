"""AnalyticsDetector: every registered analytic whose tables the case has, in one pass."""

from __future__ import annotations

import logging
import os
import shutil
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from tidehunt import registry
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    IN_BUCKET_LOCAL,
    Analytic,
    Prepared,
    has_table,
    table_names,
)
from tidehunt.detect.base import Detector
from tidehunt.intel.live import IntelOptions, live_table, warn_net_table
from tidehunt.intel.warninglist import Warninglist
from tidehunt.memory import DUCKDB_SHARE as DUCKDB_SHARE  # (was defined here)
from tidehunt.memory import MemoryBudget, limit_duckdb, size_bytes
from tidehunt.model.finding import FINDINGS_SCHEMA, Finding, findings_batch
from tidehunt.model.rule import Severity
from tidehunt.org import OrgProfile

log = logging.getLogger("tidehunt.analytics")
#: The analytics' DuckDB memory limit unless --max-memory says otherwise.
DEFAULT_MAX_MEMORY = "2GB"


@dataclass
class AnalyticsOptions:
    """What the user asked for (the same filters as the Sigma engine's)."""

    min_level: Severity = Severity.INFORMATIONAL
    exclude: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    org: OrgProfile | None = None
    intel: IntelOptions = field(default_factory=IntelOptions)
    kev: str | None = None
    geoip: str | None = None
    risky_networks: str | None = None
    #: Memory budget of the analytics, e.g. "2GB": DuckDB gets DUCKDB_SHARE of it and
    #: spills to the case's work folder beyond that; None for DuckDB's default (80% RAM).
    max_memory: str | None = DEFAULT_MAX_MEMORY
    #: Spark (``--engine spark``): a ``tidehunt.detect.sigma.spark.SparkOptions``; the
    #: analytics that can (``Analytic.SPARK``) scan and join the tables on it.
    spark: Any = None
    #: Of the budget's DuckDB share, what the analytics' connection gets (a half when
    #: they run beside the Sigma findings build: ``engine._run_detectors``).
    duckdb_fraction: float = 1.0


#: Own domains when the profile names none: those that receive at least this share of the
#: case's mail (To/Cc).
OWN_SHARE = 0.2
_OWN_DOMAIN_SQL = f"""
CREATE VIEW mail_own_domain AS
WITH rcpt AS (
    SELECT lower(regexp_extract(trim(a), '@([^@>\\s]+)$', 1)) AS d, _locator
    FROM (SELECT unnest(string_split(coalesce("to", '') || ',' || coalesce(cc, ''), ','))
                 AS a, _locator FROM mail)
    WHERE a LIKE '%@%'),
inferred AS (SELECT d FROM rcpt GROUP BY d
             HAVING count(DISTINCT _locator) >= {OWN_SHARE} * (SELECT count(*) FROM mail))
SELECT domain AS d FROM org_domain WHERE role = 'own'
UNION
SELECT d FROM inferred WHERE NOT EXISTS (SELECT 1 FROM org_domain WHERE role = 'own')
"""


def prepare(con: Any, org: OrgProfile | None,
            intel: IntelOptions | None = None, kev: str | None = None,
            geoip: str | None = None, risky: str | None = None,
            work: Path | None = None) -> dict[str, Any]:
    """Views the analytics share: the organisation profile's tables (empty without one),
    the mail's own domains, the file table's web-root rows, and the indicators as they
    stand now (``intel_live``: aged, scored, warninglist applied; ``intel_warn_net``: the
    listed networks). Returns intel stats."""
    for name, table in (org or OrgProfile()).tables().items():
        con.register(name, table)
    case = table_names(con)  # the case's views (what is registered here is not asked for)
    stats: dict[str, Any] = {}
    if "indicator" in case:
        rows = con.sql(
            "SELECT type, value, source, first_seen, last_seen, valid_until, confidence, "
            "context, source_file, _artefact, _locator FROM indicator").to_arrow_table()
        opts = intel or IntelOptions()
        wl = Warninglist.load(opts.warninglists)
        live, st = live_table(rows.to_pylist(), opts, wl)
        con.register("intel_live", live)
        con.register("intel_warn_net", warn_net_table(wl))
        stats = asdict(st)
    if "inventory" in case:
        con.register("vuln_exposure", exposure_table(con, kev))
    if "auth" in case:
        from tidehunt.identity import class_table, geo_table, load_risky

        ips = [r[0] for r in con.execute("SELECT DISTINCT src_ip FROM auth "
                                         "WHERE src_ip IS NOT NULL").fetchall()]
        con.register("auth_geo", geo_table(ips, geoip))
        con.register("auth_ip_class", class_table(ips, load_risky(risky)))
    _prepare_network(con, org, risky, work, case)
    if "mail" in case:
        con.execute(_OWN_DOMAIN_SQL)
    if "file" in case:  # web-root analytics read files of scanned folders only
        con.execute(WEBROOT_FILE_SQL)
    return stats


def _prepare_network(con: Any, org: OrgProfile | None, risky: str | None,
                     work: Path | None = None, case: frozenset[str] | None = None) -> None:
    """``net_flow`` and ``net_cloud`` (connections and proxied requests named by server
    and cloud service), ``net_addr`` (zone, public, risky list of every address seen) and
    ``host_ip`` (names of addresses)."""
    from tidehunt.identity import load_risky
    from tidehunt.network import (
        ADDR_COLUMNS,
        CLOUD_NAME_SQL,
        addr_table,
        api_table,
        catalogue,
        host_ip_sql,
        net_cloud_sql,
        net_flow_sql,
    )

    case = table_names(con) if case is None else case
    have = {"net_conn", "proxy", "tls", "http", "dns", "windows"} & case
    for macro in calendar_macros(org):
        con.execute(macro)
    if have & {"net_conn", "proxy"}:
        con.register("cloud_catalogue", catalogue())
        con.register("cloud_api", api_table())
        if work is not None:  # computed once, read by each analytic with column pruning
            work.mkdir(parents=True, exist_ok=True)
            flow = work / "net_flow.parquet"
            con.execute(net_flow_sql(have, str(flow)))
            quoted = str(flow).replace("'", "''")  # a case folder may have a quote
            con.execute(f"CREATE VIEW net_flow AS SELECT * FROM read_parquet('{quoted}')")
        else:
            con.execute(net_flow_sql(have))
        con.execute(CLOUD_NAME_SQL)
        con.execute(net_cloud_sql(have))
    win_cols = set(columns_of(con, "windows")) if "windows" in have else set()
    con.execute(host_ip_sql(have if {"SourceIp", "Initiated"} <= win_cols else
                            have - {"windows"}))
    selects = [f"SELECT DISTINCT {c} AS ip FROM {t} WHERE {c} IS NOT NULL"
               for t, cs in ADDR_COLUMNS.items() if t in have for c in cs]
    if "IpAddress" in win_cols:
        selects.append("SELECT DISTINCT IpAddress AS ip FROM windows "
                       "WHERE event_id IN (4624, 4625, 4648) AND IpAddress IS NOT NULL")
    selects.append("SELECT ip FROM host_ip")
    ips = [r[0] for r in con.execute(" UNION ".join(selects)).fetchall()]
    con.register("net_addr", addr_table(ips, org, load_risky(risky)))


def duckdb_limit(max_memory: str) -> str:
    """DuckDB's memory_limit for a whole-process budget (its DUCKDB_SHARE), in MiB."""
    return MemoryBudget(size_bytes(max_memory)).duckdb_limit()


def calendar_macros(org: OrgProfile | None) -> list[str]:
    """``local_ts(t)``, ``how_slot(t)`` (hour of week, 0 = Monday 00:00 local) and
    ``in_business(t)`` in the profile's time zone and calendar, with its values inlined
    (checked when the profile was read) so no row pays for a lookup."""
    cal = (org or OrgProfile()).calendar
    tz = cal.timezone.replace("'", "")
    days = ", ".join(str(int(d)) for d in cal.workdays) or "0"
    hols = "[" + ", ".join(f"DATE '{h}'" for h in cal.holidays if len(h) == 10) + "]::DATE[]"
    return [
        f"CREATE OR REPLACE TEMP MACRO local_ts(t) AS timezone('{tz}', t)",
        "CREATE OR REPLACE TEMP MACRO how_slot(t) AS "
        "((isodow(local_ts(t)) - 1) * 24 + hour(local_ts(t)))::INT",
        f"CREATE OR REPLACE TEMP MACRO in_business(t) AS (isodow(local_ts(t)) IN ({days}) "
        f"AND hour(local_ts(t)) * 60 + minute(local_ts(t)) >= {int(cal.start_minute)} "
        f"AND hour(local_ts(t)) * 60 + minute(local_ts(t)) < {int(cal.end_minute)} "
        f"AND NOT list_contains({hols}, local_ts(t)::DATE))",
        f"CREATE OR REPLACE TEMP MACRO calendar_tz() AS '{tz}'",
    ]


def columns_of(con: Any, table: str) -> list[str]:
    """Column names of a table or view."""
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
        [table]).fetchall()]


def exposure_table(con: Any, kev: str | None) -> pa.Table:
    """The inventory's exposures (version ranges compared with packaging, per asset)."""
    from tidehunt.vuln import Asset, exposures, kev_overdue, read_kev

    rows = con.sql("SELECT host, product, vendor, version, purl, cpe, internet_facing, "
                   "custom, source_file, _artefact, _locator FROM inventory"
                   ).to_arrow_table().to_pylist()
    assets, where = [], {}
    for r in rows:
        a = Asset(r["host"], r["product"], r["vendor"], r["version"], r["purl"], r["cpe"],
                  r["internet_facing"], r["source_file"] or "", bool(r["custom"]))
        assets.append(a)
        where[id(a)] = (r["_artefact"], r["_locator"])
    found = exposures(assets, read_kev(kev) if kev else None)
    cols: dict[str, list[Any]] = {k: [] for k in (
        "rid", "host", "product", "vendor", "version", "cve", "name", "apt40", "kev_added",
        "kev_due", "overdue", "version_known", "internet_facing", "exploit_uri", "note",
        "source_file", "artefact", "locator")}
    for i, e in enumerate(found):
        a = e.asset
        art, loc = where[id(a)]
        for k, v in (("rid", i), ("host", a.host), ("product", a.product),
                     ("vendor", a.vendor), ("version", a.version), ("cve", e.cve),
                     ("name", e.name), ("apt40", e.apt40), ("kev_added", e.kev_added),
                     ("kev_due", e.kev_due), ("overdue", kev_overdue(e)),
                     ("version_known", e.version_known),
                     ("internet_facing", bool(a.internet_facing)),
                     ("exploit_uri", f"(?i){e.exploit_uri}" if e.exploit_uri else None),
                     ("note", "; ".join(e.notes) or None), ("source_file", a.source_file),
                     ("artefact", art), ("locator", loc)):
            cols[k].append(v)
    return pa.table({k: pa.array(v, pa.int64() if k == "rid" else
                                 pa.bool_() if k in ("overdue", "version_known",
                                                     "internet_facing") else pa.string())
                     for k, v in cols.items()})


@dataclass
class AnalyticsStats:
    """What ran, what did not apply, what failed, and the time each took."""

    ran: list[str] = field(default_factory=list)
    not_applicable: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    excluded: int = 0
    findings: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    intel: dict[str, Any] = field(default_factory=dict)
    #: Analytics whose scans ran on Spark (``--engine spark``).
    spark: list[str] = field(default_factory=list)
    #: Under ``--engine spark``, those that ran on the driver, with the reason.
    driver: list[dict[str, str]] = field(default_factory=list)


#: The web-root scan's files (not those extracted from mail), as the analytics read them.
WEBROOT_FILE_SQL = ("CREATE VIEW webroot_file AS SELECT * FROM file "
                    "WHERE coalesce(origin, 'webroot') = 'webroot'")
#: How partitioned analytics share a Spark job: their keys per table, and the rows kept.
Scheme = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]
#: The prepared tables a partitioned analytic may read besides its own (``prepare``):
#: small, or per value (an address, a name) rather than per event; each Spark task gets
#: the driver's copy of those the case has.
SHARED_TABLES = ("org_calendar", "org_host", "org_zone", "org_allow", "org_mfa",
                 "org_service", "org_domain", "org_trusted", "intel_live", "intel_warn_net",
                 "vuln_exposure", "auth_geo", "auth_ip_class", "cloud_catalogue", "cloud_api",
                 "net_addr", "host_ip", "mail_own_domain", "cloud_name")


def window_sql(since: datetime | None, until: datetime | None) -> str | None:
    """A ``ts`` filter for every table view, or None."""
    conds = []
    if since is not None:
        conds.append(f"ts >= TIMESTAMPTZ '{since.isoformat()}'")
    if until is not None:
        conds.append(f"ts <= TIMESTAMPTZ '{until.isoformat()}'")
    return " AND ".join(conds) or None


def analytics() -> dict[str, type[Analytic]]:
    """Every registered analytic that imports."""
    return registry.all_of("analytics")


class AnalyticsDetector(Detector):
    """The SQL analytics (web access, and joins across tables)."""

    NAME: ClassVar[str] = "analytics"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access", "windows", "file",
                                                 "site_script", "mail",
                                                 "mail_attachment", "indicator",
                                                 "inventory", "auth", "cloud_audit",
                                                 "net_conn", "dns", "http", "tls",
                                                 "proxy"})

    def __init__(self, options: AnalyticsOptions | None = None) -> None:
        self.options = options or AnalyticsOptions()
        self.stats = AnalyticsStats()

    def run(self, store: CaseStore, ctx: RunContext) -> Iterator[pa.RecordBatch]:
        """Run each applicable analytic; a failing one is reported, the others go on."""
        opt = self.options
        excluded = {x.lower() for x in opt.exclude}
        con = store.connect(window_sql(opt.since, opt.until))
        work = store.root / f".work-analytics-{os.getpid()}"
        out: list[Finding] = []
        spark_out: list[pa.Table] = []
        try:
            budget = MemoryBudget.parse(opt.max_memory)
            if budget is not None:  # its DuckDB share, spilling into the work folder
                work.mkdir(exist_ok=True)  # (DuckDB makes the spill folder, not its parent)
            limit_duckdb(con, budget, work / "spill", opt.duckdb_fraction)
            self.stats.intel = prepare(con, opt.org, opt.intel, opt.kev, opt.geoip,
                                       opt.risky_networks, work)
            con.execute(IN_BUCKET_LOCAL)
            job = None
            if opt.spark is not None:
                from tidehunt.detect.sigma.spark import session
                from tidehunt.detect.spark_tables import SparkCase

                job = SparkCase(session(opt.spark), store, opt.since, opt.until)
            todo: dict[str, type[Analytic]] = {}
            tables = table_names(con)
            for name, cls in analytics().items():
                if cls.META.id.lower() in excluded or name in excluded:
                    self.stats.excluded += 1
                    continue
                missing = sorted(t for t in cls.READS if t not in tables)
                anyof: frozenset[str] = cls.READS_ANY
                if anyof and not any(t in tables for t in anyof):
                    missing.append(" or ".join(sorted(anyof)))
                if missing:
                    self.stats.not_applicable.append(
                        {"analytic": name, "id": cls.META.id,
                         "reason": f"case has no {', '.join(missing)} rows"})
                    continue
                todo[name] = cls
            if job is not None:
                spark_out = self._spark(con, job, ctx, todo, out)
            else:
                for name, cls in todo.items():
                    self._local(con, ctx, name, cls, out)
        finally:
            con.close()
            shutil.rmtree(work, ignore_errors=True)
        self.stats.findings = len(out) + sum(t.num_rows for t in spark_out)
        if out:
            yield findings_batch(out)
        for t in spark_out:
            yield from t.cast(FINDINGS_SCHEMA).to_batches()
        if not self.stats.findings:
            yield pa.RecordBatch.from_pylist([], schema=FINDINGS_SCHEMA)

    def _fail(self, name: str, cls: type[Analytic], exc: BaseException | str) -> None:
        err = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        self.stats.failed.append({"analytic": name, "id": cls.META.id, "error": err})
        log.warning("analytic %s failed: %s", name, err)
        if not isinstance(exc, str):
            log.debug("%s", traceback.format_exc())

    def _local(self, con: Any, ctx: RunContext, name: str, cls: type[Analytic],
               out: list[Finding], job: Any = None, computed: bool = False) -> None:
        """One analytic on the driver's DuckDB (its prepared tables first, unless they
        were computed on Spark); a failing one is reported, the others go on."""
        t0 = time.perf_counter()
        try:
            inst = cls()
            if job is not None and cls.SPARK:
                found_it = inst.run_spark(con, ctx, job)
                self.stats.spark.append(name)
            else:
                if not computed:  # (through Arrow, as Spark's executors return them)
                    for p in inst.prepared(con):
                        con.register(p.name, con.sql(p.sql).to_arrow_table())
                found_it = inst.run(con, ctx)
            found = [f for f in found_it if f.rule.severity >= self.options.min_level]
        except Exception as exc:  # noqa: BLE001 - reported; one broken analytic ends no hunt
            self._fail(name, cls, exc)
            return
        self.stats.seconds[name] = round(time.perf_counter() - t0, 3)
        self.stats.ran.append(name)
        out.extend(found)

    def _spark(self, con: Any, job: Any, ctx: RunContext, todo: dict[str, type[Analytic]],
               out: list[Finding]) -> list[pa.Table]:
        """``--engine spark``: each analytic's prepared tables computed on the executors
        (scans of one table batch by batch, then those per key bucket), then the
        analytics: partitioned ones on the executors bucket by bucket, reducing ones on
        the driver over their prepared tables only, Spark jobs of their own (the IOC
        join), and any other on the driver, with its reason."""
        from tidehunt.detect.spark_tables import empty_result, run_partitioned, run_scans

        shared = {n: con.sql(f'SELECT * FROM "{n}"').to_arrow_table()
                  for n in SHARED_TABLES if has_table(con, n)}
        preps: dict[str, list[Prepared]] = {}
        for name, cls in list(todo.items()):
            try:
                preps[name] = cls().prepared(con)
            except Exception as exc:  # noqa: BLE001 - reported, as a failing run would be
                self._fail(name, cls, exc)
                del todo[name]
        owner = {p.name: name for name, ps in preps.items() for p in ps}
        broken: set[str] = set()
        made: dict[str, pa.Table] = {}

        def keep(name: str, got: pa.Table | str, t0: float) -> None:
            who = owner[name]
            if isinstance(got, str):
                if who not in broken:
                    self._fail(who, todo[who], got)
                broken.add(who)
                return
            made[name] = got
            con.register(name, got)
            self.stats.seconds[who] = self.stats.seconds.get(who, 0.0) + round(
                time.perf_counter() - t0, 3)

        scans: dict[str, dict[str, str]] = {}
        staged: dict[Scheme, dict[str, str]] = {}
        for ps in preps.values():
            for p in ps:
                if isinstance(p.over, str):
                    scans.setdefault(p.over, {})[p.name] = p.sql
                else:
                    scheme = (tuple(sorted(p.over.items())),
                              tuple(sorted((p.keep or {}).items())))
                    staged.setdefault(scheme, {})[p.name] = p.sql
        setup = [*calendar_macros(self.options.org), IN_BUCKET_LOCAL]
        for table, sqls in scans.items():
            t0 = time.perf_counter()
            shape = con.sql(f'SELECT * FROM "{table}" LIMIT 0').to_arrow_table()
            for name, got in run_scans(job, table, sqls, shared, setup, shape).items():
                keep(name, got, t0)
        buckets = int(job.spark.conf.get("spark.sql.shuffle.partitions", "200"))
        for (keys, kept), sqls in staged.items():
            t0 = time.perf_counter()
            mapping, bshared, bsetup = self._buckets(con, dict(keys), {**shared, **made})
            res = run_partitioned(job, mapping, {}, bshared, bsetup,
                                  int(self.options.min_level), buckets, dict(kept), sqls)
            for name, r in res.items():
                keep(name, r.errors[0] if r.errors else
                     pa.concat_tables(r.tables, promote_options="permissive") if r.tables
                     else empty_result(sqls[name], bshared, bsetup), t0)
        schemes: dict[Scheme, dict[str, type[Analytic]]] = {}
        for name, cls in todo.items():
            if name in broken:
                continue
            if cls.PARTITION:  # on the executors, below
                scheme = (tuple(sorted(cls.PARTITION.items())),
                          tuple(sorted((cls.PARTITION_KEEP or {}).items())))
                schemes.setdefault(scheme, {})[name] = cls
            elif cls.REDUCE:
                self._reduce(name, cls, ctx, {**shared, **made}, out)
            else:
                self._local(con, ctx, name, cls, out, job, computed=True)
                if not cls.SPARK and name in self.stats.ran:
                    self.stats.driver.append({"analytic": name, "id": cls.META.id,
                                              "reason": cls.DRIVER or "no key"})
        if not schemes:
            return []
        return self._partitioned(con, job, schemes, {**shared, **made})

    def _reduce(self, name: str, cls: type[Analytic], ctx: RunContext,
                tables: dict[str, pa.Table], out: list[Finding]) -> None:
        """A reducing analytic on the driver, over its prepared tables (computed on
        Spark) and the small shared ones, on a connection that has nothing else."""
        import duckdb

        red = duckdb.connect()
        try:
            for n, t in tables.items():
                red.register(n, t)
            for sql in [*calendar_macros(self.options.org), IN_BUCKET_LOCAL]:
                red.execute(sql)
            self._local(red, ctx, name, cls, out, computed=True)
        finally:
            red.close()
        if name in self.stats.ran:
            self.stats.spark.append(name)

    def _buckets(self, con: Any, scheme: dict[str, str], shared: dict[str, pa.Table]
                 ) -> tuple[dict[str, str], dict[str, pa.Table], list[str]]:
        """A partitioning's keys for the tables the case has, the tables each bucket
        gets (the shared ones, and the case's view of each of its tables with no rows,
        for their columns) and the setup each bucket runs (macros, its own flows)."""
        from tidehunt.network import net_cloud_sql, net_flow_sql

        mapping = {t: key for t, key in scheme.items() if has_table(con, t)}
        empty = {t: con.sql(f'SELECT * FROM "{t}" LIMIT 0').to_arrow_table() for t in mapping}
        setup = calendar_macros(self.options.org)
        if set(mapping) & {"net_conn", "proxy"}:  # each bucket's clients' own flows
            setup += [net_flow_sql(set(mapping), table=True), net_cloud_sql(set(mapping))]
        if "file" in mapping:
            setup.append(WEBROOT_FILE_SQL)
        return mapping, {**shared, **empty}, setup

    def _partitioned(self, con: Any, job: Any,
                     schemes: dict[Scheme, dict[str, type[Analytic]]],
                     shared: dict[str, pa.Table]) -> list[pa.Table]:
        """The partitioned analytics on Spark, one job per partitioning scheme."""
        from tidehunt.detect.spark_tables import run_partitioned

        buckets = int(job.spark.conf.get("spark.sql.shuffle.partitions", "200"))
        tables: list[pa.Table] = []
        for (scheme, keep), group in schemes.items():
            mapping, bshared, setup = self._buckets(con, dict(scheme), shared)
            res = run_partitioned(job, mapping, group, bshared, setup,
                                  int(self.options.min_level), buckets, dict(keep))
            for name, r in res.items():
                cls = group[name]
                if r.errors:
                    self._fail(name, cls, r.errors[0])
                    continue
                self.stats.seconds[name] = round(self.stats.seconds.get(name, 0.0)
                                                 + r.seconds, 3)
                self.stats.ran.append(name)
                self.stats.spark.append(name)
                tables.extend(r.tables)
        return tables

    def summary(self) -> dict[str, Any]:
        """Stats as plain data."""
        s = self.stats
        return {"ran": len(s.ran), "not_applicable": len(s.not_applicable),
                "spark": s.spark, "driver": s.driver,
                "failed": s.failed, "excluded": s.excluded, "findings": s.findings,
                "seconds": s.seconds, "intel": s.intel}
