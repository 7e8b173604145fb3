"""Case store: manifest, resume after a kill, skip of known evidence, copies kept apart."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.errors import CaseError, NoUsableInput
from tidehunt.ingest import ingest


def _events(path: Path, n: int, start: int = 0) -> Path:
    lines = []
    for i in range(start, start + n):
        lines.append(json.dumps({"Event": {"System": {
            "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
            "EventID": 1, "EventRecordID": i, "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Computer": "ws1", "TimeCreated": {"#attributes": {
                "SystemTime": "2026-10-06T01:00:00Z"}}},
            "EventData": {"Image": f"C:\\p{i}.exe", "CommandLine": f"p{i} -x"}}}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _keys(store: CaseStore) -> list[tuple[str, str]]:
    t = store.sql("SELECT _artefact, _locator FROM windows")
    return list(zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True))


def test_manifest_records_evidence(tmp_path):
    ev = _events(tmp_path / "a.json", 5)
    before = (ev.read_bytes(), ev.stat().st_mtime_ns)
    store = CaseStore(tmp_path / "case", create=True)
    res = ingest([str(ev)], store, RunContext(), workers=1)
    assert res.ingested == 1 and res.records == 5
    doc = json.loads((tmp_path / "case" / "manifest.json").read_text())
    (rec,) = doc["artefacts"].values()
    assert rec["path"] == str(ev.resolve()) and rec["size"] == ev.stat().st_size
    assert len(rec["sha256"]) == 64 and rec["reader"] == "windows_json"
    assert rec["records"] == {"windows": 5} and rec["status"] == "ingested"
    assert doc["schema_version"] >= 1 and doc["tool_version"]
    assert (tmp_path / "case" / "case.duckdb").exists()
    assert (ev.read_bytes(), ev.stat().st_mtime_ns) == before  # evidence untouched


def test_rerun_skips_known_and_adds_new(tmp_path):
    a = _events(tmp_path / "a.json", 5)
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(a)], store, RunContext(), workers=1)
    b = _events(tmp_path / "b.json", 3, start=100)
    res = ingest([str(a), str(b)], CaseStore(tmp_path / "case"), RunContext(), workers=1)
    assert (res.skipped, res.ingested, res.records) == (1, 1, 3)
    keys = _keys(CaseStore(tmp_path / "case"))
    assert len(keys) == 8 == len(set(keys))


def test_new_files_are_hashed_by_the_task_that_reads_them(corpus, tmp_path, monkeypatch):
    """Files the case has no record of are hashed in the task that reads them (an EVTX
    file from the same bytes it parses): the manifest's digests and ids are those of the
    files; on a re-run, the files it holds are hashed while planning, and skipped."""
    import hashlib

    import tidehunt.ingest as ing

    src = sorted(corpus("evtx/evtx-attack-samples").rglob("*.evtx"))[:6]
    ev = [*map(str, src), str(_events(tmp_path / "a.json", 5))]
    scanned: list[Path] = []  # hashed while planning (not by a task)
    in_task: list[bool] = []
    real_scan = ing._scan

    def scan_spy(p, buf=None):
        if not in_task:
            scanned.append(p)
        return real_scan(p, buf)

    monkeypatch.setattr(ing, "_scan", scan_spy)
    kept: list[bool] = []
    real_hash = ing.hash_in_task

    def hash_spy(item):
        in_task.append(True)
        try:
            got = real_hash(item)
        finally:
            in_task.clear()
        kept.append(got is not None)
        return got

    monkeypatch.setattr(ing, "hash_in_task", hash_spy)
    store = CaseStore(tmp_path / "case", create=True)
    res = ingest(ev, store, RunContext(), workers=1)
    assert res.ingested == 7 and not scanned  # nothing hashed while planning
    assert kept == [True] * 6 + [False]  # EVTX bytes kept for the reader, not JSON's
    for aid, rec in store.artefacts.items():
        data = Path(rec["path"]).read_bytes()
        assert rec["sha256"] == hashlib.sha256(data).hexdigest()
        assert aid == ing.artefact_id(Path(rec["path"]), rec["sha256"])
        assert rec["size"] == len(data) and rec["records"]["windows"] > 0
    rows = store.rows("windows")
    res = ingest(ev, CaseStore(tmp_path / "case"), RunContext(), workers=1)
    assert (res.skipped, res.ingested) == (7, 0) and len(scanned) == 7
    assert CaseStore(tmp_path / "case").rows("windows") == rows


def test_identical_copies_are_separate_evidence(tmp_path):
    a = _events(tmp_path / "a.json", 4)
    (tmp_path / "copy").mkdir()
    b = Path(shutil.copy(a, tmp_path / "copy" / "a.json"))
    store = CaseStore(tmp_path / "case", create=True)
    res = ingest([str(a), str(b)], store, RunContext(), workers=1)
    assert res.ingested == 2 and res.records == 8
    arts = {r["path"] for r in store.artefacts.values()}
    assert arts == {str(a.resolve()), str(b.resolve())}


def test_leftovers_of_a_killed_run_are_removed(tmp_path):
    a = _events(tmp_path / "a.json", 5)
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(a)], store, RunContext(), workers=1)
    tdir = tmp_path / "case" / "tables" / "windows"
    pq.write_table(pa.table({"x": [1]}), tdir / "orphan.parquet")
    (tdir / ".tmp-123.parquet").write_bytes(b"partial")
    again = CaseStore(tmp_path / "case")
    assert not (tdir / "orphan.parquet").exists() and not (tdir / ".tmp-123.parquet").exists()
    assert len(_keys(again)) == 5


def test_kill_mid_ingest_then_resume(tmp_path):
    """SIGKILL a real ingest part-way; the re-run ends with every event exactly once."""
    evidence = tmp_path / "ev"
    evidence.mkdir()
    for i in range(40):
        _events(evidence / f"f{i:02d}.json", 400, start=i * 1000)
    case = tmp_path / "case"
    cmd = [sys.executable, "-m", "tidehunt.cli.main", "-q", "--workers", "1", "ingest",
           str(evidence), "-o", str(case)]
    proc = subprocess.Popen(cmd)
    deadline = time.time() + 60
    killed = False
    while time.time() < deadline and proc.poll() is None:
        m = case / "manifest.json"
        if m.exists():
            try:
                n = sum(1 for r in json.loads(m.read_text())["artefacts"].values()
                        if r["status"] == "ingested")
            except (ValueError, KeyError):
                n = 0
            if n:
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
        time.sleep(0.005)
    proc.wait()
    res = ingest([str(evidence)], CaseStore(case, create=True), RunContext(), workers=1)
    keys = _keys(CaseStore(case))
    assert len(keys) == 40 * 400 == len(set(keys))
    print('killed', killed, 'skipped', res.skipped, 'ingested', res.ingested)
    if killed:
        assert res.skipped >= 1


def test_not_a_case(tmp_path):
    with pytest.raises(CaseError):
        CaseStore(tmp_path / "nope")


def test_no_usable_input(tmp_path):
    (tmp_path / "x.txt").write_text("not evidence\n")
    store = CaseStore(tmp_path / "case", create=True)
    with pytest.raises(NoUsableInput):
        ingest([str(tmp_path / "x.txt")], store, RunContext(), workers=1)
    rec = next(iter(store.artefacts.values()))
    assert rec["status"] == "unsupported"


def test_parallel_ingest_same_rows_as_serial(corpus, tmp_path):
    src = corpus("evtx/evtx-attack-samples")
    a = CaseStore(tmp_path / "serial", create=True)
    calls: list[str] = []
    ingest([str(src)], a, RunContext(), workers=1, under_way=lambda: calls.append("serial"))
    b = CaseStore(tmp_path / "parallel", create=True)
    import tidehunt.ingest as ing

    old = ing.IN_PROCESS_BYTES
    ing.IN_PROCESS_BYTES = 0  # force the worker pool even for this small input
    try:
        files, pool = ing._walk_starting_workers([str(src)], RunContext(), 2)
        assert pool is not None  # started during the walk, past IN_PROCESS_BYTES
        import gc

        from tidehunt.memory import GC_YOUNG

        assert pool.submit(gc.get_threshold).result()[0] == GC_YOUNG  # tune_gc ran there
        pool.shutdown()
        assert files == list(ing.iter_files([str(src)], RunContext()))
        ingest([str(src)], b, RunContext(), workers=2,
               under_way=lambda: calls.append("parallel"))
    finally:
        ing.IN_PROCESS_BYTES = old
    assert calls == ["serial", "parallel"]  # once each: in-process, every worker busy
    assert sorted(_keys(a)) == sorted(_keys(b))
    assert a.rows("windows") == 5079
    # parts of other sizes (one task, and tasks per worker), the same columns in the same
    # order: declared ones first, the others by name, so an event's fields JSON (in the
    # order of its part's columns) is the same byte for byte however files were grouped
    from tidehunt.detect.sigma.findings import event_columns
    from tidehunt.model.tables import WINDOWS

    declared = [f.name for f in WINDOWS.fields]
    fields: list[dict[tuple[str, str], str]] = []
    for store in (a, b):
        got = {}
        for p in store.parts("windows"):
            t = pq.read_table(p)
            rest = [c for c in t.column_names if c not in declared]
            assert t.column_names == [c for c in declared if c in t.column_names] + sorted(rest)
            js = event_columns(t)["fields"].to_pylist()
            for k, f in zip(zip(t.column("_artefact").to_pylist(),
                                t.column("_locator").to_pylist(), strict=True), js, strict=True):
                got[k] = f
        fields.append(got)
    assert len(a.parts("windows")) != len(b.parts("windows"))
    assert fields[0] == fields[1]


def test_row_defects_reach_the_manifest_of_their_own_file(tmp_path):
    # one worker reads both files into one shared buffer; time and event ID are checked
    # in bulk when that buffer is flushed, after both files were read
    good = _events(tmp_path / "good.json", 3)
    bad = tmp_path / "bad.json"
    lines = good.read_text().splitlines()
    rows = [json.loads(x) for x in lines]
    rows[1]["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"] = "yesterday"
    rows[2]["Event"]["System"]["EventID"] = "four"
    bad.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    store = CaseStore(tmp_path / "case", create=True)
    res = ingest([str(good), str(bad)], store, RunContext(), workers=1)
    assert res.records == 6 and res.warnings == 2
    doc = json.loads((tmp_path / "case" / "manifest.json").read_text())
    by_name = {Path(r["path"]).name: r for r in doc["artefacts"].values()}
    assert by_name["good.json"]["warnings"] == []
    warns = {w["message"]: w for w in by_name["bad.json"]["warnings"]}
    assert warns["unreadable event time (kept with no time)"]["locators"] == ["line 2"]
    assert warns["unreadable event ID (kept with no event ID)"]["locators"] == ["line 3"]


def test_planning_hashes_and_heads_every_file_in_order(tmp_path):
    """The hashing thread's batches: SHA-256 and head of each file (empty, around the
    head size, several read blocks), in the order given, an unreadable file in its place."""
    import hashlib
    import os
    from concurrent.futures import ThreadPoolExecutor

    from tidehunt.ingest import HEAD, PLAN_AHEAD, SCAN_BLOCK, _ahead

    sizes = [0, 1, HEAD - 1, HEAD, HEAD + 1, 2 * SCAN_BLOCK + 17]
    files = []
    for i in range(PLAN_AHEAD + 37):  # more than in flight at once: the queue refills
        p = tmp_path / f"f{i:03d}"
        if i == 40:
            files.append((p, str(p), 0))  # never created: unreadable
            continue
        p.write_bytes(os.urandom(sizes[i % len(sizes)]))
        files.append((p, str(p), p.stat().st_size))
    with ThreadPoolExecutor(max_workers=1) as pool:
        got = list(_ahead(pool, files))
    assert len(got) == len(files)
    for (p, _, _), res in zip(files, got, strict=True):
        if not p.exists():
            assert isinstance(res, OSError)
            continue
        data = p.read_bytes()
        assert res == (len(data), hashlib.sha256(data).hexdigest(), data[:HEAD])


def test_tasks_shrink_as_the_evidence_runs_out():
    """Guided task sizes: large tasks first, smaller ones at the end, each file in one
    task in its order, a file at least the task size alone."""
    from tidehunt.ingest import MAX_TASK_BYTES, MIN_TASK_BYTES, Planned, stream_tasks

    mib = 1 << 20
    sizes = [3 * mib] * 400 + [300 * mib] + [3 * mib] * 100
    items = [Planned(f"a{i}", Path(f"/e/{i}"), f"{i}", s, "") for i, s in enumerate(sizes)]
    tasks = list(stream_tasks(items, sum(sizes), 2))
    assert sorted(i.id for t in tasks for i in t) == sorted(i.id for i in items)
    assert [i.id for t in tasks for i in t if len(t) > 1] == \
        [i.id for i in items if i.size < 300 * mib]  # order kept
    big = [t for t in tasks if any(i.size == 300 * mib for i in t)]
    assert len(big) == 1 and len(big[0]) == 1
    task_bytes = [sum(i.size for i in t) for t in tasks if len(t) > 1]
    assert task_bytes[0] >= MAX_TASK_BYTES  # the first task is as large as allowed
    assert all(b < MAX_TASK_BYTES + 3 * mib for b in task_bytes)
    assert task_bytes[-2] <= MIN_TASK_BYTES + 3 * mib  # the last ones are the smallest
    assert task_bytes == sorted(task_bytes, reverse=True)
    assert len(tasks) < 25  # 1.8 GiB: not the 28 tasks of 64 MiB it was cut into


def test_parts_of_large_events_are_cut_by_bytes_too(tmp_path, monkeypatch):
    """A buffer flushes once its events hold FLUSH_BYTES, and a task's rows go to a new
    part once they hold PART_BYTES, not only every FLUSH_ROWS / PART_ROWS rows: large
    events (script blocks) make parts that matching can hold as one chunk and whose hits'
    fields JSON fits one Arrow string array. Every event is still in the case once, and
    a rule hits each of them."""
    import tidehunt.ingest as ingest_mod
    from tests.unit.test_sigma_engine import hunt, rule_text, write_events
    from tidehunt.sources import _winrows

    monkeypatch.setattr(ingest_mod, "PART_BYTES", 1 << 20)
    monkeypatch.setattr(_winrows, "FLUSH_BYTES", 1 << 20)
    block = "Write-Host 'x'; " * 4096  # 64 KiB a script block
    ev = write_events(tmp_path / "ps.json", [{"ScriptBlockText": f"{i} {block}"}
                                             for i in range(60)],
                      channel="Microsoft-Windows-PowerShell/Operational", event_id=4104)
    found, _ = hunt(tmp_path, [rule_text(
        {"sel": {"ScriptBlockText|contains": "Write-Host"}, "condition": "sel"},
        logsource={"product": "windows", "category": "ps_script"})], [ev])
    store = CaseStore(tmp_path / "case")
    rows = [pq.ParquetFile(p).metadata.num_rows for p in store.parts("windows")]
    assert sum(rows) == 60 and len(rows) > 1  # cut by bytes: 60 rows, far below PART_ROWS
    assert found.num_rows == 60
    assert sorted(json.loads(f)["ScriptBlockText"].split(" ", 1)[0]
                  for f in found.column("fields").to_pylist()) == sorted(map(str, range(60)))


def test_part_columns_do_not_depend_on_batch_order(tmp_path):
    from tidehunt.case.store import write_part
    from tidehunt.model.batch import TableBatch

    def batch(cols: dict[str, list[str]]) -> pa.RecordBatch:
        n = len(next(iter(cols.values())))
        return TableBatch.of("windows", {k: pa.array(v) for k, v in cols.items()},
                             source="t", artefact="a", locator=pa.array(["1"] * n)).data

    x = batch({"Image": ["a.exe"], "CommandLine": ["a"]})
    y = batch({"TargetFilename": ["c:\\t"], "Image": ["b.exe"], "Details": ["d"]})
    _, one = write_part(tmp_path / "1.parquet", [x, y], "windows")
    _, two = write_part(tmp_path / "2.parquet", [y, x], "windows")
    assert one == two
    assert one[-4:] == ["CommandLine", "Details", "Image", "TargetFilename"]
    _, seen = write_part(tmp_path / "3.parquet", [y, x])  # no table: order first seen
    assert seen.index("TargetFilename") < seen.index("CommandLine")


def test_windows_parts_have_no_dictionary_pages(tmp_path):
    """The wide ``windows`` parts read in about half the time without them (see
    ``write_part``); narrow tables keep them. Both read back to the same values."""
    from tidehunt.case.store import write_part
    from tidehunt.model.batch import TableBatch

    def dictionary_columns(path: Path) -> set[str]:
        meta = pq.ParquetFile(path).metadata
        rg = meta.row_group(0)
        return {rg.column(i).path_in_schema for i in range(rg.num_columns)
                if any("DICTIONARY" in e for e in rg.column(i).encodings)}

    cols = {"Image": ["a.exe", "b.exe", "a.exe"], "CommandLine": ["x", "y", "x"]}
    win = TableBatch.of("windows", {k: pa.array(v) for k, v in cols.items()},
                        source="t", artefact="a", locator=pa.array(["1", "2", "3"])).data
    write_part(tmp_path / "w.parquet", [win], "windows")
    write_part(tmp_path / "o.parquet", [win])  # no table: the writer's default
    assert dictionary_columns(tmp_path / "w.parquet") == set()
    assert {"Image", "CommandLine"} <= dictionary_columns(tmp_path / "o.parquet")
    assert pq.read_table(tmp_path / "w.parquet").column("Image").to_pylist() == \
        pq.read_table(tmp_path / "o.parquet").column("Image").to_pylist() == cols["Image"]


def test_tasks_are_sized_by_the_evidence_not_yet_in_the_case(tmp_path):
    from tidehunt.ingest import fresh_bytes, iter_files

    (tmp_path / "ev").mkdir()
    a = _events(tmp_path / "ev" / "a.json", 5)
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(a)], store, RunContext(), workers=1)
    b = _events(tmp_path / "ev" / "b.json", 7)
    files = list(iter_files([str(tmp_path / "ev")], RunContext()))
    assert fresh_bytes(files, store) == b.stat().st_size  # a.json is skipped: not counted
    _events(a, 6)  # a.json changed size: counted again (it will be read again)
    files = list(iter_files([str(tmp_path / "ev")], RunContext()))
    assert fresh_bytes(files, store) == a.stat().st_size + b.stat().st_size
    empty = CaseStore(tmp_path / "case2", create=True)
    assert fresh_bytes(files, empty) == sum(f[2] for f in files)


def test_iter_files_sorted_no_links_displayed_as_given(tmp_path, monkeypatch):
    """The walk against a Path oracle: every regular file once, in sorted order (a folder's
    files at its place among its siblings), links reported and not followed, and each
    file shown as the folder was given joined with its relative path."""

    from tidehunt.ingest import iter_files

    ev = tmp_path / "ev"
    for rel in ("b/z.evtx", "b/a/y.json", "a.json", "c/d/e/f.log", "B.txt", "b0"):
        (ev / rel).parent.mkdir(parents=True, exist_ok=True)
        (ev / rel).write_bytes(b"x" * len(rel))
    (ev / "c" / "empty").mkdir()
    (ev / "link.json").symlink_to(ev / "a.json")
    (ev / "c" / "linkdir").symlink_to(ev / "b")

    def oracle(given: str) -> list[tuple[str, str, int]]:
        root = Path(given)
        out = []

        def walk(d: Path) -> None:
            for e in sorted(d.iterdir(), key=lambda x: x.name):
                if e.is_symlink():
                    continue
                if e.is_dir():
                    walk(e)
                else:
                    out.append((str(root.resolve() / e.relative_to(root)),
                                str(root / e.relative_to(root)), e.stat().st_size))
        walk(root)
        return out

    monkeypatch.chdir(tmp_path)
    for given in (str(ev), str(ev) + "/", "ev", "./ev/", "ev/../ev"):
        ctx = RunContext()
        got = [(str(r), d, n) for r, d, n in iter_files([given], ctx)]
        assert got == oracle(given), given
        links = sorted(x for w in ctx.take_warnings() for x in w.locators)
        assert sorted(Path(x).name for x in links) == ["link.json", "linkdir"]
    monkeypatch.chdir(ev)
    got = [(str(r), d, n) for r, d, n in iter_files(["."], RunContext())]
    assert got == oracle(".") and got[0][1] == "B.txt"  # "./B.txt" was never shown


def test_a_folder_that_is_not_a_case_is_never_taken_over(tmp_path):
    """``-o`` naming an existing folder that is not a case (a mistyped path): refused,
    and nothing in it deleted or overwritten (opening a case deletes the parts its
    manifest does not list); a new or empty folder becomes a case at once, marked by its
    manifest before anything else is written in it."""
    from tidehunt.errors import CaseError

    other = tmp_path / "project"
    (other / "tables" / "sales").mkdir(parents=True)
    (other / "tables" / "sales" / "2026.parquet").write_bytes(b"PAR1 not ours")
    (other / "findings.jsonl").write_text("mine\n")
    with pytest.raises(CaseError, match="not empty and not a tidehunt case"):
        CaseStore(other, create=True)
    assert (other / "tables" / "sales" / "2026.parquet").read_bytes() == b"PAR1 not ours"
    assert (other / "findings.jsonl").read_text() == "mine\n"
    assert not (other / "manifest.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    CaseStore(empty, create=True)
    assert (empty / "manifest.json").is_file()
    fresh = CaseStore(tmp_path / "a" / "b", create=True)
    assert (fresh.root / "manifest.json").is_file()
    assert CaseStore(fresh.root, create=True).manifest["artefacts"] == {}  # a case: opened
