"""The Sigma plan on Apache Spark: the case's ``windows`` Parquet read by Spark, and the
same compiled plan run on every Arrow batch of every partition (``mapInArrow``).

Each executor task gets the plan once (its JSON, shipped with the function) and returns
the hits as (rule, part file, row in file). The driver maps them back to the case's part
indices, so findings, correlations and everything after them are built exactly as the
DuckDB engine builds them: the two engines give the same findings by construction, and a
test compares them. Point ``--spark-master`` at a cluster whose executors can read the
case folder (a shared file system or object store) and have tidehunt installed; see
docs/scale.md.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tidehunt.case.store import CaseStore
from tidehunt.detect.sigma.plan import Plan
from tidehunt.detect.sigma.run import (
    MatchResult,
    active_groups,
    columns_in,
    merge_case_variants,
    run_groups,
    wanted_columns,
    with_audit_fields,
)
from tidehunt.errors import ConfigError, TidehuntError

log = logging.getLogger("tidehunt.spark")

HITS_SCHEMA = "rule int, file string, row long"


@dataclass
class SparkOptions:
    """Where and how to run: a master URL and extra Spark settings."""

    master: str = "local[*]"
    conf: dict[str, str] = field(default_factory=dict)
    app_name: str = "tidehunt"


def session(opts: SparkOptions) -> Any:
    """A SparkSession for the options (reused if one is running in this process)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - pyspark is a declared dependency
        raise TidehuntError("--engine spark needs pyspark (pip install pyspark)") from exc
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    b = (SparkSession.builder.appName(opts.app_name).master(opts.master)
         .config("spark.sql.caseSensitive", "true")  # Image and image: merged by tidehunt
         .config("spark.sql.session.timeZone", "UTC")
         .config("spark.sql.execution.arrow.pyspark.enabled", "true")
         .config("spark.ui.showConsoleProgress", "false"))
    if opts.master.startswith("local"):
        # bound and advertised on loopback: shuffle and broadcast fetches otherwise go to
        # the host name's address, where nothing listens
        b = (b.config("spark.ui.enabled", "false")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.driver.host", "127.0.0.1"))
    for k, v in opts.conf.items():
        b = b.config(k, v)
    try:
        return b.getOrCreate()
    except Exception as exc:  # py4j and PySpark raise many kinds
        first = (str(exc).strip().splitlines() or ['no message'])[0][:200]
        java = os.environ.get("JAVA_HOME") or "PATH"
        raise ConfigError(
            f"--engine spark: Spark did not start at {opts.master} "
            f"({type(exc).__name__}: {first}). Spark needs "
            f"Java 17 or newer (looked for it in {java}) and a reachable --spark-master; "
            "see docs/scale.md") from exc


_PLANS: dict[int, Plan] = {}


def _plan_of(blob: bytes) -> Plan:
    """The plan of a JSON blob, loaded once per Python worker."""
    key = hash(blob)
    plan = _PLANS.get(key)
    if plan is None:
        plan = Plan.from_json(blob)
        if plan is None:
            raise RuntimeError("tidehunt plan version differs on this executor")
        _PLANS.clear()
        _PLANS[key] = plan
    return plan


def match_spark(plan: Plan, store: CaseStore, rules: Sequence[int] | None, spark: Any, *,
                since: datetime | None = None, until: datetime | None = None
                ) -> MatchResult:
    """The plan's detection rules over the case's ``windows`` table, on Spark."""
    import pyarrow.parquet as pq

    active = sorted(set(plan.detection_rules() if rules is None else rules))
    parts = [str(p) for p in store.parts("windows")]
    empty = MatchResult(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int64),
                        parts, 0)
    groups = active_groups(plan, active)
    if not parts or not groups:
        return empty
    need_all, wanted = wanted_columns(plan, groups)
    cols: dict[str, None] = {}
    for p in parts:  # every spelling of every wanted column, across the parts
        names = pq.read_schema(p).names
        cols.update(dict.fromkeys(names if need_all else columns_in(names, wanted)))
    for c in [c for c in cols if c.lower() != c]:  # case variants a part spells otherwise
        cols.update(dict.fromkeys(n for n in cols if n.lower() == c.lower()))
    blob = plan.to_json()
    sel = [f"`{c.replace('`', '``')}`" for c in cols]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        plan_ = _plan_of(blob)
        groups_ = active_groups(plan_, active)
        for b in batches:
            t = pa.Table.from_batches([b])
            files = t.column("__file")
            rows = t.column("__row")
            t = with_audit_fields(merge_case_variants(t.drop_columns(["__file", "__row"])))
            hits = run_groups(plan_, groups_, t, since, until)
            if not hits.rules:
                continue
            rule = np.concatenate(hits.rules).astype(np.int32)
            idx = pa.array(np.concatenate(hits.rows).astype(np.int64))
            yield pa.RecordBatch.from_arrays(
                [pa.array(rule), files.take(idx).combine_chunks(),
                 rows.take(idx).combine_chunks()], ["rule", "file", "row"])

    paths = spark_paths(store, parts)
    df = spark.read.option("mergeSchema", "true").parquet(*paths)
    df = df.selectExpr(*sel, "_metadata.file_path AS __file", "_metadata.row_index AS __row")
    hits = df.mapInArrow(run, HITS_SCHEMA).toArrow()
    index = {u: i for i, u in enumerate(paths)}
    files = hits.column("file").to_pylist()
    try:
        part = np.array([index[_norm(f)] for f in files], dtype=np.int32)
    except KeyError as exc:
        raise TidehuntError(f"Spark returned a hit in {exc}, not a part of this case") from exc
    return MatchResult(hits.column("rule").to_numpy().astype(np.int32), part,
                       hits.column("row").to_numpy().astype(np.int64), parts,
                       store.rows("windows"))


def spark_paths(store: CaseStore, parts: Sequence[str]) -> list[str]:
    """The parts as Spark can read them. Spark (Hadoop's file listing) skips files whose
    name starts with ``_`` or ``.`` even when named one by one, and cases written before
    0.9 could name a part so: such a part is hard-linked (copied where links fail) under a
    plain name in ``CASE/spark-parts/`` for the run, so no row is left out."""
    import shutil

    out = []
    for p in parts:
        name = Path(p).name
        if name.startswith(("_", ".")):
            d = store.root / "spark-parts"
            d.mkdir(exist_ok=True)
            link = d / ("p" + name.lstrip("_."))
            if not link.exists():
                try:
                    os.link(p, link)
                except OSError:
                    shutil.copyfile(p, link)
            p = str(link)
        out.append(_uri(p))
    return out


def _uri(path: str) -> str:
    """A part's path as Spark names it (file: URI for local paths)."""
    return path if "://" in path or path.startswith("file:") else "file:" + path


def _norm(uri: str) -> str:
    """Spark's file path back in the form of :func:`_uri` (file:///x is file:/x)."""
    if uri.startswith("file:///"):
        return "file:/" + uri[len("file:///"):]
    return uri



CORR_SCHEMA = "ci int, key binary, seq int, row binary"


def correlations_spark(plan: Plan, hits: pa.Table, corr: dict[int, list[int]],
                       spark: Any) -> pa.Table:
    """The Sigma correlation rules as one Spark job over the detection hits.

    Each partition keys its hits for every correlation with DuckDB (the local engine's
    SQL: ``keyed_sql``), Spark shuffles them by (correlation, group), and each group's
    windows are found by the local engine's code (``group_findings``) over its hits in
    (time, finding ID) order. The rows come back in the local engine's order: correlation,
    group, window. Hits travel pickled (their fields and evidence are nested, and partly
    null-typed, which Spark's Arrow conversion does not take).
    """
    import pickle

    from tidehunt.detect.sigma.correlate import group_findings, group_key, keyed_sql
    from tidehunt.model.finding import FINDINGS_SCHEMA

    if not corr or hits.num_rows == 0:
        return FINDINGS_SCHEMA.empty_table()
    blob = plan.to_json()
    order = list(corr)
    schema = hits.schema
    src = pa.table({"hit": pa.array([pickle.dumps(h) for h in hits.to_pylist()],
                                    pa.binary())})

    def keyed(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import duckdb

        plan_ = _plan_of(blob)
        con = duckdb.connect()
        try:
            for b in batches:
                con.register("hits", pa.Table.from_pylist(
                    [pickle.loads(x) for x in b.column("hit").to_pylist()], schema=schema))
                ci_col: list[int] = []
                keys: list[bytes] = []
                out: list[bytes] = []
                for ci in order:
                    r = plan_.rules[ci]
                    q, params = keyed_sql(r, corr[ci])
                    for h in con.sql(q, params=params).to_arrow_table().to_pylist():
                        key = group_key(r, h)
                        if key is not None:
                            ci_col.append(ci)
                            keys.append(pickle.dumps(key))
                            out.append(pickle.dumps(h))
                con.unregister("hits")
                if out:
                    yield pa.RecordBatch.from_arrays(
                        [pa.array(ci_col, pa.int32()), pa.array(keys, pa.binary()),
                         pa.array(out, pa.binary())], ["ci", "key", "hit"])
        finally:
            con.close()

    def windows(t: pa.Table) -> pa.Table:
        plan_ = _plan_of(blob)
        ci = t.column("ci")[0].as_py()
        key = t.column("key")[0].as_py()
        evs = sorted((pickle.loads(x) for x in t.column("hit").to_pylist()),
                     key=lambda h: (h["ts"], h["finding_id"]))
        rows = group_findings(plan_, ci, corr[ci], pickle.loads(key), evs)
        return pa.table({"ci": pa.array([ci] * len(rows), pa.int32()),
                         "key": pa.array([key] * len(rows), pa.binary()),
                         "seq": pa.array(range(len(rows)), pa.int32()),
                         "row": pa.array([pickle.dumps(r) for r in rows], pa.binary())})

    out = (spark.createDataFrame(src).mapInArrow(keyed, "ci int, key binary, hit binary")
           .groupBy("ci", "key").applyInArrow(windows, CORR_SCHEMA).toArrow())
    got = sorted(((order.index(ci), pickle.loads(k), seq, row) for ci, k, seq, row in
                  zip(*(out.column(c).to_pylist() for c in ("ci", "key", "seq", "row")),
                      strict=True)), key=lambda x: x[:3])
    return pa.Table.from_pylist([pickle.loads(g[3]) for g in got], schema=FINDINGS_SCHEMA)
