"""A log line of 64 MiB (default run) and of 2 GiB (``slow``), in every text log type:
the line is cut at 1 MiB (line readers) or skipped (JSON events over 16 MiB), a warning
says so and names the file and the line, the records around it are kept with their true
line numbers, and memory stays bounded whatever the line's length.

The long lines are holes in sparse files (NUL bytes the file system does not store), so
neither run writes gigabytes to disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from tests.robustness.helpers import LINE_READERS, LOGS, log_bytes, log_lines, read
from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.ingest import ingest
from tidehunt.sources._lines import LONG_LINE

MiB = 1 << 20


def sparse_log(path: Path, kind: str, line_bytes: int) -> list[str]:
    """Header, 3 records, one line of ``line_bytes`` NULs (a hole), 3 records; returns the
    locators of the six records."""
    lines = log_lines(kind, 6)
    h = len(LOGS[kind][1])
    with open(path, "wb") as fh:
        fh.write(("\n".join(lines[:h + 3]) + "\n").encode())
        fh.seek(line_bytes, os.SEEK_CUR)
        fh.write(("\n" + "\n".join(lines[h + 3:]) + "\n").encode())
    return [f"line {h + n}" for n in (1, 2, 3, 5, 6, 7)]


def _warm(tmp_path: Path, kind: str) -> None:
    """Read a small file first, so that imports do not count as the reader's memory."""
    p = tmp_path / f"warm-{kind}"
    p.write_bytes(log_bytes(kind, 3))
    read(p)


@pytest.mark.parametrize("kind", LINE_READERS)
def test_64mib_line_is_cut_in_bounded_memory(tmp_path, kind):
    _warm(tmp_path, kind)
    p = tmp_path / "long.log"
    want = sparse_log(p, kind, 64 * MiB)
    long_line = f"line {len(LOGS[kind][1]) + 4}"
    tracemalloc.start()
    try:
        table, ctx, cls = read(p, display="long.log")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert LOGS[kind][0] == cls.NAME
    assert sorted(table.column("_locator").to_pylist()) == sorted(want)  # true line numbers
    cut = [w for w in ctx.warnings if w.message == LONG_LINE]
    assert len(cut) == 1 and cut[0].locators == (long_line,) and cut[0].path == "long.log"
    assert peak < 24 * MiB, f"{peak / MiB:.0f} MiB held for a 64 MiB line"


def test_long_line_cut_at_a_character_boundary(tmp_path):
    """A 3 MiB request line of two-byte letters: cut inside none of them, so no spurious
    'not UTF-8' warning; the record after it keeps its line number."""
    lines = log_lines("access_log", 3)
    long = lines[1].replace("/tok2/p", "/x" + "\u00e9" * (3 * MiB // 2))
    p = tmp_path / "access.log"
    p.write_bytes(("\n".join([lines[0], "X" + long, lines[2]]) + "\n").encode())
    table, ctx, _ = read(p, display="access.log")
    assert sorted(table.column("_locator").to_pylist()) == ["line 1", "line 3"]
    msgs = {w.message: w for w in ctx.warnings}
    assert msgs[LONG_LINE].locators == ("line 2",)
    assert not any("UTF-8" in m for m in msgs)


def test_windows_json_line_of_64mib_is_skipped(tmp_path):
    _warm(tmp_path, "windows_json")
    p = tmp_path / "events.json"
    want = sparse_log(p, "windows_json", 64 * MiB)
    tracemalloc.start()
    try:
        table, ctx, _ = read(p, display="events.json")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sorted(table.column("_locator").to_pylist()) == sorted(want)
    skipped = [w for w in ctx.warnings if "longer than 16 MiB" in w.message]
    assert skipped and skipped[0].locators == ("line 4",) and skipped[0].path == "events.json"
    assert peak < 40 * MiB, f"{peak / MiB:.0f} MiB held for a 64 MiB line"


def test_windows_json_value_never_closed(tmp_path):
    """Pretty-printed events, then a value that never closes (40 MiB), then events."""
    events = [json.loads(x) for x in log_lines("windows_json", 5)]
    pretty = [json.dumps(e, indent=1) for e in events]
    body = "\n".join(pretty[:2]) + '\n{"Event": {"EventData": {"x": "' + "A" * (40 * MiB) \
        + "\n" + "\n".join(pretty[2:]) + "\n"
    p = tmp_path / "events.json"
    p.write_text(body)
    table, ctx, _ = read(p, display="events.json")
    assert sorted(table.column("record_id").to_pylist()) == [1, 2, 3, 4, 5]
    assert any("not closed within 16 MiB" in w.message and w.path == "events.json"
               for w in ctx.warnings)


def test_auth_csv_cell_of_64mib(tmp_path):
    """The sign-in CSV reader reads the file whole (up to 1 GiB); the CSV module refuses a
    cell over its limit: the rows before are kept and a warning names the line."""
    p = tmp_path / "signins.csv"
    want = sparse_log(p, "auth_csv", 64 * MiB)
    table, ctx, _ = read(p, display="signins.csv")
    assert sorted(table.column("_locator").to_pylist())[:3] == want[:3]
    assert any("line 5" in w.locators and w.path == "signins.csv" for w in ctx.warnings)


def test_a_file_of_one_64mib_line_is_reported_not_read(tmp_path):
    ev = tmp_path / "evidence"
    ev.mkdir()
    with open(ev / "blob.log", "wb") as fh:
        fh.write(b"10.0.0.1 - - ")
        fh.truncate(64 * MiB)
    (ev / "access.log").write_bytes(log_bytes("access_log", 5))
    store = CaseStore(tmp_path / "case", create=True)
    res = ingest([str(ev)], store, RunContext(), workers=1)
    assert (res.ingested, res.unsupported, res.records) == (1, 1, 5)
    blob = next(a for a in store.artefacts.values() if a["display"].endswith("blob.log"))
    assert blob["status"] == "unsupported"
    assert any("no reader recognises" in w["message"] for w in blob["warnings"])


_CHILD = r"""
import json, resource, sys
from pathlib import Path
from tests.robustness.helpers import read
out = {}
for arg in sys.argv[1:]:
    table, ctx, cls = read(Path(arg), display=arg)
    out[arg] = {"rows": sorted(table.column("_locator").to_pylist()),
                "warnings": [[w.message, list(w.locators)] for w in ctx.warnings]}
out["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(out))
"""


@pytest.mark.slow
def test_2gib_line_in_every_text_log_type(tmp_path):
    """The true 2 GiB case, read in a child process whose peak RSS is measured."""
    files, want = [], {}
    for kind in (*LINE_READERS, "windows_json"):
        p = tmp_path / f"{kind}.log"
        want[str(p)] = sparse_log(p, kind, 2 << 30)
        files.append(str(p))
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", _CHILD, *files], capture_output=True,
                          text=True, timeout=900, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)}, check=True)
    out = json.loads(done.stdout)
    for f in files:
        assert out[f]["rows"] == sorted(want[f]), f
        assert any("longer than" in m for m, _ in out[f]["warnings"]), out[f]["warnings"]
    assert out["maxrss_kib"] < 512 * 1024, f"peak RSS {out['maxrss_kib'] >> 10} MiB"
