"""The bundled tidehunt pack stays quiet on benign background logs."""

from __future__ import annotations

import json


def test_no_high_or_critical_finding_on_benign_corpus(corpus, tmp_path):
    from tidehunt.cli.main import main
    from tidehunt.rulepacks import bundled_pack

    case = tmp_path / "benign"
    assert main(["-q", "hunt", str(corpus("evtx-benign")), "-o", str(case),
                 "-r", str(bundled_pack())]) == 0
    report = json.loads((case / "report.json").read_text())
    assert report["stats"]["sigma"]["events"] > 10_000  # the whole benign set was read
    loud = [json.loads(x) for x in (case / "findings.jsonl").read_text().splitlines()]
    loud = [(f["rule_title"], f["evidence"][0]["source_file"]) for f in loud
            if f["level"] in ("high", "critical")]
    assert loud == []
