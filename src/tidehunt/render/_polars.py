"""Shared Polars helpers for renderers that write one line per finding in bulk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import pyarrow as pa

#: Rows rendered per slice: bounds the memory of the text being built.
SLICE_ROWS = 16_384


def frame(findings: pa.Table) -> Any:
    """The findings as a Polars DataFrame (zero-copy from Arrow where possible)."""
    import polars as pl

    return pl.from_arrow(findings)


def slices(findings: pa.Table, order: pa.Array | None = None,
           rows: int | None = None) -> Iterator[pa.Table]:
    """The table in slices of ``rows`` (SLICE_ROWS) rows, in ``order`` (row indices) if given.

    Taking each slice in order, rather than the whole sorted table, keeps a second copy
    of all findings out of memory.
    """
    rows = rows or SLICE_ROWS
    batches = findings.to_batches() if order is not None else []
    for start in range(0, findings.num_rows, rows):
        if order is None:
            yield findings.slice(start, rows)
        else:
            yield take_rows(batches, order.slice(start, rows))


def take_rows(batches: list[pa.RecordBatch], indices: pa.Array) -> pa.Table:
    """The rows at ``indices`` of the table made of ``batches``, in that order.

    ``Table.take`` joins each column's chunks before taking from them, a copy of the
    whole table for every slice; this takes from each batch the rows it holds, then puts
    the (few) rows taken in order.
    """
    import numpy as np

    if len(batches) == 1:
        return pa.Table.from_batches([batches[0].take(indices)])
    idx = indices.to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.cumsum([0] + [b.num_rows for b in batches])
    which = np.searchsorted(starts, idx, side="right") - 1
    grouped = np.argsort(which, kind="stable")  # rows by batch, in order within each
    pieces = [batches[b].take(pa.array(idx[grouped[which[grouped] == b]] - starts[b]))
              for b in np.unique(which)]
    where = np.empty_like(grouped)
    where[grouped] = np.arange(len(grouped))
    return pa.Table.from_batches(pieces, batches[0].schema).combine_chunks().take(
        pa.array(where))


def iso_utc(col: Any) -> Any:
    """ISO-8601 UTC text of a timestamp column, as ``datetime.isoformat`` with ``Z``.

    Whole seconds have no fraction; others have six digits.
    """
    import polars as pl

    base = col.dt.strftime("%Y-%m-%dT%H:%M:%S")
    frac = col.dt.strftime("%.6f")
    return (pl.when(col.dt.microsecond() == 0).then(base + "Z")
            .otherwise(base + frac + "Z"))


def write_lines(lines: Any, out: IO[bytes], terminator: str = "\n") -> None:
    """Write a Polars string Series, one value a line (``terminator`` added to each).

    The lines, each with its terminator, are one Arrow string array whose data buffer is
    the text to write: it is written as it is, with no Python string per line.
    """
    import numpy as np
    import polars as pl

    if not len(lines):
        return
    if lines.null_count():  # no line can be null: fail as joining them always did
        raise TypeError("write_lines: a line is null")
    if terminator:  # "": the lines end with their terminators already
        lines = lines + terminator
    arr = lines.to_arrow(compat_level=pl.CompatLevel.oldest())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    _, offsets, data = arr.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[[arr.offset, arr.offset + len(arr)]]
    out.write(memoryview(data)[int(bounds[0]):int(bounds[1])])
