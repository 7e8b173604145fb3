"""Ingest split across machines: two cases, each with half the evidence, merged into one
give the same rows and the same findings as one ingest of everything; merging again adds
nothing; a case cannot be merged into itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tidehunt.case.store import CaseStore
from tidehunt.cli.main import main
from tidehunt.errors import CaseError


def _findings(case: Path) -> list[tuple]:
    rows = [json.loads(x) for x in (case / "findings.jsonl").read_text().splitlines()]
    return sorted((r["finding_id"], r["rule_id"], json.dumps(r["evidence"])) for r in rows)


def test_split_ingest_merged_equals_one_ingest(tmp_path: Path) -> None:
    from tidehunt.demo.generate import write_demo_evidence

    ev = tmp_path / "ev"
    files = write_demo_evidence(ev)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for i, f in enumerate(files):  # two "machines", each with its share of the logs
        shutil.copy(f, (a if i % 2 else b) / f.name)
    everything = tmp_path / "all"
    everything.mkdir()
    for f in files:
        shutil.copy(f, everything / f.name)
    opts = ["--no-feeds", "--no-bundled-intel"]
    assert main(["-q", "ingest", str(a), "-o", str(tmp_path / "case-a")]) == 0
    assert main(["-q", "ingest", str(b), "-o", str(tmp_path / "case-b")]) == 0
    merged = tmp_path / "merged"
    assert main(["-q", "merge", str(tmp_path / "case-a"), str(tmp_path / "case-b"),
                 "-o", str(merged)]) == 0
    # the single ingest sees the same files (same names, same content) in one folder;
    # artefact ids include the path, so compare rows and findings by content
    assert main(["-q", "hunt", str(everything), "-o", str(tmp_path / "one"), *opts]) == 0
    assert main(["-q", "detect", str(merged), *opts]) == 0
    m, one = CaseStore(merged), CaseStore(tmp_path / "one")
    assert m.rows("windows") == one.rows("windows") > 1000
    q = "SELECT count(*), count(DISTINCT (host, record_id, channel)) FROM windows"
    assert m.sql(q).to_pylist() == one.sql(q).to_pylist()
    rules = lambda c: sorted(r[1] for r in _findings(c))  # noqa: E731
    assert rules(merged) == rules(tmp_path / "one")
    # merging again adds nothing
    before = m.rows("windows")
    assert main(["-q", "merge", str(tmp_path / "case-a"), "-o", str(merged)]) == 0
    assert CaseStore(merged).rows("windows") == before
    from tidehunt.case.merge import merge

    with pytest.raises(CaseError, match="itself"):
        merge([merged], merged)
