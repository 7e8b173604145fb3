"""Matching reads text columns dictionary-encoded; the hit rows' event rows are made in
the keeper's thread. Both give what the dense, in-line path gives."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest

import tidehunt.detect.sigma.findings as fnd
import tidehunt.detect.sigma.run as run
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.detect.sigma.findings import decoded, event_rows
from tidehunt.ingest import ingest


@pytest.fixture(scope="module")
def attack_case(tmp_path_factory):
    from tests.conftest import corpus_path

    store = CaseStore(tmp_path_factory.mktemp("dict") / "case", create=True)
    ingest([str(corpus_path("evtx/evtx-attack-samples"))], store, RunContext(), workers=1)
    return store


def _hits(h: run.Hits) -> set[tuple[int, int]]:
    rules = np.concatenate(h.rules) if h.rules else np.zeros(0, np.int32)
    rows = np.concatenate(h.rows) if h.rows else np.zeros(0, np.int64)
    return set(zip(rules.tolist(), rows.tolist(), strict=True))


def test_a_dictionary_chunk_matches_as_its_decoded_table(attack_case, sigmahq_plan):
    parts = [str(p) for p in attack_case.parts("windows")]
    groups = run.active_groups(sigmahq_plan, sigmahq_plan.detection_rules())
    table, _, _ = run._read_chunk(list(enumerate(parts)), groups, sigmahq_plan)
    kinds = {f.name: f.type for f in table.schema}
    assert pa.types.is_dictionary(kinds["CommandLine"])
    assert kinds["channel"] == pa.string()  # lower-cased by the audit fields: read decoded
    dense = decoded(table)
    assert not any(pa.types.is_dictionary(f.type) for f in dense.schema)
    got = _hits(run.run_groups(sigmahq_plan, groups, table))
    want = _hits(run.run_groups(sigmahq_plan, groups, dense))
    assert len(want) > 500
    assert got == want
    # the findings' event rows of a dictionary table are those of its decoded rows
    rows = pa.array(sorted({r for _, r in got})[:300])
    assert event_rows(table.take(rows)).equals(event_rows(dense.take(rows)))


def test_the_keeper_makes_event_rows_in_its_thread(attack_case, sigmahq_plan, monkeypatch):
    monkeypatch.setattr(run, "CHUNK_ROWS", 1500)  # several chunks: hit rows are kept
    threads: list[str] = []
    made = fnd.event_rows

    def spy(t: pa.Table) -> pa.Table:
        threads.append(threading.current_thread().name)
        return made(t)

    monkeypatch.setattr(fnd, "event_rows", spy)
    res = run.match(sigmahq_plan, attack_case, workers=1)
    assert res.kept_rows
    assert threads and all(n.startswith("keeper") for n in threads)
    assert not [t for t in threading.enumerate() if t.name.startswith("keeper")]


def test_an_error_making_event_rows_stops_the_match(attack_case, sigmahq_plan, monkeypatch):
    monkeypatch.setattr(run, "CHUNK_ROWS", 1500)

    def broken(t: pa.Table) -> pa.Table:
        raise MemoryError("event rows")

    monkeypatch.setattr(fnd, "event_rows", broken)
    with pytest.raises(MemoryError, match="event rows"):
        run.match(sigmahq_plan, attack_case, workers=1)
    assert not [t for t in threading.enumerate() if t.name.startswith("keeper")]
