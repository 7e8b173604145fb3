"""CaseStore: a directory of Parquet parts per table, ``manifest.json`` and DuckDB views.

Layout::

    CASE/manifest.json            evidence, parts, runs, rule versions (the source of truth)
    CASE/tables/<table>/*.parquet parts; a part is listed in the manifest once its task is done
    CASE/case.duckdb              catalogue: one view per table over its parts
    CASE/findings.parquet, findings.jsonl, timeline.csv, report.json   detection output

Parts are written under a temporary name and renamed into place, then the manifest is
replaced atomically. A part not listed in the manifest is left over from a killed run and
is deleted on the next open, so a re-run neither loses nor duplicates events.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from tidehunt import __version__
from tidehunt.errors import CaseError
from tidehunt.memory import MemoryBudget, limit_duckdb
from tidehunt.model.tables import SCHEMA_VERSION, TABLES

MANIFEST = "manifest.json"
CATALOGUE = "case.duckdb"
#: The warning for evidence that is the case's own folder, or holds it (``ingest.iter_files``,
#: ``webroot.iter_tree``): the case is never read as evidence.
CASE_INSIDE = "the case folder is not evidence: its files are not read"
#: The warning for another tidehunt case found in the evidence (``is_case_folder``).
OTHER_CASE = "a tidehunt case folder is not evidence: its files are not read"


def is_case_folder(path: Path, names: Iterable[str]) -> bool:
    """Whether the folder at ``path``, holding the entries ``names``, is a tidehunt case:
    a ``tables`` folder beside a manifest that begins as tidehunt writes it (keys sorted,
    ``artefacts`` first). One small read, only where both names are there."""
    have = set(names)
    if MANIFEST not in have or "tables" not in have:
        return False
    try:
        with open(path / MANIFEST, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return False
    return head.replace(b" ", b"").replace(b"\n", b"").startswith(b'{"artefacts":')


_NOW: list[Any] = [None, ""]


def utcnow() -> str:
    """Current time, ISO-8601 UTC (to the second: made once a second, as ingest stamps
    every evidence file with it)."""
    sec = int(time.time())
    if _NOW[0] != sec:
        _NOW[:] = [sec, datetime.fromtimestamp(sec, UTC).isoformat(timespec="seconds")]
    return str(_NOW[1])


class CaseStore:
    """One case directory."""

    def __init__(self, root: str | os.PathLike[str], *, create: bool = False) -> None:
        self.root = Path(root).absolute()
        new = False
        if create and not (self.root / MANIFEST).is_file():
            # a folder that is not a case is never taken over: opening a case deletes
            # the parts its manifest does not list, and the outputs would overwrite
            # files of the same names (``-o`` mistyped as an existing folder)
            if self.root.is_dir() and next(self.root.iterdir(), None) is not None:
                raise CaseError(f"{self.root}: folder is not empty and not a tidehunt case "
                                f"(no {MANIFEST}); give a new or empty folder, or a case")
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CaseError(f"{self.root}: cannot create the case folder: "
                                f"{exc.strerror or exc}") from exc
            new = True
        elif not (self.root / MANIFEST).is_file():
            raise CaseError(f"{self.root}: not a tidehunt case (no {MANIFEST}); "
                            "create one with 'tidehunt ingest EVIDENCE -o CASE'")
        self.manifest = self._load()
        if new:  # the folder is a case from now on, before anything is written in it
            self.save()
        #: The run's memory budget (``--max-memory``): each DuckDB connection of ``connect``
        #: gets its share as ``memory_limit`` and spills into the case; None: DuckDB's own.
        self.budget: MemoryBudget | None = None
        self._connections = 0
        self._gc()

    # ---- manifest -------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not path.exists():
            return {
                "schema_version": SCHEMA_VERSION,
                "tool": "tidehunt",
                "tool_version": __version__,
                "created": utcnow(),
                "updated": utcnow(),
                "artefacts": {},
                "parts": {},
                "runs": [],
            }
        try:
            doc: dict[str, Any] = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise CaseError(f"{path}: unreadable manifest: {exc}") from exc
        if doc.get("schema_version", 0) > SCHEMA_VERSION:
            raise CaseError(f"{path}: written by a newer tidehunt (schema "
                            f"{doc.get('schema_version')}); upgrade tidehunt")
        return doc

    def save(self) -> None:
        """Write the manifest atomically.

        Raises:
            CaseError: it cannot be written (disk full, read-only); the old one stays.
        """
        self.manifest["updated"] = utcnow()
        self.manifest["tool_version"] = __version__
        data = orjson.dumps(self.manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        tmp = ""
        try:
            fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=self.root)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).replace(self.root / MANIFEST)
        except OSError as exc:
            if tmp:
                with contextlib.suppress(OSError):
                    Path(tmp).unlink()
            raise CaseError(f"{self.root / MANIFEST}: cannot be written: "
                            f"{exc.strerror or exc}; the previous manifest is kept: free "
                            "space and run the same command again to resume") from exc

    def _gc(self) -> None:
        """Delete parts a killed run left behind (not in the manifest) and temp files."""
        # links a Spark run made to parts it could not read by their own name
        shutil.rmtree(self.root / "spark-parts", ignore_errors=True)
        for d in self.root.glob(".tmp-duckdb-*"):  # DuckDB spill of a killed run
            pid = d.name.removeprefix(".tmp-duckdb-").removeprefix("corr-").split("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(d, ignore_errors=True)
        listed = set(self.manifest.get("parts", {}))
        tables = self.root / "tables"
        if not tables.is_dir():
            return
        for p in [*tables.glob("*/*"), *self.root.glob(".manifest-*")]:
            rel = p.relative_to(self.root).as_posix()
            if p.name.startswith(".manifest-"):  # a save cut short (killed, disk full)
                with contextlib.suppress(OSError):
                    p.unlink()
                continue
            if p.name.startswith(".tmp-") or (p.suffix == ".parquet" and rel not in listed):
                with contextlib.suppress(OSError):
                    p.unlink()

    # ---- evidence -------------------------------------------------------------------
    @property
    def artefacts(self) -> dict[str, dict[str, Any]]:
        """Evidence records by id."""
        arts: dict[str, dict[str, Any]] = self.manifest.setdefault("artefacts", {})
        return arts

    def has_ingested(self, artefact_id: str) -> bool:
        """True if this evidence (same path, same SHA-256) is already in the case."""
        rec = self.artefacts.get(artefact_id)
        return rec is not None and rec.get("status") == "ingested"

    def tmp_part(self, table: str) -> Path:
        """A fresh temporary part path for ``table`` (renamed into place by ``commit``)."""
        d = self.root / "tables" / table
        d.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=d)
        os.close(fd)
        return Path(name)

    def commit(self, artefacts: Mapping[str, dict[str, Any]],
               parts: Iterable[Mapping[str, Any]], *, save: bool = True) -> list[Path]:
        """Move finished parts into place and record their artefacts, then save; returns
        the parts' paths in the case.

        With ``save=False`` the caller saves later: until then a kill loses only the
        record, and reopening the case deletes the unlisted parts, so that evidence is
        read again rather than counted twice.
        """
        placed: list[Path] = []
        for part in parts:
            tmp = Path(part["tmp"])
            # never a leading "_" (tempfile's names may have one): Spark and Hadoop skip
            # such files as hidden
            final = tmp.with_name("p" + tmp.name.removeprefix(".tmp-"))
            Path(tmp).replace(final)
            rel = final.relative_to(self.root).as_posix()
            self.manifest.setdefault("parts", {})[rel] = {
                "table": part["table"],
                "rows": part["rows"],
                "columns": part["columns"],
                "artefacts": sorted(part["artefacts"]),
            }
            placed.append(final)
        for aid, rec in artefacts.items():
            self.artefacts[aid] = dict(rec)
        if save:
            self.save()
        return placed

    # ---- reading --------------------------------------------------------------------
    def parts(self, table: str) -> list[Path]:
        """Part files of ``table``, in a stable order."""
        return sorted(
            self.root / rel
            for rel, p in self.manifest.get("parts", {}).items()
            if p["table"] == table
        )

    def columns(self, table: str) -> list[str]:
        """All column names seen in any part of ``table``."""
        seen: dict[str, None] = {}
        for p in self.manifest.get("parts", {}).values():
            if p["table"] == table:
                seen.update(dict.fromkeys(p["columns"]))
        return list(seen)

    def rows(self, table: str) -> int:
        """Row count of ``table``."""
        return sum(p["rows"] for p in self.manifest.get("parts", {}).values()
                   if p["table"] == table)

    def iter_parts(self, table: str, columns: Iterable[str]) -> Iterator[pa.Table]:
        """Each part of ``table`` with the wanted columns (by case-insensitive name).

        Columns missing from a part come back as nulls; spellings that differ only by
        case are coalesced into the wanted spelling.
        """
        wanted = list(dict.fromkeys(columns))
        for path in self.parts(table):
            pf = pq.ParquetFile(path)
            names = pf.schema_arrow.names
            by_lower: dict[str, list[str]] = {}
            for n in names:
                by_lower.setdefault(n.lower(), []).append(n)
            need = [n for w in wanted for n in by_lower.get(w.lower(), [])]
            t = pf.read(columns=list(dict.fromkeys(need)))
            cols = []
            for w in wanted:
                have = by_lower.get(w.lower(), [])
                if not have:
                    typ = _declared_type(table, w)
                    cols.append(pa.nulls(t.num_rows, typ))
                    continue
                col = t.column(have[0])
                for other in have[1:]:
                    col = pa.compute.coalesce(col, t.column(other))
                cols.append(col)
            yield pa.table(cols, names=wanted)

    def connect(self, where: str | None = None) -> Any:
        """An in-memory DuckDB connection with one view per table over its parts.

        ``where`` (SQL over the common columns, e.g. a ``ts`` window) filters every view.
        Under a ``budget`` it spills into ``.tmp-duckdb-PID-N`` in the case (created when
        needed, removed when the connection closes).
        """
        import duckdb

        con = duckdb.connect()
        if self.budget is not None:
            self._connections += 1
            limit_duckdb(con, self.budget,
                         self.root / f".tmp-duckdb-{os.getpid()}-{self._connections}")
        cond = f" WHERE {where}" if where else ""
        for table in TABLES:
            files = [str(p) for p in self.parts(table)]
            if files:
                _create_view(con, table, files, cond)
        findings = self.root / "findings.parquet"
        if findings.exists():
            con.execute("CREATE VIEW findings AS SELECT * FROM read_parquet("
                        f"{_sql_str(str(findings))})")
        return con

    def sql(self, query: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a query over the case's tables; returns an Arrow table."""
        con = self.connect()
        try:
            rel = con.sql(query, params=dict(params)) if params else con.sql(query)
            return rel.to_arrow_table()
        finally:
            con.close()

    def write_catalogue(self) -> Path:
        """(Re)write ``case.duckdb`` with a view per table, for analysts' own DuckDB use."""
        import duckdb

        path = self.root / CATALOGUE
        tmp = self.root / (".tmp-" + CATALOGUE)
        with contextlib.suppress(OSError):
            tmp.unlink()
        try:
            con = duckdb.connect(str(tmp))
            limit_duckdb(con, self.budget)
            try:
                for table in TABLES:
                    files = [str(p) for p in self.parts(table)]
                    if files:
                        _create_view(con, table, files, "")
                findings = self.root / "findings.parquet"
                if findings.exists():
                    con.execute("CREATE VIEW findings AS SELECT * FROM read_parquet("
                                f"{_sql_str(str(findings))})")
            finally:
                con.close()
            Path(tmp).replace(path)
        except (OSError, duckdb.IOException) as exc:  # disk full: the case itself is intact
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise CaseError(f"{path}: the catalogue cannot be written ({exc}); the case's "
                            "tables are intact: free space and run the command again") from exc
        return path


def _alive(pid: int) -> bool:
    """True if process ``pid`` runs (or cannot be signalled: someone else's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


_DUCK_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.int32(): "INTEGER",
               pa.bool_(): "BOOLEAN", pa.float64(): "DOUBLE"}


def _create_view(con: Any, table: str, files: list[str], cond: str) -> None:
    """A view over a table's parts with every declared column, so that SQL written for a
    newer schema also runs on parts written before a column was added (null there)."""
    src = f"read_parquet({_sql_list(files)}, union_by_name=true)"
    have = _view_columns(con, files, src)
    extra = []
    for spec in TABLES[table].fields:
        if spec.name.lower() not in have:
            t = spec.arrow_type()
            typ = ("TIMESTAMPTZ" if pa.types.is_timestamp(t) else _DUCK_TYPES.get(t, "VARCHAR"))
            extra.append(f'NULL::{typ} AS "{spec.name}"')
    cols = "*" + "".join(", " + e for e in extra)
    con.execute(f'CREATE VIEW "{table}" AS SELECT {cols} FROM {src}{cond}')


#: Column names (lower case) of a union of parts, by the parts' (path, mtime, size): a run
#: opens several connections and the catalogue over the same parts, and DESCRIBE reads
#: every part's footer each time.
_VIEW_COLUMNS: dict[tuple[tuple[str, int, int], ...], frozenset[str]] = {}


def _view_columns(con: Any, files: list[str], src: str) -> frozenset[str]:
    try:
        key = tuple((f, st.st_mtime_ns, st.st_size) for f in files for st in [Path(f).stat()])
    except OSError:
        key = None
    have = _VIEW_COLUMNS.get(key) if key is not None else None
    if have is None:
        have = frozenset(r[0].lower()
                         for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall())
        if key is not None:
            if len(_VIEW_COLUMNS) >= 64:
                _VIEW_COLUMNS.clear()
            _VIEW_COLUMNS[key] = have
    return have


def _declared_type(table: str, name: str) -> pa.DataType:
    spec = TABLES[table].field(name)
    return spec.arrow_type() if spec else pa.string()


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _sql_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_sql_str(s) for s in items) + "]"


def write_part(path: Path, batches: list[pa.RecordBatch],
               table: str | None = None) -> tuple[int, list[str]]:
    """Write batches (schemas may differ: missing columns become null) as one Parquet file.

    ``table``: the table they belong to, whose declared columns come first, in its order,
    and the others by name (``TableBatch``'s own order): a part's columns then do not
    depend on which batches met in it. Without it, the order in which columns first appear.

    Parts of ``windows`` (``dictionary_pages=False``: hundreds of columns, most of them
    empty in most rows) are written without dictionary pages: on the benchmark's parts
    (344 columns) they read in about half the time (a 53k-row part 61-86 ms -> 34-39 ms,
    one copy of the attack samples 11-14 ms -> 7-8 ms), write faster and come out no
    larger under zstd (596 -> 672 KiB, 235 -> 218 KiB). Narrow tables keep them.
    """
    spec = TABLES.get(table) if table is not None else None
    whole = union_table(batches, [f.name for f in spec.fields] if spec else None)
    pq.write_table(whole, path, compression="zstd", row_group_size=131072,
                   use_dictionary=spec is None or spec.dictionary_pages)
    return whole.num_rows, whole.column_names


def union_table(batches: list[pa.RecordBatch], first: Sequence[str] | None = None
                ) -> pa.Table:
    """Batches as one table over the union of their columns, without copying any column.

    Each column is a chunked array of the batches' own arrays; where a run of batches
    lacks the column, one shared all-null array of the run's length stands in (one chunk
    for the run: the Parquet writer's cost grows with the chunks it walks, and most of a
    part's columns are absent from most of its batches). (``concat_tables`` with
    permissive promotion builds and copies a null array per missing column and batch,
    which costs as much as writing the part when batches of a hundred event types meet.)

    ``first``: columns in this order, then the others sorted by name; None: the columns
    in the order they first appear.
    """
    schema = pa.unify_schemas([b.schema for b in batches], promote_options="permissive")
    if first is not None:
        rank = {n: i for i, n in enumerate(first)}
        schema = pa.schema(sorted(schema, key=lambda f: (
            (0, rank[f.name], "") if f.name in rank else (1, 0, f.name))))
    nulls: dict[tuple[int, pa.DataType], pa.Array] = {}

    def null(n: int, t: pa.DataType) -> pa.Array:
        z = nulls.get((n, t))
        if z is None:
            z = nulls[n, t] = pa.nulls(n, t)
        return z

    where = [{n: i for i, n in enumerate(b.schema.names)} for b in batches]
    sizes = [b.num_rows for b in batches]
    cols = []
    for f in schema:
        chunks, gap = [], 0
        for b, ix, n in zip(batches, where, sizes, strict=True):
            i = ix.get(f.name)
            if i is None:
                gap += n
                continue
            if gap:
                chunks.append(null(gap, f.type))
                gap = 0
            c = b.column(i)
            chunks.append(c if c.type == f.type else c.cast(f.type))
        if gap:
            chunks.append(null(gap, f.type))
        cols.append(pa.chunked_array(chunks, f.type))
    return pa.Table.from_arrays(cols, schema=schema)
