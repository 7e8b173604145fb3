"""TableBatch: what a Source yields, an Arrow record batch of one declared table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from tidehunt.model.tables import TABLES


@dataclass(frozen=True, slots=True)
class TableBatch:
    """Rows of one table: declared columns first (typed), then open extra string columns."""

    table: str
    data: pa.RecordBatch

    @classmethod
    def from_values(cls, table: str, values: Mapping[str, Sequence[Any]], *, source: str,
                    artefact: str, locators: list[str]) -> TableBatch:
        """Like :meth:`of` from Python lists, each typed as the table declares it (letting
        pyarrow infer types from Python values costs a module search per call)."""
        schema = TABLES[table]
        cols = {}
        for k, v in values.items():
            spec = schema.field(k)
            typ = spec.arrow_type() if spec else None
            if isinstance(v, pa.ChunkedArray):
                v = v.combine_chunks()
            if isinstance(v, pa.Array):  # already columnar (e.g. from Polars): only cast
                cols[k] = v.cast(typ) if typ is not None and v.type != typ else v
            else:
                try:
                    cols[k] = pa.array(v, typ)
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError,
                        TypeError, ValueError):
                    cols[k] = _coerced(v, typ)
        return cls.of(table, cols, source=source, artefact=artefact,
                      locator=pa.array(locators, pa.string()))

    @classmethod
    def of(
        cls,
        table: str,
        columns: Mapping[str, pa.Array],
        *,
        source: str,
        artefact: str | pa.Array,
        locator: pa.Array,
    ) -> TableBatch:
        """Build a batch: adds provenance, null-fills and casts declared columns.

        Raises:
            ValueError: an unknown column for a closed table, or lengths differ.
        """
        schema = TABLES[table]
        n = len(locator)
        arrays: list[pa.Array] = []
        fields: list[pa.Field] = []
        given = dict(columns)
        given["_source"] = pa.array([source] * n, pa.string())
        given["_artefact"] = (
            pa.array([artefact] * n, pa.string()) if isinstance(artefact, str) else artefact
        )
        given["_locator"] = locator.cast(pa.string())
        for spec in schema.fields:
            typ = spec.arrow_type()
            arr = given.pop(spec.name, None)
            arr = pa.nulls(n, typ) if arr is None else arr.cast(typ)
            if len(arr) != n:
                raise ValueError(f"column {spec.name!r} has {len(arr)} rows, expected {n}")
            arrays.append(arr)
            fields.append(pa.field(spec.name, typ))
        if given and not schema.open_columns:
            raise ValueError(f"unknown columns for table {table!r}: {sorted(given)}")
        for name in sorted(given):
            arr = given[name]
            if len(arr) != n:
                raise ValueError(f"column {name!r} has {len(arr)} rows, expected {n}")
            arrays.append(arr.cast(pa.string()))
            fields.append(pa.field(name, pa.string()))
        return cls(table, pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)))

    @property
    def num_rows(self) -> int:
        """Number of rows."""
        return int(self.data.num_rows)


def _coerced(values: Sequence[Any], typ: pa.DataType | None) -> pa.Array:
    """Values one by one, for a column some of whose values are of another JSON type than
    declared (hostile or damaged exports): text columns get the value's text (objects and
    lists as JSON, lone surrogates as U+FFFD), other columns null where it does not fit."""
    import orjson

    text = typ is None or pa.types.is_string(typ)
    out: list[Any] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        if text:
            s = v if isinstance(v, str) else orjson.dumps(v, default=str).decode() \
                if isinstance(v, dict | list) else str(v)
            out.append(s.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))
            continue
        try:
            out.append(pa.array([v], typ)[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            out.append(None)
    return pa.array(out, typ or pa.string())
