"""A few seconds of each atheris harness in fuzz/, so CI proves they start, find their
seeds and do not crash on them (``make fuzz`` runs them for FUZZ_SECONDS each)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESSES = ["evtx", "evtx_native", "office", "lnk", "archive", "msg"]
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
    assert proc.returncode == 0, tail
    assert "Done" in tail or "stat::number_of_executed_units" in tail, tail
    assert not list(tmp_path.glob(f"{name}/crash-*")), tail
