"""A case directory whose disk fills up during ``ingest``: the run stops with a clear error
and exit code 3, what earlier tasks committed stays recorded and intact (no evidence is
marked read without its rows), and the same command on a disk with space resumes to
exactly the rows of a clean run, none lost and none twice.

Two ways to fill the disk: the Parquet writer made to fail with ENOSPC after some bytes
(always), and a real 2 MiB tmpfs (when this process may mount one: root in a container
or a CI runner with the capability; skipped otherwise).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.robustness.helpers import log_bytes
from tidehunt.case.store import CaseStore
from tidehunt.cli.main import main
from tidehunt.context import RunContext
from tidehunt.ingest import ingest


def _evidence(root: Path, files: int = 8, lines: int = 20_000) -> Path:
    ev = root / "evidence"
    ev.mkdir()
    for i in range(files):
        body = log_bytes("access_log", lines).replace(b"/tok", f"/f{i}-".encode())
        (ev / f"access{i}.log").write_bytes(body)
    return ev


def _keys(case: Path) -> Counter[tuple[str, str]]:
    store = CaseStore(case)
    return Counter((r["_artefact"], r["_locator"]) for r in
                   store.sql("SELECT _artefact, _locator FROM web_access").to_pylist())


@pytest.fixture(scope="module")
def evidence(tmp_path_factory):
    root = tmp_path_factory.mktemp("full-disk")
    ev = _evidence(root)
    clean = root / "clean"
    ingest([str(ev)], CaseStore(clean, create=True), RunContext(), workers=1)
    return ev, _keys(clean)


def _consistent(case: Path) -> None:
    """Every artefact the manifest calls ingested has all its rows in the case."""
    store = CaseStore(case)
    have = Counter(k[0] for k in _keys(case))
    for aid, rec in store.artefacts.items():
        if rec["status"] == "ingested":
            assert rec["records"].get("web_access", 0) == have[aid] > 0, rec["display"]
        else:
            assert have[aid] == 0, rec["display"]


def _run(case: Path, ev: Path, capsys) -> tuple[int, str]:
    rc = main(["--workers", "1", "-q", "ingest", str(ev), "-o", str(case)])
    return rc, " ".join(capsys.readouterr().err.split())


def test_enospc_stops_with_a_clear_error_and_resumes_exactly(tmp_path, evidence, capsys,
                                                             monkeypatch):
    ev, clean = evidence
    real = pq.write_table
    written = [0]

    def filling(table, where, **kw):  # the disk holds 1 MB of parts, then it is full
        real(table, where, **kw)
        written[0] += Path(where).stat().st_size
        if written[0] > 1_000_000:
            with open(where, "r+b") as fh:
                fh.truncate(4096)  # what a full disk leaves: a torn file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))

    monkeypatch.setattr(pq, "write_table", filling)
    case = tmp_path / "case"
    rc, err = _run(case, ev, capsys)
    assert rc == 3, err
    assert "cannot write to the case: No space left on device" in err
    assert "run the same command again to resume" in err
    _consistent(case)
    done = Counter(k[0] for k in _keys(case))
    assert 0 < sum(done.values()) < sum(clean.values())  # stopped part-way
    assert not list((case / "tables").glob("*/.tmp-*")), "a torn part was left behind"

    monkeypatch.setattr(pq, "write_table", real)
    rc, err = _run(case, ev, capsys)
    assert rc == 0, err
    _consistent(case)
    assert _keys(case) == clean  # no row lost, none twice


def test_enospc_on_the_manifest_keeps_the_previous_one(tmp_path, monkeypatch):
    case = tmp_path / "case"
    store = CaseStore(case, create=True)
    store.save()
    before = (case / "manifest.json").read_bytes()
    real = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    from tidehunt.errors import CaseError

    with pytest.raises(CaseError, match="No space left on device"):
        store.save()
    monkeypatch.setattr(os, "fsync", real)
    assert (case / "manifest.json").read_bytes() == before
    assert not list(case.glob(".manifest-*"))


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, check=False)
    return done.returncode == 0


def test_real_full_tmpfs(tmp_path, evidence, capsys):
    ev, clean = evidence
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "2m"):
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN); the ENOSPC "
                    "case above emulates it")
    try:
        case = disk / "case"
        rc, err = _run(case, ev, capsys)
        assert rc == 3, err
        assert "No space left on device" in err and "to resume" in err
        _consistent(case)
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        rc, err = _run(case, ev, capsys)
        assert rc == 0, err
        _consistent(case)
        assert _keys(case) == clean
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
