"""Findings from the hit rows matching kept equal findings from parts read again."""

from __future__ import annotations

import tidehunt.detect.sigma.run as run
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.detect.sigma.findings import build_findings
from tidehunt.ingest import ingest


def test_findings_from_kept_hit_rows_equal_findings_from_the_parts(
        corpus, sigmahq_plan, tmp_path, monkeypatch):
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(corpus("evtx/evtx-attack-samples"))], store, RunContext(), workers=1)
    monkeypatch.setattr(run, "CHUNK_ROWS", 1500)  # several chunks: hit rows, not parts
    emit = set(sigmahq_plan.detection_rules())
    got = {}
    kept = {}
    for limit in (0, 600_000, 1 << 30):  # nothing kept, full part-way, everything kept
        monkeypatch.setattr(run, "KEEP_HIT_BYTES", limit)
        res = run.match(sigmahq_plan, store, workers=1)
        kept[limit] = dict(res.kept_rows or {})
        assert len(set(res.part.tolist())) > 2
        findings, hits = build_findings(sigmahq_plan, res, emit)
        got[limit] = (findings, hits)
    assert not kept[0]
    assert 0 < len(kept[600_000]) < len(kept[1 << 30])
    # every part with a hit is kept, each holding exactly its hit rows
    assert len(kept[1 << 30]) == len(set(res.part.tolist()))
    for p, rows in kept[1 << 30].items():
        assert rows.tolist() == sorted(set(res.row[res.part == p].tolist()))
    base, base_hits = got[0]
    assert base.num_rows > 500
    for limit in (600_000, 1 << 30):
        findings, hits = got[limit]
        assert findings.equals(base)  # the fields JSON byte for byte, and every column
        assert hits.equals(base_hits)
