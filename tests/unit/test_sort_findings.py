"""Sorting the findings a column at a time gives the table a whole-table sort gives."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tidehunt.engine import sort_findings
from tidehunt.model.finding import FINDINGS_SCHEMA


def _findings(n: int, chunk: int) -> pa.Table:
    rng = np.random.default_rng(3)
    ts = pa.array(rng.integers(0, 50, n) * 1_000_000, pa.int64()).cast(
        pa.timestamp("us", tz="UTC"))  # many equal times: the finding ID decides
    base = {f.name: pa.nulls(n, f.type) for f in FINDINGS_SCHEMA}
    base |= {"ts": ts, "ts_last": ts,
             "finding_id": pa.array([f"{x:016x}" for x in rng.permutation(n)]),
             "rule_title": pa.array([f"rule {i % 7}" for i in range(n)]),
             "techniques": pa.array([[f"T{i % 5}"] if i % 3 else [] for i in range(n)],
                                    pa.list_(pa.string())),
             "severity": pa.array(rng.integers(0, 5, n), pa.int8()),
             "fields": pa.array([f'{{"n":{i}}}' if i % 4 else None for i in range(n)])}
    t = pa.table(base, schema=FINDINGS_SCHEMA)
    # several chunks per column, as the findings build makes them (fields in 16k slices)
    return pa.Table.from_batches(t.to_batches(max_chunksize=chunk), FINDINGS_SCHEMA)


@pytest.mark.parametrize("join_bytes", [0, 1 << 40], ids=["sliced", "joined"])
def test_same_as_whole_table_sort(monkeypatch, join_bytes):
    monkeypatch.setattr("tidehunt.engine.SORT_JOIN_BYTES", join_bytes)
    t = _findings(40_000, 7_000)
    order = pc.sort_indices(t, [("ts", "ascending"), ("finding_id", "ascending")])
    want = t.combine_chunks().take(order)
    box = [t]
    del t
    got = sort_findings(box)
    assert box == []
    assert got.schema == FINDINGS_SCHEMA
    assert got.equals(want)
    if not join_bytes:  # taken a slice at a time, never joined
        assert got.column("fields").num_chunks > 1


def test_one_chunk_and_empty():
    t = _findings(500, 10_000)
    order = pc.sort_indices(t, [("ts", "ascending"), ("finding_id", "ascending")])
    assert sort_findings([t]).equals(t.take(order))
    empty = FINDINGS_SCHEMA.empty_table()
    assert sort_findings([empty]).num_rows == 0


def test_finding_ids_in_bulk_are_finding_id_of_each_pair():
    from tidehunt.model.finding import finding_id, finding_ids

    rules = ["r-1", "Rule Title ü"]
    evidence = [("a" * 16, "c0:12"), ("b" * 16, "offset 7"), ("", "")]
    pairs = [(0, 0), (1, 0), (0, 2), (1, 1), (1, 1)]
    got = finding_ids(rules, [r for r, _ in pairs], evidence, [e for _, e in pairs])
    assert got == [finding_id(rules[r], [evidence[e]]) for r, e in pairs]
    assert len(set(got)) == 4 and all(len(x) == 16 for x in got)


@pytest.mark.parametrize(("others", "sliced"), [(0, True), (1, True), (12, True), (60, False)])
def test_nearly_sorted_findings_are_sliced_into_place(others, sliced):
    """Findings in order but for a few rows of other detectors (as the Sigma findings are
    built, with the analytics' after them): the whole-table sort, with nothing copied."""
    t = _findings(40_000, 7_000)
    t = t.take(pc.sort_indices(t, [("ts", "ascending"), ("finding_id", "ascending")]))
    t = pa.Table.from_batches(t.to_batches(max_chunksize=16_384), FINDINGS_SCHEMA)
    rng = np.random.default_rng(5)
    extra = _findings(40_000, 40_000).take(pa.array(rng.choice(40_000, others, replace=False)))
    extra = extra.set_column(extra.column_names.index("finding_id"), "finding_id",
                             pa.array([f"zz{i:014x}" for i in range(others)]))
    both = pa.concat_tables([t, extra]) if others else t
    want = both.combine_chunks().take(
        pc.sort_indices(both, [("ts", "ascending"), ("finding_id", "ascending")]))
    source = {c.buffers()[2].address for c in both.column("fields").chunks}
    got = sort_findings([both])
    assert got.schema == FINDINGS_SCHEMA
    assert got.equals(want)
    # sliced, not taken: every chunk of the fields JSON is a view of the input's text;
    # 60 rows among 40,000 make 121 runs, too many: taken as before
    views = {c.buffers()[2].address for c in got.column("fields").chunks} <= source
    assert views == sliced


def test_runs_only_when_few():
    from tidehunt.engine import SORTED_RUN_ROWS, _runs

    assert _runs(np.arange(10_000)) == [(0, 10_000)]
    order = np.concatenate([np.arange(5_000), [9_999], np.arange(5_000, 9_999)])
    assert _runs(order) == [(0, 5_000), (9_999, 1), (5_000, 4_999)]
    assert _runs(np.random.default_rng(1).permutation(10_000)) is None
    assert _runs(np.arange(SORTED_RUN_ROWS - 1)) is None  # one short run: taken as before
    assert _runs(np.zeros(0, np.int64)) is None


def test_take_by_slices_is_the_take_of_the_joined_chunks(monkeypatch):
    """The findings' fields JSON taken from the events' arrays in any order: the values
    of one take from them all joined, as string chunks of at most TAKE_ROWS rows."""
    from tidehunt.detect.sigma import findings

    monkeypatch.setattr(findings, "TAKE_ROWS", 7)
    rng = np.random.default_rng(11)
    chunks = [pa.array([f'{{"part":{p},"row":{r}}}' if r % 5 else None for r in range(n)],
                       pa.string())
              for p, n in enumerate([13, 0, 1, 29, 8])]
    joined = pa.concat_arrays(chunks)
    idx = rng.integers(0, len(joined), 60)  # in any order, some events more than once
    held = list(chunks)
    got = findings._take_by_slices(held, idx)
    assert held == []  # let go of once joined
    assert got.type == pa.string()
    assert [len(c) for c in got.chunks] == [7] * 8 + [4]
    assert got.to_pylist() == joined.take(pa.array(idx)).to_pylist()
    assert findings._take_by_slices([], np.zeros(0, np.int64)).to_pylist() == []
