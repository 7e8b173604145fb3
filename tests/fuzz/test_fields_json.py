"""Property test: the findings' fields JSON (the native helper, and the Arrow kernels)
is the orjson reference's, for event tables as matching and the findings hold them.

Tables are drawn with text columns of hostile values (every escaped byte, non-BMP text,
empty strings), integers and times with nulls anywhere, plain or dictionary-encoded (as
matching reads a part), whole, sliced (arrays that start inside their buffers) or taken
(the findings' rows of a part).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tidehunt.detect.sigma.findings as F
from tests.fuzz._contract import hostile_text

NAMES = ["CommandLine", "Image", "User", "TargetFilename", "ScriptBlockText", "Details",
         "we\"ird\\key", "Ünïcode", "SourceIp", "Rare"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)

# as a Parquet column holds them: UTF-8 (a lone surrogate of the hostile text becomes "?")
texts = st.one_of(st.none(), st.sampled_from(["", "-", "   ", "C:\\Windows\\cmd.exe"]),
                  hostile_text.map(lambda s: s.encode("utf-8", "replace").decode()),
                  st.text(max_size=30))


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(1, 40))
    cols: dict[str, pa.Array] = {
        "ts": pa.array([draw(st.one_of(st.none(), st.integers(0, 10**12).map(
            lambda us: T0 + timedelta(microseconds=us)))) for _ in range(n)],
            pa.timestamp("us", tz="UTC")),
        "event_id": pa.array([draw(st.one_of(st.none(), st.integers(-2**40, 2**40)))
                              for _ in range(n)], pa.int64()),
        "source_file": pa.array(["hidden"] * n),
    }
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=6)):
        col = pa.array([draw(texts) for _ in range(n)], pa.string())
        cols[name] = pc.dictionary_encode(col) if draw(st.booleans()) else col
    t = pa.table(cols)
    how = draw(st.sampled_from(["whole", "slice", "take"]))
    if how == "slice":
        lo = draw(st.integers(0, n - 1))
        t = t.slice(lo, draw(st.integers(1, n - lo)))
    elif how == "take":
        t = t.take(pa.array(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n))))
    return t


@pytest.mark.parametrize("path", ["native", "arrow"])
@given(t=tables())
def test_fields_json_is_the_reference(path, t):
    if path == "native" and F._native_fields is None:
        pytest.skip("the native helper is not built (no cargo)")
    saved = F._native_fields
    if path == "arrow":
        F._native_fields = None
    try:
        got = F.event_rows(t)
    finally:
        F._native_fields = saved
    ref = F.event_columns_py(F.decoded(t))
    for key in ("fields", "det", "det6", "user", "src", "dst"):
        assert got.column(F._DERIVED + key).to_pylist() == ref[key].to_pylist(), key
