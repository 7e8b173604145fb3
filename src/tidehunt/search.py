"""Hunting over a case: SQL, or keywords across every text column of every table, both
in DuckDB over the case's Parquet (no row is read into Python until it is a result).

The connection may read the case and nothing else on the machine (DuckDB's
``allowed_directories`` and no external access), so a shared query cannot reach files or
the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from tidehunt.case.store import CaseStore
from tidehunt.errors import ConfigError
from tidehunt.model.tables import TABLES

#: Keyword-search results: where each hit is, the column and the value that matched.
RESULT_COLUMNS = ("table", "ts", "host", "source_file", "artefact", "locator", "column",
                  "value")


def connect(store: CaseStore) -> Any:
    """A read-only, sandboxed connection with a view per table."""
    con = store.connect()
    con.execute("SET allowed_directories = $dirs", {"dirs": [str(store.root) + "/"]})
    con.execute("SET enable_external_access = false")
    return con


def sql(store: CaseStore, query: str, limit: int | None = None) -> pa.Table:
    """The result of one SQL statement (at most ``limit`` rows)."""
    con = connect(store)
    try:
        try:
            rel = con.sql(query)
        except Exception as exc:
            raise ConfigError(f"query failed: {exc}") from exc
        if rel is None:
            return pa.table({})
        if limit is not None:
            rel = rel.limit(limit)
        return rel.to_arrow_table()
    finally:
        con.close()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def keywords(store: CaseStore, words: Sequence[str], *, tables: Sequence[str] = (),
             match_all: bool = False, limit: int = 1000) -> pa.Table:
    """Rows whose text columns contain the words (case-insensitive), one result row per
    matching cell. ``match_all`` wants every word in the same row."""
    words = [w.lower() for w in words if w]
    if not words:
        raise ConfigError("give at least one keyword")
    unknown = set(tables) - set(TABLES)
    if unknown:
        raise ConfigError(f"unknown table(s): {', '.join(sorted(unknown))}; tables: "
                          + ", ".join(TABLES))
    con = connect(store)
    parts: list[pa.Table] = []
    try:
        for table in tables or TABLES:
            if not store.parts(table):
                continue
            desc = con.execute(f"DESCRIBE {_q(table)}").fetchall()
            names = {r[0] for r in desc}
            cols = [r[0] for r in desc if r[1] == "VARCHAR" and not r[0].startswith("_")
                    and r[0] not in ("source_file", "host", "headers")]
            if not cols:
                continue
            params: list[Any] = []
            per_word = []
            for w in words:
                per_word.append("(" + " OR ".join(f"contains(lower({_q(c)}), ?)"
                                                  for c in cols) + ")")
                params += [w] * len(cols)
            cond = (" AND " if match_all else " OR ").join(per_word)
            host = "host" if "host" in names else "NULL"
            src = ("source_file" if "source_file" in names else
                   "root || '/' || path" if {"root", "path"} <= names else "NULL")
            cell = " OR ".join("contains(lower(value), ?)" for _ in words)
            params += words
            unpivot = ", ".join(_q(c) for c in cols)
            q = f"""
                WITH hit AS (SELECT ts, {host} AS host, {src} AS source_file, _artefact,
                                    _locator,
                                    {unpivot} FROM {_q(table)} WHERE {cond} LIMIT {limit})
                SELECT '{table}' AS "table", ts, host, source_file, _artefact AS artefact,
                       _locator AS locator, "column", left(value, 2000) AS value
                FROM (UNPIVOT hit ON {unpivot} INTO NAME "column" VALUE value)
                WHERE {cell}
                ORDER BY ts, artefact, locator, "column" LIMIT {limit}"""
            parts.append(con.sql(q, params=params).to_arrow_table())
    finally:
        con.close()
    schema = pa.schema([("table", pa.string()), ("ts", pa.timestamp("us", tz="UTC")),
                        ("host", pa.string()), ("source_file", pa.string()),
                        ("artefact", pa.string()), ("locator", pa.string()),
                        ("column", pa.string()), ("value", pa.string())])
    out = [p.cast(schema) for p in parts if p.num_rows]
    return pa.concat_tables(out).slice(0, limit) if out else schema.empty_table()
