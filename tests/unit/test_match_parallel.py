"""Matching in worker processes gives exactly the hits of matching in-process."""

from __future__ import annotations

import numpy as np
import pytest

import tidehunt.detect.sigma.run as run
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.ingest import ingest


def test_parallel_match_equals_serial(corpus, sigmahq_plan, tmp_path, monkeypatch):
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(corpus("evtx/evtx-attack-samples"))], store, RunContext(), workers=1)
    monkeypatch.setattr(run, "CHUNK_ROWS", 1500)  # several chunks, several parts each
    serial = run.match(sigmahq_plan, store, workers=1)
    monkeypatch.setattr(run, "PARALLEL_MATCH_ROWS", 0)
    parallel = run.match(sigmahq_plan, store, workers=2)
    assert serial.events == parallel.events == 5079
    key = lambda r: sorted(zip(r.rule.tolist(), r.part.tolist(), r.row.tolist(),  # noqa: E731
                               strict=True))
    assert len(serial.rule) > 500
    assert key(serial) == key(parallel)
    assert np.unique(serial.part).size > 1


def test_value_cache_gives_the_hits_of_no_cache(corpus, sigmahq_plan, tmp_path, monkeypatch):
    """Predicates evaluated once per distinct value across chunks (ValueCache) hit the
    rows that evaluating every chunk on its own does: cache off (every space full at
    once), on, and filling up part-way (spaces going full between chunks)."""
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(corpus("evtx/evtx-attack-samples"))], store, RunContext(), workers=1)
    monkeypatch.setattr(run, "CHUNK_ROWS", 700)
    key = lambda r: list(zip(r.rule.tolist(), r.part.tolist(), r.row.tolist(),  # noqa: E731
                             strict=True))
    got = {}
    for limit in (0, 40, 1_000_000):
        monkeypatch.setattr(run.ValueCache, "MAX_VALUES", limit)
        got[limit] = key(run.match(sigmahq_plan, store, workers=1))
    assert len(got[0]) > 500
    assert got[0] == got[40] == got[1_000_000]
    # the whole cache bounded: spaces dropped as values or hits no longer fit
    used = []
    real = run.ValueCache.__init__

    def spy(self, max_total=None):
        real(self, max_total)
        used.append(self)

    monkeypatch.setattr(run.ValueCache, "__init__", spy)
    monkeypatch.setattr(run.ValueCache, "MAX_TOTAL_BYTES", 60_000)
    assert key(run.match(sigmahq_plan, store, workers=1)) == got[0]
    cache = used[-1]
    assert any(sp.full for sp in cache.spaces.values())
    assert any(not sp.full and sp.n for sp in cache.spaces.values())
    assert 0 < cache.used <= 60_000
    assert cache.used == sum(sp.nbytes for sp in cache.spaces.values())


@pytest.mark.parametrize("max_values", [1_000_000, 40])
def test_threaded_match_equals_one_thread(corpus, sigmahq_plan, tmp_path, monkeypatch,
                                          max_values):
    """With a large budget two threads match chunks side by side, sharing the ValueCache
    (and, with few values allowed, dropping its spaces while the other thread uses them):
    the hits, and the event rows kept for the findings, are those of one thread."""
    from tidehunt.detect.sigma.findings import build_findings
    from tidehunt.memory import MemoryBudget

    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(corpus("evtx/evtx-attack-samples"))], store, RunContext(), workers=1)
    monkeypatch.setattr(run, "CHUNK_ROWS", 700)
    monkeypatch.setattr(run.ValueCache, "MAX_VALUES", max_values)
    one = run.match(sigmahq_plan, store, workers=2, budget=MemoryBudget.parse("2GB"))
    two = run.match(sigmahq_plan, store, workers=2, budget=MemoryBudget.parse("8GB"))
    assert (one.plan.threads, two.plan.threads) == (1, 2)
    key = lambda r: list(zip(r.rule.tolist(), r.part.tolist(), r.row.tolist(),  # noqa: E731
                             strict=True))
    assert len(one.rule) > 500 and key(one) == key(two)
    emit = set(range(len(sigmahq_plan.rules)))
    f1, _ = build_findings(sigmahq_plan, one, emit)
    f2, _ = build_findings(sigmahq_plan, two, emit)
    assert f1.num_rows == len(one.rule) and f1.equals(f2)


def test_value_space_ids_and_hits():
    import pyarrow as pa

    space = run._Space(limit=5, max_bytes=1 << 20)  # no owner: only its own limits
    calls = []

    def fn(vals):
        calls.append(vals.to_pylist())
        return {1: np.array([v.startswith("a") for v in vals.to_pylist()])}

    assert space.ids(pa.array(["a1", "b1", "a2"])).tolist() == [0, 1, 2]
    space.extend("k", [1], fn)
    assert space.ids(pa.array(["b2", "a1", "b2x"])).tolist() == [3, 0, 4]
    space.extend("k", [1], fn)
    space.extend("k", [1], fn)  # nothing new: not evaluated again
    assert calls == [["a1", "b1", "a2"], ["b2", "b2x"]]
    assert space.hits[1].tolist() == [0, 2]  # the ids it is true for
    # bits over a chunk holding ids 2, 3 and 0 at positions 0, 1, 2
    where = np.array([2, -1, 0, 1, -1])
    assert space.bits(1, where, 3).tolist() == [True, False, True]
    assert space.bits(1, np.array([-1, 0, -1, 1, 2]), 3) is run.ALL_FALSE
    assert space.ids(pa.array(["new"])) is None and space.full  # past its limit
    assert space.ids(pa.array(["a1"])) is None and space.hits == {}
    wide = run._Space(limit=100, max_bytes=64)
    assert wide.ids(pa.array(["x" * 100])) is None  # past its bytes


@pytest.mark.parametrize("eid_type", ["int64", "string"])
def test_group_rows_are_the_rows_channel_and_event_id_select(eid_type):
    import pyarrow as pa
    import pyarrow.compute as pc

    from tidehunt.detect.sigma.plan import Group

    rng = np.random.default_rng(5)
    n = 5000
    chans = ["Security", "SECURITY", "Microsoft-Windows-Sysmon/Operational", None, "System"]
    channel = pa.array([chans[i] for i in rng.integers(0, len(chans), n)])
    ids = [None if x == 0 else int(x) for x in rng.integers(0, 12, n)]
    event_id = pa.array(ids, pa.int64()) if eid_type == "int64" else pa.array(
        [None if x is None else str(x) for x in ids])
    base = rng.random(n) < 0.7
    groups = [Group(["security"], [4, 7], []),
              Group(["Microsoft-Windows-Sysmon/Operational"], [], []),
              Group([], [1, 11], []), Group([], [], []), Group(["nowhere"], [1], [])]
    for b in (None, base):
        sel = run._GroupRows(channel, event_id, b)
        for g in groups:
            mask = np.ones(n, dtype=bool) if b is None else b.copy()
            if g.channels:
                mask &= run._np(pc.is_in(pc.utf8_lower(channel),
                                         pa.array([c.lower() for c in g.channels])))
            if g.event_ids:
                mask &= run._np(pc.is_in(event_id, pa.array(g.event_ids, pa.int64())
                                         .cast(event_id.type)))
            assert sel.rows(g).tolist() == np.flatnonzero(mask).tolist(), (g, b is None)


def test_value_space_drops_when_the_cache_is_full():
    import pyarrow as pa

    cache = run.ValueCache(max_total=200)
    a, b = cache.space("A", "lower"), cache.space("B", "lower")
    assert a.ids(pa.array(["x" * 50, "y" * 50])) is not None
    used = cache.used
    assert used > 0
    assert b.ids(pa.array(["z" * 150])) is None and b.full  # no room left in the cache
    assert cache.used == used
    hit_all = {7: run.ALL_TRUE}
    assert a.extend("k", [7], lambda vals: hit_all)  # two ids: 8 bytes fit
    assert a.ids(pa.array(["w" * 60])) is not None
    # hits of a predicate true everywhere no longer fit: the space goes, its bytes freed
    assert not a.extend("k2", list(range(40)), lambda vals: dict.fromkeys(range(40),
                                                                          run.ALL_TRUE))
    assert a.full and cache.used == 0
    assert not a.extend("k", [7], lambda vals: hit_all)  # and stays gone
