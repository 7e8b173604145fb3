"""Evidence that changes under ``ingest``: a file deleted between planning and reading,
and a file whose disk fails part-way through (EIO). The run completes, the error says what
happened, the other files are ingested, and a re-run neither loses nor duplicates rows.
"""

from __future__ import annotations

import errno
import io
from pathlib import Path

import tidehunt.ingest as ingest_mod
from tests.robustness.helpers import log_bytes
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.ingest import ingest
from tidehunt.sources.base import Artefact


def _evidence(tmp_path: Path) -> Path:
    ev = tmp_path / "evidence"
    ev.mkdir()
    for i in range(3):
        (ev / f"access{i}.log").write_bytes(log_bytes("access_log", 50 + i))
    return ev


def _keys(store: CaseStore, table: str) -> list[tuple[str, str]]:
    return [(r["_artefact"], r["_locator"]) for r in
            store.sql(f"SELECT _artefact, _locator FROM {table}").to_pylist()]


def test_file_deleted_between_plan_and_read(tmp_path, monkeypatch):
    ev = _evidence(tmp_path)
    victim = ev / "access1.log"
    kept = victim.read_bytes()
    real = ingest_mod.run_task

    def run_task(root, task, *args, **kw):
        for item in task:
            if item.path == victim.resolve() and victim.exists():
                victim.unlink()  # hashed and sniffed, then gone
        return real(root, task, *args, **kw)

    monkeypatch.setattr(ingest_mod, "run_task", run_task)
    store = CaseStore(tmp_path / "case", create=True)
    res = ingest([str(ev)], store, RunContext(), workers=1)
    assert (res.ingested, res.failed, res.records) == (2, 1, 50 + 52)
    rec = next(a for a in store.artefacts.values() if a["display"].endswith("access1.log"))
    assert rec["status"] == "failed"
    assert rec["error"].startswith("unreadable: No such file or directory")
    assert "internal error" not in rec["error"]
    assert any("access1.log" in e and "unreadable" in e for e in res.errors)

    monkeypatch.setattr(ingest_mod, "run_task", real)
    victim.write_bytes(kept)  # the file is back: the re-run reads it, and only it
    res2 = ingest([str(ev)], CaseStore(tmp_path / "case"), RunContext(), workers=1)
    assert (res2.ingested, res2.skipped, res2.records) == (1, 2, 51)
    keys = _keys(CaseStore(tmp_path / "case"), "web_access")
    assert len(keys) == len(set(keys)) == 50 + 51 + 52


class _FailingRaw(io.RawIOBase):
    """A file whose bytes from ``at`` on cannot be read (a failing disk: EIO)."""

    def __init__(self, path: Path, at: int) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed with the stream
        self._at = at

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._fh.seek(pos, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def readinto(self, b) -> int:
        pos = self._fh.tell()
        if pos >= self._at:
            raise OSError(errno.EIO, "Input/output error")
        n = self._fh.readinto(memoryview(b)[: self._at - pos])
        return n or 0

    def close(self) -> None:
        self._fh.close()
        super().close()


def test_read_error_part_way_keeps_the_rows_before_it(tmp_path, monkeypatch):
    ev = tmp_path / "evidence"
    ev.mkdir()
    data = log_bytes("windows_json", 3000)
    (ev / "events.json").write_bytes(data)
    (ev / "access.log").write_bytes(log_bytes("access_log", 40))
    at = 64 * 1024 * 4  # whole 8 KiB buffers; the lines that end before it are read
    real_open = Artefact.open

    def failing_open(self):
        if self.path.name == "events.json":
            return io.BufferedReader(_FailingRaw(self.path, at))
        return real_open(self)

    monkeypatch.setattr(Artefact, "open", failing_open)
    store = CaseStore(tmp_path / "case", create=True)
    res = ingest([str(ev)], store, RunContext(), workers=1)
    before = data[:at].count(b"\n")
    rec = next(a for a in store.artefacts.values() if a["display"].endswith("events.json"))
    assert rec["status"] == "ingested" and rec["partial"] is True
    assert rec["records"] == {"windows": before}
    assert "Input/output error" in rec["error"]
    stopped = [w for w in rec["warnings"] if "reading stopped by an error" in w["message"]]
    assert stopped and f"after {before} records" in stopped[0]["message"]
    assert stopped[0]["path"].endswith("events.json")
    assert res.records == before + 40

    monkeypatch.setattr(Artefact, "open", real_open)
    res2 = ingest([str(ev)], CaseStore(tmp_path / "case"), RunContext(), workers=1)
    assert res2.skipped == 2 and res2.records == 0  # read once: a re-run adds nothing
    keys = _keys(CaseStore(tmp_path / "case"), "windows")
    assert len(keys) == len(set(keys)) == before
