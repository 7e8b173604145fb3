"""The bulk event columns of a finding (fields JSON, details, user, source, destination)
against the reference that builds one dict per event and serialises it with orjson."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.conftest import corpus_path
from tidehunt.detect.sigma.findings import (
    PY_SPACE,
    _join_present,
    event_columns,
    event_columns_py,
)


@pytest.fixture(params=["native", "arrow"], autouse=True)
def fields_path(request, monkeypatch):
    """Each test twice: the fields JSON by the native helper, and in Arrow kernels."""
    import tidehunt.detect.sigma.findings as F

    if request.param == "arrow":
        monkeypatch.setattr(F, "_native_fields", None)
    elif F._native_fields is None:
        pytest.skip("the native helper is not built (no cargo): the Arrow path only")
    return request.param


def _same(t: pa.Table) -> None:
    got, ref = event_columns(t), event_columns_py(t)
    assert set(got) == set(ref)
    for k in ref:
        g, r = got[k].to_pylist(), ref[k].to_pylist()
        bad = [i for i in range(len(r)) if g[i] != r[i]]
        assert not bad, (k, bad[:3], g[bad[0]], r[bad[0]])


def test_python_whitespace_set_is_str_isspace():
    assert "".join(chr(c) for c in range(0x110000) if chr(c).isspace()) == PY_SPACE


def test_hostile_values_match_reference():
    ctl = "".join(chr(c) for c in range(0x20))
    long = "é😀 x" * 100  # non-BMP and spaces past the 240-character cut
    values = ['a "quoted" \\path\\ ', ctl, "line\nbreak\ttab\r", "\u2028\x85\xa0 mixed \u3000",
              long, "", "-", "   ", None, "\x7f\\\\\"", "plain"]
    n = len(values)
    t = pa.table({
        "ts": pa.array([datetime(2026, 1, 2, 3, 4, 5, i * 7, tzinfo=UTC) if i % 3 else
                        datetime(1601, 1, 1, tzinfo=UTC) for i in range(n)],
                       pa.timestamp("us", tz="UTC")),
        "event_id": pa.array(range(n), pa.int64()),
        "record_id": pa.array([None if i == 4 else i * 10 for i in range(n)], pa.int64()),
        "host": pa.array(["h\"1"] * n),
        "source_file": pa.array(["hidden"] * n),
        "_artefact": pa.array(["a"] * n),
        "CommandLine": pa.array(values),
        "Image": pa.array(list(reversed(values))),
        "ScriptBlockText": pa.array([long] * n),
        "User": pa.array(["-", "", None, "CORP\\bob"] * 2 + ["x", None, "-"]),
        "SubjectUserName": pa.array(["svc"] * n),
        "IpAddress": pa.array(["-"] * n),
        'we"ird\\key\n': pa.array(values),
        "_private": pa.array(["kept"] + [None] * (n - 1)),
        "AllNull": pa.nulls(n, pa.string()),
    })
    _same(t)
    got = event_columns(t)
    for s in got["fields"].to_pylist():
        json.loads(s)  # each one valid JSON
    assert json.loads(got["fields"][0].as_py())["TimeCreated"] == "1601-01-01T00:00:00Z"
    assert json.loads(got["fields"][1].as_py())["TimeCreated"] == \
        "2026-01-02T03:04:05.000007Z"


def test_sliced_columns_and_null_times_match_reference():
    """Arrays that start inside their buffers (a slice of a part), times missing, every
    byte that JSON escapes, and a column null in all but one row."""
    n = 300
    esc = [chr(c) for c in range(0x20)] + ['"', "\\", "\x7f", "\u2028", "😀", ""]
    t = pa.table({
        "ts": pa.array([None if i % 4 == 0 else datetime(2026, 5, 6, 7, 8, 9, i, tzinfo=UTC)
                        for i in range(n)], pa.timestamp("us", tz="UTC")),
        "record_id": pa.array([i if i % 5 else None for i in range(n)], pa.int64()),
        "CommandLine": pa.array([None if i % 3 == 0 else esc[i % len(esc)] * (i % 4)
                                 for i in range(n)]),
        "Rare": pa.array(["only here"] + [None] * (n - 1)),
    })
    for lo, hi in ((0, n), (1, n), (37, 211), (299, 300), (5, 5)):
        _same(t.slice(lo, hi - lo))


def _hostile_table(n: int = 240) -> pa.Table:
    esc = [chr(c) for c in range(0x20)] + ['"', "\\", "\x7f", "\u2028", "😀 é", "", "-"]
    return pa.table({
        "ts": pa.array([datetime(2026, 5, 6, 7, 8, 9, i, tzinfo=UTC) for i in range(n)],
                       pa.timestamp("us", tz="UTC")),
        "host": pa.array([f"ws{i % 3}" for i in range(n)]),
        "channel": pa.array(["Security"] * n),
        "event_id": pa.array([4688] * n, pa.int64()),
        "source_file": pa.array(["a.evtx"] * n), "_artefact": pa.array(["x"] * n),
        "_locator": pa.array([str(i) for i in range(n)]),
        "record_id": pa.array(range(n), pa.int64()),
        "CommandLine": pa.array([None if i % 3 == 0 else esc[i % len(esc)] * (1 + i % 3)
                                 for i in range(n)]),
        "Image": pa.array([f"C:\\w\\p{i % 9}.exe" for i in range(n)]),
        "User": pa.array([None, "CORP\\bob", "-", ""] * (n // 4)),
        "Rare": pa.array(["only here"] + [None] * (n - 1)),
    })


def test_dictionary_columns_as_matching_reads_them_match_reference():
    """Text read as dictionaries (matching's reading of a part), whole, sliced and taken,
    and a dictionary holding a null: the same event rows as the plain columns, whose
    fields JSON is the reference's."""
    from tidehunt.detect.sigma.findings import event_rows

    t = _hostile_table()
    enc = pa.table({name: pc.dictionary_encode(col) if pa.types.is_string(col.type) and
                    name != "channel" else col
                    for name, col in zip(t.column_names, t.columns, strict=True)})
    d = pa.array(["a", None, "b"])
    odd = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, None] * 60, pa.int32()), d)
    t = t.append_column("Odd", pc.cast(odd, pa.string()))
    enc = enc.append_column("Odd", odd)
    for a, b in ((t, enc), (t.slice(17, 150), enc.slice(17, 150)),
                 (t.take(pa.array([5, 3, 200, 0])), enc.take(pa.array([5, 3, 200, 0])))):
        want, got = event_rows(a), event_rows(b)
        assert got.column_names == want.column_names
        for name in want.column_names:
            assert got.column(name).to_pylist() == want.column(name).to_pylist(), name
        ref = event_columns_py(a)["fields"].to_pylist()
        assert got.column("\x00fields").to_pylist() == ref


def test_rows_without_fields_and_details():
    t = pa.table({"source_file": pa.array(["f", "g"]), "Other": pa.array([None, "v"])})
    _same(t)
    assert event_columns(t)["fields"].to_pylist() == ["{}", '{"Other":"v"}']
    assert event_columns(t)["det6"].to_pylist() == ["", ""]


@pytest.mark.parametrize("extra", [
    {"EventID": pa.array(["7", None])},  # a column that meets event_id's Sigma name
    {"Flag": pa.array([True, None])},  # a type the bulk path does not build
    {"When": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC"))},
])
def test_parts_it_does_not_cover_fall_back(extra):
    t = pa.table({"event_id": pa.array([1, 2], pa.int64()),
                  "CommandLine": pa.array(["a", "b"]), **extra})
    _same(t)


def test_join_present_keeps_rows_where_nothing_is_present():
    # Arrow 26's "skip" join drops such rows (its output is shorter than its input)
    a = pa.array(["x", None, None, "y"], pa.string())
    b = pa.array([None, None, "q", "z"], pa.string())
    assert _join_present([a, b], " ¦ ").to_pylist() == ["x", "", "q", "y ¦ z"]


def test_corpus_parts_match_reference(tmp_path):
    """Every part of a case of real EVTX and evtx_dump JSON, whole and a row sample."""
    from tidehunt.case.store import CaseStore
    from tidehunt.context import RunContext
    from tidehunt.ingest import ingest

    evtx = sorted(corpus_path("evtx/evtx-attack-samples").rglob("*.evtx"))[::4]
    js = sorted(corpus_path("evtx/sigma-regression").rglob("*.json"))[::3]
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(p) for p in evtx + js], store, RunContext(), workers=1)
    parts = store.parts("windows")
    assert parts
    rng = np.random.default_rng(7)
    for p in parts:
        t = pq.read_table(p)
        _same(t)
        rows = np.sort(rng.choice(t.num_rows, size=min(t.num_rows, 300), replace=False))
        _same(t.take(pa.array(rows)))


def test_hits_for_correlations_only_of_the_rules_asked(tmp_path):
    from tests.unit.test_sigma_engine import rule_text, write_events
    from tidehunt.case.store import CaseStore
    from tidehunt.context import RunContext
    from tidehunt.detect.sigma.findings import build_findings
    from tidehunt.detect.sigma.loader import load_plan
    from tidehunt.detect.sigma.run import match
    from tidehunt.ingest import ingest

    rdir = tmp_path / "rules"
    rdir.mkdir()
    for i, ending in enumerate(("\\rar.exe", "\\rclone.exe")):
        (rdir / f"r{i}.yml").write_text(rule_text(
            {"sel": {"Image|endswith": ending}, "condition": "sel"}, title=f"r{i}",
            rid=f"5f0e9d1c-1111-4222-8333-94445556667{i}"))
    ev = write_events(tmp_path / "e.json", [{"Image": "c:\\rar.exe"}, {"Image": "c:\\rclone.exe"},
                                            {"Image": "c:\\rar.exe"}])
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(ev)], store, RunContext(), workers=1)
    plan = load_plan([rdir], use_cache=False)
    res = match(plan, store)
    rar = next(i for i, r in enumerate(plan.rules) if r["title"] == "r0")
    findings, hits = build_findings(plan, res, set(range(len(plan.rules))), hit_rules={rar})
    assert findings.num_rows == 3
    assert hits.column("rule").to_pylist() == [rar, rar]
    assert [json.loads(f)["Image"] for f in hits.column("fields").to_pylist()] == \
        ["c:\\rar.exe"] * 2
    _, every = build_findings(plan, res, set(range(len(plan.rules))))
    assert every.num_rows == 3



def test_large_part_read_a_group_of_columns_at_a_time(tmp_path, monkeypatch):
    """A part of more than READ_CELLS cells is read as groups of columns, the wanted rows
    kept of each: the same event rows as taking them from the whole part."""
    import tidehunt.detect.sigma.findings as F

    n = 4321
    ts = pa.array([datetime(2026, 10, 6, 1, 0, i % 60, tzinfo=UTC) for i in range(n)],
                  pa.timestamp("us", tz="UTC"))
    t = pa.table({
        "ts": ts, "host": [f"ws{i % 7}" for i in range(n)],
        "channel": ["Microsoft-Windows-Sysmon/Operational"] * n,
        "event_id": pa.array([1 + i % 3 for i in range(n)], pa.int32()),
        "source_file": ["a.evtx"] * n, "_artefact": ["x"] * n,
        "_locator": [str(i) for i in range(n)], "record_id": pa.array(range(n), pa.int64()),
        "Image": [f"C:\\p{i}.exe" if i < 1500 else None for i in range(n)],
        "CommandLine": [None if i < 2000 else f"p{i} \"-x\"\t" for i in range(n)],
        "User": [f"CORP\\u{i % 5}" for i in range(n)],
        "Target.Name": [f"t{i}" if i % 2 else None for i in range(n)],  # a dot in a name
    })
    path = tmp_path / "part.parquet"
    pq.write_table(t, path)
    rows = np.array([0, 999, 1499, 1500, 2999, 3000, 4320], dtype=np.int64)
    want = F.event_rows(t.take(pa.array(rows)))
    for cells in (1 << 22, 3 * n, n):  # whole; 3 columns at a time; one at a time
        monkeypatch.setattr(F, "READ_CELLS", cells)
        (got,) = F._matched_rows([str(path)], [rows])
        assert got.column_names == want.column_names
        for name in want.column_names:
            assert got.column(name).to_pylist() == want.column(name).to_pylist(), name
