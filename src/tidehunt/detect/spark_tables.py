"""The case's tables as Spark DataFrames, and DuckDB SQL run on each of their partitions.

Jobs that scan a whole table on Spark (the IOC join's observations) read the table's
Parquet parts with Spark and run the local engine's own DuckDB SQL over each Arrow batch
of each partition (``mapInArrow``): the values they take from the events are those the
local engine takes, by construction, and only what the SQL keeps leaves the executor.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from tidehunt.case.store import CaseStore
from tidehunt.model.tables import TABLES


@dataclass
class SparkCase:
    """A Spark session and the case (and time window) its jobs read."""

    spark: Any
    store: CaseStore
    since: datetime | None = None
    until: datetime | None = None

    def frame(self, table: str) -> Any:
        """A DataFrame over the table's parts (Parquet schemas merged), in the window."""
        from pyspark.sql import functions as F

        from tidehunt.detect.sigma.spark import spark_paths

        parts = spark_paths(self.store, [str(p) for p in self.store.parts(table)])
        df = self.spark.read.option("mergeSchema", "true").parquet(*parts)
        if self.since is not None:
            df = df.where(F.col("ts") >= F.lit(self.since))
        if self.until is not None:
            df = df.where(F.col("ts") <= F.lit(self.until))
        return df


def duckdb_map(df: Any, table: str, sql: str, schema: pa.Schema, spark_schema: str,
               tables: dict[str, pa.Table] | None = None) -> Any:
    """``sql`` (DuckDB) over each Arrow batch of ``df``, registered as ``table``, with
    ``tables`` (small ones, shipped with the job) registered beside it. Columns differing
    only by case are coalesced first, as the case's DuckDB views read them, and the
    table's declared columns missing from a batch are null. The result is cast to
    ``schema`` (``spark_schema`` is its Spark DDL)."""
    small = tables or {}

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import duckdb

        con = duckdb.connect()
        try:
            for name, t in small.items():
                con.register(name, t)
            for b in batches:
                con.register(table, complete(table, pa.Table.from_batches([b])))
                out = con.sql(sql).to_arrow_table().cast(schema)
                con.unregister(table)
                yield from out.to_batches()
        finally:
            con.close()

    return df.mapInArrow(run, spark_schema)


def complete(table: str, t: pa.Table) -> pa.Table:
    """A batch as the case's DuckDB view reads it: columns differing only by case
    coalesced, the table's declared columns it lacks added as nulls."""
    from tidehunt.detect.sigma.run import merge_case_variants

    t = merge_case_variants(t)
    have = {n.lower() for n in t.column_names}
    for f in TABLES[table].fields if table in TABLES else ():
        if f.name.lower() not in have:
            t = t.append_column(f.name, pa.nulls(t.num_rows, f.arrow_type()))
    return t


def _ipc(t: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    return bytes(sink.getvalue().to_pybytes())


def _unipc(b: bytes) -> pa.Table:
    return pa.ipc.open_stream(b).read_all()


#: What a bucket job returns per analytic: its findings (FINDINGS_SCHEMA as Arrow IPC),
#: or the error that stopped it in that bucket.
BUCKET_DDL = "name string, data binary, error string, seconds double"


@dataclass
class BucketResult:
    """One partitioned analytic's findings from every bucket, or its first error."""

    findings: list[pa.Table]
    errors: list[str]
    seconds: float


def run_partitioned(job: SparkCase, scheme: dict[str, str], analytics: dict[str, Any],
                    shared: dict[str, pa.Table], setup: list[str], min_level: int,
                    buckets: int, keep: dict[str, str] | None = None
                    ) -> dict[str, BucketResult]:
    """Analytics whose findings are the union of their findings per key, on Spark.

    ``scheme`` maps each table they read to its key (a DuckDB expression). Each table's
    partitions are split into ``buckets`` by the key's hash (the same DuckDB expression
    and hash on every executor), Spark shuffles the pieces so that one task holds every
    row of its keys in every table, and that task runs each analytic's own ``run`` over
    them in DuckDB, with the driver's small prepared tables (``shared``: organisation
    profile, intel, address classes...) registered beside them and ``setup`` (macros,
    views over the bucket's tables) run first. The analytics' SQL is the local engine's,
    unchanged: what differs is only which rows each run sees. ``keep`` (per table, a
    DuckDB condition) drops rows before the shuffle that none of the analytics reads.
    """
    import pickle

    from tidehunt.context import RunContext
    from tidehunt.model.finding import FINDINGS_SCHEMA, findings_batch

    sc = job.spark.sparkContext
    shared_b = sc.broadcast({k: _ipc(v) for k, v in shared.items()})
    classes = pickle.dumps(analytics)

    keep = keep or {}

    def split(table: str, key: str) -> Any:
        cond = keep.get(table, "true")

        def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            import duckdb
            import pyarrow.compute as pc

            con = duckdb.connect()
            try:
                for b in batches:
                    t = complete(table, pa.Table.from_batches([b]))
                    con.register(table, t)
                    got = con.sql(f"SELECT CAST(hash({key}) % {buckets} AS INTEGER) AS b, "
                                  f"coalesce({cond}, false) AS k FROM {table}"
                                  ).to_arrow_table()
                    con.unregister(table)
                    if not pc.all(got.column("k")).as_py():
                        t = t.filter(got.column("k"))
                        got = got.filter(got.column("k"))
                    which = got.column("b")
                    ids, pieces = [], []
                    for v in pc.unique(which).to_pylist():
                        ids.append(v)
                        pieces.append(_ipc(t.filter(pc.equal(which, v))))
                    yield pa.RecordBatch.from_arrays(
                        [pa.array(ids, pa.int32()), pa.array([table] * len(ids)),
                         pa.array(pieces, pa.binary())], ["bucket", "tbl", "data"])
            finally:
                con.close()
        return run

    def bucket(t: pa.Table) -> pa.Table:
        import time

        import duckdb

        parts: dict[str, list[pa.Table]] = {}
        for name, data in zip(t.column("tbl").to_pylist(), t.column("data").to_pylist(),
                              strict=True):
            parts.setdefault(name, []).append(_unipc(data))
        con = duckdb.connect()
        out: dict[str, list[Any]] = {"name": [], "data": [], "error": [], "seconds": []}
        try:
            for name, data in shared_b.value.items():
                con.register(name, _unipc(data))
            for name, pieces in parts.items():
                con.register(name, pa.concat_tables(pieces, promote_options="permissive"))
            for sql in setup:
                con.execute(sql)
            for name, cls in pickle.loads(classes).items():
                t0 = time.perf_counter()
                try:
                    found = [f for f in cls().run(con, RunContext())
                             if int(f.rule.severity) >= min_level]
                    data, err = _ipc(pa.Table.from_batches(
                        [findings_batch(found)] if found else [],
                        schema=FINDINGS_SCHEMA)), None
                except Exception as exc:  # noqa: BLE001 - reported by the driver
                    data, err = b"", f"{type(exc).__name__}: {exc}"
                out["name"].append(name)
                out["data"].append(data)
                out["error"].append(err)
                out["seconds"].append(time.perf_counter() - t0)
        finally:
            con.close()
        return pa.table(out, schema=pa.schema([("name", pa.string()), ("data", pa.binary()),
                                               ("error", pa.string()),
                                               ("seconds", pa.float64())]))

    frames = [job.frame(table).mapInArrow(split(table, key),
                                          "bucket int, tbl string, data binary")
              for table, key in scheme.items()]
    union = frames[0]
    for f in frames[1:]:
        union = union.unionAll(f)
    got = union.groupBy("bucket").applyInArrow(bucket, BUCKET_DDL).toArrow()
    res = {name: BucketResult([], [], 0.0) for name in analytics}
    for name, data, err, sec in zip(*(got.column(c).to_pylist()
                                      for c in ("name", "data", "error", "seconds")),
                                    strict=True):
        r = res[name]
        r.seconds += sec
        if err:
            r.errors.append(err)
        elif data:
            r.findings.append(_unipc(data))
    shared_b.unpersist()
    return res
