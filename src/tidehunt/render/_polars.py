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


def slices(findings: pa.Table, order: pa.Array | None = None) -> Iterator[pa.Table]:
    """The table in slices of SLICE_ROWS rows, in ``order`` (row indices) if given.

    Taking each slice in order, rather than the whole sorted table, keeps a second copy
    of all findings out of memory.
    """
    for start in range(0, findings.num_rows, SLICE_ROWS):
        if order is None:
            yield findings.slice(start, SLICE_ROWS)
        else:
            yield findings.take(order.slice(start, SLICE_ROWS))


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
    """Write a Polars string Series, one value a line.

    The lines, each with its terminator, are one Arrow string array whose data buffer is
    the text to write: it is written as it is, with no Python string per line.
    """
    import numpy as np
    import polars as pl

    if not len(lines):
        return
    if lines.null_count():  # no line can be null: fail as joining them always did
        raise TypeError("write_lines: a line is null")
    arr = (lines + terminator).to_arrow(compat_level=pl.CompatLevel.oldest())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    _, offsets, data = arr.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[[arr.offset, arr.offset + len(arr)]]
    out.write(memoryview(data)[int(bounds[0]):int(bounds[1])])
