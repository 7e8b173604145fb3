"""Matching in worker processes gives exactly the hits of matching in-process."""

from __future__ import annotations

import numpy as np

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
