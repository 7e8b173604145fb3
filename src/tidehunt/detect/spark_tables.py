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

    def frame(self, table: str, columns: list[str] | None = None) -> Any:
        """A DataFrame over the table's parts (Parquet schemas merged), only ``columns``
        of it where given (any case; those it lacks are left out), within the window."""
        from pyspark.sql import functions as F

        from tidehunt.detect.sigma.spark import _uri

        parts = [_uri(str(p)) for p in self.store.parts(table)]
        df = self.spark.read.option("mergeSchema", "true").parquet(*parts)
        if columns is not None:
            want = {c.lower() for c in columns}
            df = df.select(*[F.col(f"`{c}`") for c in df.columns if c.lower() in want])
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
    from tidehunt.detect.sigma.run import merge_case_variants

    declared = [(f.name, f.arrow_type()) for f in TABLES[table].fields] if table in TABLES \
        else []
    small = tables or {}

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import duckdb

        con = duckdb.connect()
        try:
            for name, t in small.items():
                con.register(name, t)
            for b in batches:
                t = merge_case_variants(pa.Table.from_batches([b]))
                have = {n.lower() for n in t.column_names}
                for name, typ in declared:
                    if name.lower() not in have:
                        t = t.append_column(name, pa.nulls(t.num_rows, typ))
                con.register(table, t)
                out = con.sql(sql).to_arrow_table().cast(schema)
                con.unregister(table)
                yield from out.to_batches()
        finally:
            con.close()

    return df.mapInArrow(run, spark_schema)
