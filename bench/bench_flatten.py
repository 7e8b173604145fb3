"""Benchmark and equivalence check: the EVTX flatten, generic (``WindowsRows``) against
columnar (``EvtxRows``, ``tidehunt.sources._wincolumnar``) against native (``EvtxRows``
with the Rust flatten of ``native/evtxflat``, where it is built).

Usage:
    .venv/bin/python bench/bench_flatten.py [--corpus ../shared/corpus] [--repeat 3]
        [--passes 13] [--no-check] [--no-speed] [--ingest-copies 10]

Speed, over ``evtx/evtx-attack-samples`` in one process on one core (the parser with
``number_of_threads=1``), each figure the best of ``--repeat`` rounds (the steps
interleaved) of ``--passes`` passes over the files, one buffer for all of them as in an
ingest worker (13 passes, 66,040 records, is one flush of 65,536 rows as at 100x), wall
and CPU time, records/s of:

* parse only: every record through the Rust ``evtx`` parser as JSON, nothing done;
* parse + generic flatten: ``orjson`` + ``event_row`` + ``WindowsRows.add``/``flush``;
* parse + columnar flatten: ``orjson`` + ``EvtxRows.add_event``/``flush``;
* parse + native flatten: ``EvtxSource.read_records`` into a native ``EvtxRows`` (the
  records it hands back through ``orjson`` + ``add_event``);

and the flatten alone (the parser's records held in memory, so without the parser).
With ``--ingest-copies N``, also ``tidehunt.ingest.ingest`` in one process (hashing,
sniffing, header checks, parse, flatten, Parquet) of N hard-linked copies, each way,
and whether the cases' ``windows`` tables are identical.

Equivalence, through ``EvtxSource`` itself (generic, columnar, native), for every ``.evtx``
under ``evtx/``, ``evtx-benign/`` and ``evtx-malformed/``: the Arrow table of each file
(columns sorted by name, rows by record ID) and the warnings must be identical; then all
files of each folder, and of each root, through one buffer (partitions spanning files,
flushes every 65,536 rows) must give identical batches and warnings.

Prints a Markdown table; writes bench/out/flatten.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tidehunt.context import RunContext  # noqa: E402
from tidehunt.sources._wincolumnar import EvtxRows, native_flatten  # noqa: E402
from tidehunt.sources._winrows import WindowsRows, event_row  # noqa: E402
from tidehunt.sources.base import Artefact  # noqa: E402
from tidehunt.sources.evtx import EvtxSource  # noqa: E402


def iter_json(path: Path) -> Iterator[dict[str, Any]]:
    """Parser records of one file; parse errors are skipped (the iterator resumes)."""
    import evtx

    it = iter(evtx.PyEvtxParser(str(path), number_of_threads=1).records_json())
    errors = 0
    while True:
        try:
            rec = next(it)
        except StopIteration:
            return
        except (RuntimeError, OSError, ValueError):
            errors += 1
            if errors >= 10_000:
                return
            continue
        if rec is None:
            return
        yield rec


def feed_generic(sink: WindowsRows, recs: Iterator[dict[str, Any]], ctx: RunContext,
                 art: str) -> Iterator[Any]:
    """What ``EvtxSource.read_rows`` does with each record today."""
    loads = orjson.loads
    for rec in recs:
        try:
            event = loads(rec["data"])["Event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            ctx.warn(art, "evtx", "record is not a valid event", [rec.get("event_record_id")])
            continue
        row = event_row(event) if type(event) is dict else None  # {"Event": null}
        if row is None:
            ctx.warn(art, "evtx", "record has no System element",
                     [rec.get("event_record_id")])
            continue
        if row.get("record_id") is None:
            row["record_id"] = rec.get("event_record_id")
        sink.add(row, str(rec.get("event_record_id")))
        if sink.full():
            yield from sink.flush()


def feed_columnar(sink: EvtxRows, recs: Iterator[dict[str, Any]], ctx: RunContext,
                  art: str) -> Iterator[Any]:
    """The same through ``EvtxRows.add_event``."""
    loads = orjson.loads
    add = sink.add_event
    for rec in recs:
        try:
            event = loads(rec["data"])["Event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            ctx.warn(art, "evtx", "record is not a valid event", [rec.get("event_record_id")])
            continue
        rid = rec.get("event_record_id")
        if not add(event, str(rid), rid):
            ctx.warn(art, "evtx", "record has no System element", [rid])
            continue
        if sink.full():
            yield from sink.flush()


def feed_native(sink: EvtxRows, recs: Iterator[dict[str, Any]], ctx: RunContext,
                art: str) -> Iterator[Any]:
    """``EvtxSource``'s own read loop over the records, into a native buffer."""
    return EvtxSource().read_records(recs, Artefact(art, Path(art), art), ctx, sink)


def sink_of(kind: str) -> WindowsRows:
    if kind == "generic":
        return WindowsRows("evtx")
    return EvtxRows("evtx", native=kind == "native")


FEEDS = {"generic": feed_generic, "columnar": feed_columnar, "native": feed_native}


def run(kind: str, files: list[Path], recs_of: Callable[[Path], Iterator[dict[str, Any]]],
        ) -> tuple[list[Any], RunContext]:
    """All files through one buffer of ``kind``; the batches and the context."""
    ctx = RunContext()
    sink = sink_of(kind)
    feed = FEEDS[kind]
    out: list[Any] = []
    for f in files:
        sink.begin(str(f), str(f))
        out += feed(sink, recs_of(f), ctx, str(f))  # type: ignore[arg-type]
    out += sink.flush()
    sink.report(ctx, "evtx")
    return out, ctx


# -- equivalence ---------------------------------------------------------------------

def table_of(batches: list[Any]) -> pa.Table:
    """Batches as one table: columns sorted by name, rows by artefact and record ID."""
    if not batches:
        return pa.table({})
    t = pa.concat_tables([pa.Table.from_batches([b.data]) for b in batches],
                         promote_options="default")
    t = t.select(sorted(t.column_names))
    return t.sort_by([("_artefact", "ascending"), ("record_id", "ascending"),
                      ("_locator", "ascending")])


def warnings_of(ctx: RunContext) -> list[tuple[Any, ...]]:
    return sorted((w.artefact, w.message, tuple(map(str, w.locators)), w.count)
                  for w in ctx.warnings)


def diff(a: pa.Table, b: pa.Table) -> str:
    """Where two tables differ, in a line or two."""
    if a.column_names != b.column_names:
        sa, sb = set(a.column_names), set(b.column_names)
        return f"columns only generic {sorted(sa - sb)[:8]}, only columnar {sorted(sb - sa)[:8]}"
    if a.num_rows != b.num_rows:
        return f"rows {a.num_rows} != {b.num_rows}"
    for name in a.column_names:
        ca, cb = a[name].combine_chunks(), b[name].combine_chunks()
        if not ca.equals(cb):
            la, lb = ca.to_pylist(), cb.to_pylist()
            i = next(i for i, (x, y) in enumerate(zip(la, lb, strict=True)) if x != y)
            return f"column {name!r} row {i}: {la[i]!r} != {lb[i]!r}"
    return "schemas differ" if not a.schema.equals(b.schema) else ""


def read(files: list[Path], kind: str) -> tuple[list[Any], RunContext]:
    """``EvtxSource`` (its real read loop) over the files through one buffer."""
    src = EvtxSource()
    ctx = RunContext()
    sink = sink_of(kind)
    out: list[Any] = []
    for f in files:
        art = Artefact(str(f), f, str(f))
        sink.begin(art.id, art.display)
        out += src.read_rows(art, ctx, sink)
    out += sink.flush()
    sink.report(ctx, src.NAME)
    return out, ctx


def check(corpus: Path, kinds: tuple[str, ...]) -> dict[str, Any]:
    """Each kind after the first against the first, through ``EvtxSource``, for every
    file alone (batches, as one table), then for each folder (and each root) through one
    shared buffer (batch by batch for columnar, as one table for native, whose batches
    are cut per partition and per path)."""
    roots = [corpus / "evtx", corpus / "evtx-benign", corpus / "evtx-malformed"]
    files = sorted(p for r in roots for p in r.rglob("*.evtx"))
    base, others = kinds[0], kinds[1:]
    bad: list[str] = []
    rows = 0
    for f in files:
        ga, gctx = read([f], base)
        ta = table_of(ga)
        rows += ta.num_rows
        for k in others:
            ca, cctx = read([f], k)
            tb = table_of(ca)
            if not ta.equals(tb) or warnings_of(gctx) != warnings_of(cctx):
                bad.append(f"{k}: {f.relative_to(corpus)}: {diff(ta, tb) or 'warnings'}")
    folders = sorted({f.parent for f in files} | set(roots))
    shared_bad: list[str] = []
    for d in folders:
        fs = [f for f in files if d in f.parents or f.parent == d]
        if not fs:
            continue
        ga, gctx = read(fs, base)
        for k in others:
            ca, cctx = read(fs, k)
            if k == "native":
                same = table_of(ga).equals(table_of(ca))
            else:
                same = len(ga) == len(ca) and all(
                    x.data.equals(y.data) for x, y in zip(ga, ca, strict=True))
            if not same or warnings_of(gctx) != warnings_of(cctx):
                shared_bad.append(f"{k}: {d.relative_to(corpus)}: "
                                  f"{diff(table_of(ga), table_of(ca)) or 'batches/warnings'}")
    return {"files": len(files), "rows": rows, "kinds": list(kinds), "different_files": bad,
            "shared_buffer_folders": len(folders), "different_shared": shared_bad}


# -- speed ---------------------------------------------------------------------------

def speed(corpus: Path, repeat: int, passes: int, native: bool) -> dict[str, Any]:
    """Best-of-``repeat`` wall and CPU seconds per step; the steps are interleaved in
    each round so that a drift in the shared machine's speed hits all of them alike."""
    files = sorted((corpus / "evtx" / "evtx-attack-samples").rglob("*.evtx")) * passes

    def parse_only() -> int:
        n = 0
        for f in files:
            for _ in iter_json(f):
                n += 1
        return n

    def through(kind: str, recs_of: Callable[[Path], Iterator[dict[str, Any]]]) -> int:
        batches, _ = run(kind, files, recs_of)
        return sum(b.num_rows for b in batches)

    held = {f: list(iter_json(f)) for f in set(files)}

    def mem(f: Path) -> Iterator[dict[str, Any]]:
        return iter(held[f])

    steps: dict[str, Callable[[], int]] = {
        "parse only": parse_only,
        "parse + generic flatten": lambda: through("generic", iter_json),
        "parse + columnar flatten": lambda: through("columnar", iter_json),
        "generic flatten alone": lambda: through("generic", mem),
        "columnar flatten alone": lambda: through("columnar", mem),
    }
    if native:
        steps["parse + native flatten"] = lambda: through("native", iter_json)
        steps["native flatten alone"] = lambda: through("native", mem)
    for k in ("generic", "columnar", "native") if native else ("generic", "columnar"):
        through(k, mem)  # warm: pyarrow's first conversions import modules
    wall = dict.fromkeys(steps, float("inf"))
    cpu = dict.fromkeys(steps, float("inf"))
    count: dict[str, int] = {}
    for _ in range(repeat):
        for name, fn in steps.items():
            gc.collect()
            t, c = time.perf_counter(), time.process_time()
            count[name] = fn()
            wall[name] = min(wall[name], time.perf_counter() - t)
            cpu[name] = min(cpu[name], time.process_time() - c)
    out: dict[str, Any] = {"files": len(files), "passes": passes, "repeat": repeat}
    for name in steps:
        n = count[name]
        out[name] = {"records": n, "wall_s": round(wall[name], 3),
                     "cpu_s": round(cpu[name], 3), "records_per_s": round(n / wall[name]),
                     "records_per_cpu_s": round(n / cpu[name])}
    return out


def ingest_speed(corpus: Path, copies: int, repeat: int, kinds: tuple[str, ...]
                 ) -> dict[str, Any]:
    """``tidehunt.ingest.ingest`` (one process: hash, sniff, parse, flatten, Parquet) of
    ``copies`` hard-linked copies of the attack samples, each of ``kinds``, best of
    ``repeat``; and whether the cases' ``windows`` tables are identical."""
    import os
    import shutil
    import tempfile

    import pyarrow.parquet as pq

    from tidehunt.case.store import CaseStore
    from tidehunt.ingest import ingest

    src = corpus / "evtx" / "evtx-attack-samples"
    tmp = Path(tempfile.mkdtemp(prefix="th-bench-flatten-"))
    try:
        for i in range(copies):
            for f in sorted(src.rglob("*.evtx")):
                dst = tmp / "ev" / f"c{i:03d}" / f.relative_to(src)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.link(f, dst)
        secs = dict.fromkeys(kinds, float("inf"))
        tables: dict[str, pa.Table] = {}
        events = 0
        old = os.environ.get("TIDEHUNT_NATIVE_FLATTEN")
        for r in range(repeat):
            for kind in kinds:
                EvtxSource.columnar = kind != "generic"  # type: ignore[misc]
                os.environ["TIDEHUNT_NATIVE_FLATTEN"] = "1" if kind == "native" else "0"
                case = tmp / f"case-{kind}-{r}"
                store = CaseStore(case, create=True)
                gc.collect()
                t = time.perf_counter()
                res = ingest([str(tmp / "ev")], store, RunContext(), workers=1)
                secs[kind] = min(secs[kind], time.perf_counter() - t)
                events = res.records
                if r == 0:
                    t_ = pa.concat_tables([pq.read_table(p) for p in store.parts("windows")],
                                          promote_options="default")
                    tables[kind] = t_.select(sorted(t_.column_names)).sort_by(
                        [("_artefact", "ascending"), ("record_id", "ascending"),
                         ("_locator", "ascending")])
                shutil.rmtree(case)
        EvtxSource.columnar = True  # type: ignore[misc]
        if old is None:
            os.environ.pop("TIDEHUNT_NATIVE_FLATTEN", None)
        else:
            os.environ["TIDEHUNT_NATIVE_FLATTEN"] = old
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out: dict[str, Any] = {"copies": copies, "events": events, "repeat": repeat}
    for k in kinds:
        out[f"{k}_s"] = round(secs[k], 3)
        out[f"{k}_events_per_s"] = round(events / secs[k])
        out[f"{k}_table_identical"] = tables[k].equals(tables[kinds[0]])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--passes", type=int, default=13)
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--ingest-copies", type=int, default=0,
                    help="also time tidehunt's ingest (one process) of N copies, both ways")
    args = ap.parse_args()
    native = native_flatten() is not None
    if not native:
        print("(the native flatten is not built: scripts/build-native.sh; measuring without)")
    kinds = ("generic", "columnar", "native") if native else ("generic", "columnar")
    res: dict[str, Any] = {"native": native_flatten()}
    if not args.no_speed:
        res["speed"] = sp = speed(args.corpus, args.repeat, args.passes, native)
        print(f"| step ({sp['files']} files = {sp['passes']} passes, best of {sp['repeat']}) "
              "| wall s | records/s | CPU s | records/CPU s |")
        print("|---|---:|---:|---:|---:|")
        for k, v in sp.items():
            if isinstance(v, dict):
                print(f"| {k} | {v['wall_s']:.3f} | {v['records_per_s']:,} | {v['cpu_s']:.3f} | "
                      f"{v['records_per_cpu_s']:,} |")
        for unit in ("wall_s", "cpu_s"):
            g, c = sp["generic flatten alone"][unit], sp["columnar flatten alone"][unit]
            pg, pc_ = sp["parse + generic flatten"][unit], sp["parse + columnar flatten"][unit]
            p = sp["parse only"][unit]
            print(f"{unit}: flatten alone {g / c:.2f}x faster; parse + flatten {pg / pc_:.2f}x; "
                  f"(parse + flatten) / parse: generic {pg / p:.2f}, columnar {pc_ / p:.2f}")
            if native:
                n, pn = sp["native flatten alone"][unit], sp["parse + native flatten"][unit]
                print(f"{unit}: native flatten alone {c / n:.2f}x faster than columnar; parse"
                      f" + flatten {pc_ / pn:.2f}x; (parse + flatten) / parse: {pn / p:.2f}")
    if args.ingest_copies:
        res["ingest"] = ig = ingest_speed(args.corpus, args.ingest_copies, args.repeat, kinds)
        print(f"\ningest of {ig['copies']} copies ({ig['events']:,} events, one process, best "
              f"of {ig['repeat']}):")
        for k in kinds:
            print(f"  {k}: {ig[k + '_s']} s ({ig[k + '_events_per_s']:,}/s); windows table "
                  f"identical to {kinds[0]}'s: {ig[k + '_table_identical']}")
    if not args.no_check:
        res["check"] = ck = check(args.corpus, kinds)
        print(f"\nequivalence: {ck['files']} files, {ck['rows']:,} rows; files differing: "
              f"{len(ck['different_files'])}; shared-buffer folders differing: "
              f"{len(ck['different_shared'])} of {ck['shared_buffer_folders']}")
        for line in ck["different_files"][:20] + ck["different_shared"][:20]:
            print("  ", line)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "flatten.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
