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


def complete(table: str, t: pa.Table, shape: pa.Schema | None = None) -> pa.Table:
    """A batch as the case's DuckDB view reads it: columns differing only by case
    coalesced, the table's declared columns it lacks added as nulls, and those of
    ``shape`` (the view's own schema, when given) too."""
    from tidehunt.detect.sigma.run import merge_case_variants

    t = merge_case_variants(t)
    have = {n.lower() for n in t.column_names}
    wanted = [(f.name, f.arrow_type()) for f in
              (TABLES[table].fields if table in TABLES else ())]
    wanted += [(f.name, f.type) for f in shape or ()]
    for name, typ in wanted:
        if name.lower() not in have:
            t = t.append_column(name, pa.nulls(t.num_rows, typ))
            have.add(name.lower())
    return t


def empty_result(sql: str, tables: dict[str, pa.Table], setup: list[str]) -> pa.Table:
    """``sql``'s result schema, from empty tables shaped as the case's (no rows read)."""
    import duckdb

    con = duckdb.connect()
    try:
        for name, t in tables.items():
            con.register(name, t.slice(0, 0))
        for q in setup:
            con.execute(q)
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def _ipc(t: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    return bytes(sink.getvalue().to_pybytes())


def _unipc(b: bytes) -> pa.Table:
    return pa.ipc.open_stream(b).read_all()


#: What a scan or bucket job returns per analytic or table: its findings
#: (FINDINGS_SCHEMA) or table as Arrow IPC, or the error that stopped it there.
JOB_DDL = "name string, data binary, error string"


def run_scans(job: SparkCase, table: str, sqls: dict[str, str], shared: dict[str, pa.Table],
              setup: list[str], shape: pa.Table) -> dict[str, pa.Table | str]:
    """Each of ``sqls`` (DuckDB, reading ``table``) over each Arrow batch of the table's
    partitions, with ``shared`` (the driver's small prepared tables) and ``setup``
    (macros) beside it, in one pass over the table; the batches' results concatenated
    per name, or the first error. ``shape``: the case's view of the table (empty), whose
    columns every batch is given."""
    sc = job.spark.sparkContext
    shared_b = sc.broadcast({k: _ipc(v) for k, v in shared.items()})
    schema = shape.schema

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import duckdb

        con = duckdb.connect()
        try:
            for name, data in shared_b.value.items():
                con.register(name, _unipc(data))
            for q in setup:
                con.execute(q)
            for b in batches:
                con.register(table, complete(table, pa.Table.from_batches([b]), schema))
                out: dict[str, list[Any]] = {"name": [], "data": [], "error": []}
                for name, sql in sqls.items():
                    try:
                        data, err = _ipc(con.sql(sql).to_arrow_table()), None
                    except Exception as exc:  # noqa: BLE001 - reported by the driver
                        data, err = b"", f"{type(exc).__name__}: {exc}"
                    out["name"].append(name)
                    out["data"].append(data)
                    out["error"].append(err)
                con.unregister(table)
                yield pa.RecordBatch.from_pydict(out, schema=_JOB_SCHEMA)
        finally:
            con.close()

    got = job.frame(table).mapInArrow(run, JOB_DDL).toArrow()
    shared_b.unpersist()
    res: dict[str, list[pa.Table]] = {n: [] for n in sqls}
    errors: dict[str, str] = {}
    for name, data, err in zip(*(got.column(c).to_pylist() for c in ("name", "data", "error")),
                               strict=True):
        if err:
            errors.setdefault(name, err)
        else:
            res[name].append(_unipc(data))
    out: dict[str, pa.Table | str] = {}
    for name, sql in sqls.items():
        if name in errors:
            out[name] = errors[name]
            continue
        out[name] = (pa.concat_tables(res[name], promote_options="permissive") if res[name]
                     else empty_result(sql, {**shared, table: shape}, setup))
    return out


_JOB_SCHEMA = pa.schema([("name", pa.string()), ("data", pa.binary()), ("error", pa.string())])


#: What a bucket job returns per analytic: its findings (FINDINGS_SCHEMA as Arrow IPC),
#: or the error that stopped it in that bucket.
BUCKET_DDL = "name string, data binary, error string, seconds double"


@dataclass
class BucketResult:
    """One partitioned analytic's findings (or one prepared table's rows) from every
    bucket, or its errors."""

    tables: list[pa.Table]
    errors: list[str]
    seconds: float


def run_partitioned(job: SparkCase, scheme: dict[str, str], analytics: dict[str, Any],
                    shared: dict[str, pa.Table], setup: list[str], min_level: int,
                    buckets: int, keep: dict[str, str] | None = None,
                    sqls: dict[str, str] | None = None) -> dict[str, BucketResult]:
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

    A key that is a list sends its row to the bucket of each of its values; in each
    bucket the macro ``in_bucket(x)`` is true for the keys that hash to it. ``sqls``
    (name: DuckDB query) are run in each bucket too, and their results returned as
    tables (an analytic's prepared tables). A table of ``shared`` named as a table of
    ``scheme`` is taken as its shape: the case view's columns, which every piece gets.
    """
    import pickle

    from tidehunt.context import RunContext
    from tidehunt.model.finding import FINDINGS_SCHEMA, findings_batch

    sc = job.spark.sparkContext
    shared_b = sc.broadcast({k: _ipc(v) for k, v in shared.items()})
    classes = pickle.dumps(analytics)
    queries = dict(sqls or {})
    keep = keep or {}
    shapes = {t: shared[t].schema for t in scheme if t in shared}

    def split(table: str, key: str) -> Any:
        cond = keep.get(table, "true")
        shape = shapes.get(table)

        def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            import duckdb
            import pyarrow.compute as pc

            con = duckdb.connect()
            many: bool | None = None  # is the key a list (known from the first batch)
            try:
                for b in batches:
                    t = complete(table, pa.Table.from_batches([b]), shape)
                    con.register(table, t)
                    if many is None:
                        many = con.sql(f"SELECT {key} AS k FROM {table}").types[0].id == "list"
                    if many:  # (row, bucket) for each distinct bucket of the row's keys
                        t = t.append_column("__rn", pa.array(range(t.num_rows), pa.int64()))
                        con.unregister(table)
                        con.register(table, t)
                        got = con.sql(
                            f"SELECT __rn, unnest(CASE WHEN len(bs) > 0 THEN bs ELSE [0] END)"
                            f" AS b FROM (SELECT __rn, list_distinct(list_transform({key}, "
                            f"lambda x: CAST(hash(x) % {buckets} AS INTEGER))) AS bs FROM {table}"
                            f" WHERE coalesce({cond}, false))").to_arrow_table()
                        t = t.drop_columns(["__rn"])
                        rows, which = got.column("__rn"), got.column("b")
                    else:
                        got = con.sql(f"SELECT CAST(hash({key}) % {buckets} AS INTEGER) AS b,"
                                      f" coalesce({cond}, false) AS k FROM {table}"
                                      ).to_arrow_table()
                        rows = None
                        if not pc.all(got.column("k")).as_py():
                            t = t.filter(got.column("k"))
                            got = got.filter(got.column("k"))
                        which = got.column("b")
                    con.unregister(table)
                    ids, pieces = [], []
                    for v in pc.unique(which).to_pylist():
                        ids.append(v)
                        sel = pc.equal(which, v)
                        pieces.append(_ipc(t.filter(sel) if rows is None
                                           else t.take(rows.filter(sel))))
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
        here = int(t.column("bucket")[0].as_py())
        con = duckdb.connect()
        out: dict[str, list[Any]] = {"name": [], "data": [], "error": [], "seconds": []}
        try:
            small = {name: _unipc(data) for name, data in shared_b.value.items()}
            for name, data in small.items():
                con.register(name, data)
            for name, pieces in parts.items():  # (each with the view's columns: split)
                con.register(name, pa.concat_tables(pieces, promote_options="permissive"))
            con.execute(f"CREATE OR REPLACE TEMP MACRO in_bucket(x) AS "
                        f"CAST(hash(x) % {buckets} AS INTEGER) = {here}")
            for sql in setup:
                con.execute(sql)

            def emit(name: str, make: Any) -> None:
                t0 = time.perf_counter()
                try:
                    data, err = _ipc(make()), None
                except Exception as exc:  # noqa: BLE001 - reported by the driver
                    data, err = b"", f"{type(exc).__name__}: {exc}"
                out["name"].append(name)
                out["data"].append(data)
                out["error"].append(err)
                out["seconds"].append(time.perf_counter() - t0)

            for name, sql in queries.items():
                emit(name, lambda sql=sql: con.sql(sql).to_arrow_table())
            for name, cls in pickle.loads(classes).items():
                def found(cls: Any = cls) -> pa.Table:
                    got = [f for f in cls().run(con, RunContext())
                           if int(f.rule.severity) >= min_level]
                    return pa.Table.from_batches([findings_batch(got)] if got else [],
                                                 schema=FINDINGS_SCHEMA)
                emit(name, found)
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
    res = {name: BucketResult([], [], 0.0) for name in [*queries, *analytics]}
    for name, data, err, sec in zip(*(got.column(c).to_pylist()
                                      for c in ("name", "data", "error", "seconds")),
                                    strict=True):
        r = res[name]
        r.seconds += sec
        if err:
            r.errors.append(err)
        elif data:
            r.tables.append(_unipc(data))
    shared_b.unpersist()
    return res
