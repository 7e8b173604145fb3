"""The native fields-JSON helper's own checks on the buffers it is given."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import tidehunt.detect.sigma.findings as F

pytestmark = pytest.mark.skipif(F._native_fields is None,
                                reason="the native helper is not built (no cargo)")


def _fields(n: int, cols: list[tuple], alloc=pa.allocate_buffer) -> tuple[bytes, pa.Buffer]:
    offsets, text = F._native_fields(n, cols, alloc)
    return offsets, text


def test_native_refuses_buffers_shorter_than_the_rows():
    """Buffers that do not cover the rows asked for are an error, not a read past them."""
    a = pa.array(["x", "yy", None])
    valid, offsets, data = a.buffers()
    with pytest.raises(ValueError, match="shorter"):
        _fields(10, [(b'"k":', True, valid, offsets, data, 0, 10, None)])
    with pytest.raises(ValueError, match="row count"):
        _fields(3, [(b'"k":', True, valid, offsets, data, 0, 2, None)])
    bad = pa.py_buffer(np.array([0, 1, 1 << 20, 2], dtype=np.int32).tobytes())
    with pytest.raises(ValueError, match="out of its data"):
        _fields(3, [(b'"k":', True, None, bad, data, 0, 3, None)])
    offs, text = _fields(3, [(b'"k":', True, valid, offsets, data, 0, 3, None)])
    assert text.to_pybytes() == b'{"k":"x"}{"k":"yy"}{}'
    assert np.frombuffer(offs, np.int32).tolist() == [0, 9, 19, 21]


def test_native_refuses_indices_outside_the_dictionary():
    d = pa.array(["a", "b"])
    _, d_offsets, d_data = d.buffers()
    for idx in ([0, 2], [-1, 0]):
        ind = pa.array(idx, pa.int32())
        _, indices = ind.buffers()
        with pytest.raises(ValueError, match="not in its dictionary"):
            _fields(2, [(b'"k":', True, None, indices, None, 0, 2,
                         (d_offsets, d_data, 0, 2))])


def test_native_writes_only_into_a_writable_buffer_of_the_length_asked():
    _, offsets, data = pa.array(["x"]).buffers()
    col = [(b'"k":', True, None, offsets, data, 0, 1, None)]
    for alloc in (lambda size: pa.py_buffer(bytes(size)),  # read-only
                  lambda size: pa.allocate_buffer(size - 1)):
        with pytest.raises(ValueError, match="writable buffer"):
            _fields(1, col, alloc)
    assert _fields(1, col)[1].to_pybytes() == b'{"k":"x"}'
