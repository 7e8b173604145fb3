"""A few seconds of each atheris harness in fuzz/, so CI proves they start, find their
seeds and do not crash on them (``make fuzz`` runs them for FUZZ_SECONDS each).

The EVTX harnesses can meet, in those seconds, an input the Rust parser loops on (one
mutation of a corpus file: docs/robustness.md, "A parser hang"): libFuzzer then reports a
timeout. That is the parser's known defect, not the harness's; such an input must instead
be what ingest defends, so it is ingested (the child parser's stall limit lowered) and the
run must end with the records it can give and the warning that says the parser was
stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESSES = ["evtx", "evtx_native", "office", "lnk", "archive", "msg"]
#: Harnesses whose libFuzzer timeout may be the Rust EVTX parser's loop (see above).
PARSER_LOOPS = {"evtx", "evtx_native"}
#: ingest of such an input, in a process of its own (a loop it failed to defend would
#: hang it), with the child parser stopped after 2 s without a record
INGEST_LOOP = """
import sys
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.ingest import ingest
from tidehunt.sources.evtx import EvtxSource
EvtxSource.stall_seconds = 2.0
ingest([sys.argv[1]], CaseStore(sys.argv[2], create=True), RunContext(), workers=1)
"""
SECONDS = int(os.environ.get("TIDEHUNT_FUZZ_SMOKE_SECONDS", "2"))


@pytest.mark.parametrize("name", HARNESSES)
def test_harness_runs(name, tmp_path):
    pytest.importorskip("atheris", reason="atheris is not installed (it ships Linux wheels "
                        "only); the harnesses in fuzz/ need it")
    env = {k: v for k, v in os.environ.items() if k != "TIDEHUNT_REQUIRE_CORPUS"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "run.py"), "--seconds", str(SECONDS),
         "--out", str(tmp_path), name], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=False)
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert not list(tmp_path.glob(f"{name}/crash-*")), tail
    loops = sorted(tmp_path.glob(f"{name}/timeout-*"))
    if proc.returncode != 0 and name in PARSER_LOOPS and loops:
        _ingest_defends(loops[0], tmp_path, tail)
        return
    assert proc.returncode == 0, tail
    assert "Done" in tail or "stat::number_of_executed_units" in tail, tail
    assert not list(tmp_path.glob(f"{name}/crash-*")), tail


def _ingest_defends(looping: Path, tmp_path: Path, tail: str) -> None:
    """ingest of an input the parser looped on ends, with the stall warning."""
    import json
    import shutil

    ev = tmp_path / "loop-evidence"
    ev.mkdir()
    shutil.copy(looping, ev / "loop.evtx")
    case = tmp_path / "loop-case"
    proc = subprocess.run([sys.executable, "-c", INGEST_LOOP, str(ev), str(case)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:] + "\n--\n" + tail
    (rec,) = json.loads((case / "manifest.json").read_text())["artefacts"].values()
    assert rec["status"] == "ingested", rec
    assert any("made no progress" in w["message"] for w in rec["warnings"]), (rec, tail)
