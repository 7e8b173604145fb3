"""SigmaHQ regression samples: the rule each sample was made for must fire on it.

All samples (.evtx and their .json renderings) are ingested into one case per format and
matched once with the full SigmaHQ rule set from the corpus; each ground-truth row then
checks its own artefact's hits. Documented exceptions are listed in EXCEPTIONS.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import corpus_path

#: sample path -> why the expected rule cannot fire on it in tidehunt.
EXCEPTIONS: dict[str, str] = {}


def _ground_truth() -> list[dict[str, str]]:
    try:
        base = corpus_path("evtx/sigma-regression")
    except pytest.skip.Exception:
        return []
    with open(base / "ground_truth.csv", newline="") as fh:
        return list(csv.DictReader(fh))


ROWS = _ground_truth()


def _hits_by_sample(plan, tmp_path_factory, suffix: str) -> dict[str, set[str]]:
    from tidehunt.case.store import CaseStore
    from tidehunt.context import RunContext
    from tidehunt.detect.sigma.detector import SigmaDetector
    from tidehunt.detect.sigma.findings import build_findings
    from tidehunt.detect.sigma.run import match
    from tidehunt.ingest import ingest

    base = corpus_path("evtx/sigma-regression")
    samples = [str(base / Path(r["sample"]).with_suffix(suffix)) for r in ROWS]
    store = CaseStore(tmp_path_factory.mktemp("regr" + suffix.strip(".")), create=True)
    ingest([s for s in samples if Path(s).exists()], store, RunContext(), workers=1)
    det = SigmaDetector(plan)
    detect, emit, _ = det.select()
    res = match(plan, store, sorted(detect))
    findings, _ = build_findings(plan, res, emit | detect)
    by_art = {a: rec["display"] for a, rec in store.artefacts.items()}
    out: dict[str, set[str]] = defaultdict(set)
    for rid, ev in zip(findings.column("rule_id").to_pylist(),
                       findings.column("evidence").to_pylist(), strict=True):
        out[by_art[ev[0]["artefact"]]].add(rid)
    return out


@pytest.fixture(scope="module")
def evtx_hits(sigmahq_plan, tmp_path_factory):
    return _hits_by_sample(sigmahq_plan, tmp_path_factory, ".evtx")


@pytest.fixture(scope="module")
def json_hits(sigmahq_plan, tmp_path_factory):
    return _hits_by_sample(sigmahq_plan, tmp_path_factory, ".json")


def _check(hits: dict[str, set[str]], row: dict[str, str], suffix: str) -> None:
    base = corpus_path("evtx/sigma-regression")
    sample = str(base / Path(row["sample"]).with_suffix(suffix))
    if not Path(sample).exists():
        pytest.skip(f"no {suffix} rendering of this sample in the corpus")
    if row["sample"] in EXCEPTIONS:
        pytest.xfail(EXCEPTIONS[row["sample"]])
    got = hits.get(sample, set())
    assert row["rule_id"] in got, (
        f"{row['rule_title']} ({row['rule_id']}) did not fire on {sample}; "
        f"fired: {sorted(got)[:10]}")


@pytest.mark.parametrize("row", ROWS, ids=[r["rule_id"][:8] for r in ROWS])
def test_expected_rule_fires_on_evtx(evtx_hits, row):
    _check(evtx_hits, row, ".evtx")


@pytest.mark.parametrize("row", ROWS, ids=[r["rule_id"][:8] for r in ROWS])
def test_expected_rule_fires_on_json(json_hits, row):
    _check(json_hits, row, ".json")


def test_ground_truth_present():
    corpus_path("evtx/sigma-regression")  # skips when the corpus is absent
    assert len(ROWS) >= 200
