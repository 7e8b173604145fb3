"""--engine spark: the compiled Sigma plan on Spark (local mode, mapInArrow over the
case's Parquet) gives exactly the DuckDB engine's findings, on the demo case and on a case
built from ../shared/corpus/evtx."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.engine import HuntOptions, detect, run_ingest

pytest.importorskip("pyspark", reason="pyspark is a test dependency (pip install .[test])")
if shutil.which("java") is None:  # pragma: no cover - Java 17 is on every CI machine here
    pytest.skip("Spark needs Java (17 or newer) on PATH", allow_module_level=True)


def _findings(store: CaseStore, engine: str, rules: list[str] | None = None) -> list[tuple]:
    opts = HuntOptions(engine=engine, spark_master="local[2]", bundled_intel=False,
                       feeds=False, outputs=("jsonl",), rules=rules or [],
                       spark_conf={"spark.sql.shuffle.partitions": "4"})
    report = detect(store, RunContext(), opts)
    assert report.stats["analytics"]["failed"] == []
    rows = [json.loads(x) for x in (store.root / "findings.jsonl").read_text().splitlines()]
    return sorted((r["finding_id"], r["rule_id"], r["ts"], json.dumps(r["evidence"]),
                   json.dumps(r["fields"], sort_keys=True)) for r in rows)


def _compare(store: CaseStore, rules: list[str] | None = None) -> int:
    local = _findings(store, "duckdb", rules)
    spark = _findings(store, "spark", rules)
    assert local, "the case should give findings"
    assert spark == local
    return len(local)


def test_demo_case_same_findings(tmp_path: Path) -> None:
    from tidehunt.demo.generate import write_demo_evidence

    ev = tmp_path / "ev"
    write_demo_evidence(ev)
    store, _ = run_ingest([str(ev)], tmp_path / "case", RunContext(), workers=1)
    n = _compare(store)
    assert n >= 50  # the demo's Windows stages, correlations included


def test_corpus_evtx_case_same_findings(tmp_path: Path) -> None:
    from tests.conftest import corpus_path

    evtx = corpus_path("evtx")
    rules = corpus_path("sigma/rules/windows/process_creation")
    store, res = run_ingest([str(evtx)], tmp_path / "case", RunContext(), workers=2)
    assert res.records > 10_000
    n = _compare(store, [str(rules), str(corpus_path("sigma/rules/windows/builtin"))])
    assert n > 100
