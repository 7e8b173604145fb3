"""``tidehunt ingest`` killed with SIGKILL part-way, twice (once just after a task's parts
were renamed into place but before the manifest listed them, once after it did), then
run again to the end: the case holds exactly the rows of one clean run, by
(``_artefact``, ``_locator``), none lost and none twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.robustness.helpers import log_bytes
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.ingest import ingest

TABLES = ("windows", "web_access")


def _keys(case: Path) -> Counter[tuple[str, str, str]]:
    store = CaseStore(case)  # opening removes what a killed run left unlisted
    out: Counter[tuple[str, str, str]] = Counter()
    for t in TABLES:
        if not store.parts(t):
            continue
        for r in store.sql(f"SELECT _artefact, _locator FROM {t}").to_pylist():
            out[(t, r["_artefact"], r["_locator"])] += 1
    return out


@pytest.fixture(scope="module")
def evidence(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    ev = root / "evidence"
    ev.mkdir()
    for i in range(6):
        (ev / f"events{i:02d}.json").write_bytes(
            log_bytes("windows_json", 12_000).replace(b"tok", f"f{i}x".encode()))
    for i in range(3):
        (ev / f"access{i:02d}.log").write_bytes(
            log_bytes("access_log", 40_000).replace(b"/tok", f"/f{i}-".encode()))
    clean = root / "clean"
    ingest([str(ev)], CaseStore(clean, create=True), RunContext(), workers=1)
    return ev, _keys(clean)


def _start(ev: Path, case: Path) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from tidehunt.cli.main import main; "
         "sys.exit(main())", "--workers", "1", "-q", "ingest", str(ev), "-o", str(case)],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)  # its own process group: the kill takes it all


def _kill_when(proc: subprocess.Popen[bytes], ready, timeout: float = 120) -> bool:
    """SIGKILL the run as soon as ``ready()``; True if it was still running then."""
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            if proc.poll() is not None:
                return False
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
                return True
            time.sleep(0.01)
        raise AssertionError("the ingest neither finished nor reached the kill point")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        if proc.stderr:
            proc.stderr.close()


def _listed_parts(case: Path) -> int:
    try:
        return len(json.loads((case / "manifest.json").read_bytes()).get("parts", {}))
    except (OSError, ValueError):
        return 0  # not written yet, or being replaced


def _renamed_parts(case: Path) -> int:
    return sum(1 for p in case.glob("tables/*/*.parquet") if not p.name.startswith(".tmp-"))


def test_sigkill_twice_then_resume_equals_one_clean_run(tmp_path, evidence):
    ev, clean = evidence
    case = tmp_path / "case"

    # 1: as soon as a task's parts are renamed into place (the manifest may not list them)
    killed = _kill_when(_start(ev, case), lambda: _renamed_parts(case) > 0)
    assert killed, "the first run finished before it could be killed"
    first = _keys(case)
    assert sum(first.values()) < sum(clean.values())
    assert all(n == 1 for n in first.values())
    assert not list(case.glob("tables/*/.tmp-*"))  # reopening removed the leftovers

    # 2: once the manifest lists more parts than the first run left
    listed = _listed_parts(case)
    killed = _kill_when(_start(ev, case), lambda: _listed_parts(case) > listed)
    second = _keys(case)
    assert all(n == 1 for n in second.values())
    assert set(first) <= set(second) or not killed  # what was listed stays

    # 3: to the end
    done = _start(ev, case)
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err.decode(errors="replace")
    assert _keys(case) == clean
    store = CaseStore(case)
    assert all(a["status"] == "ingested" for a in store.artefacts.values())
    assert sum(sum(a["records"].values()) for a in store.artefacts.values()) == \
        sum(clean.values())
