"""Posture of a case built from the corpus EVTX samples, with the full SigmaHQ rule set."""

from __future__ import annotations

import jsonschema

from tests.unit.test_posture import LAYER_SCHEMA


def test_posture_on_corpus_evtx(sigmahq_plan, corpus, tmp_path):
    from tidehunt import engine
    from tidehunt.case.store import CaseStore
    from tidehunt.context import RunContext
    from tidehunt.detect.sigma.detector import SigmaDetector
    from tidehunt.detect.sigma.findings import build_findings
    from tidehunt.detect.sigma.run import match
    from tidehunt.ingest import ingest
    from tidehunt.posture import navigator_layer

    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(corpus("evtx/evtx-attack-samples")), str(corpus("evtx/deepbluecli"))], store,
           RunContext(), workers=2)
    detect, emit, _ = SigmaDetector(sigmahq_plan).select()
    findings, _ = build_findings(sigmahq_plan, match(sigmahq_plan, store, sorted(detect)),
                                 emit, with_hits=False)
    pos = engine.posture(store, sigmahq_plan, findings)
    counts = pos.counts()
    by = {t.id: t for t in pos.techniques}
    # the samples hold credential dumping, WMI, BITS and remote services among others
    for tid in ("T1003.001", "T1047", "T1197", "T1021.002"):
        assert by[tid].status == "fired", (tid, by[tid])
    assert counts["fired"] >= 20
    assert sum(counts.values()) == 78
    jsonschema.validate(navigator_layer(pos), LAYER_SCHEMA)
