"""Benchmark: tidehunt hunt over EVTX-ATTACK-SAMPLES copied N times, with SigmaHQ rules.

Usage:
    .venv/bin/python bench/bench_hunt.py [--copies 10 100] [--corpus ../shared/corpus]

For each N it builds N hard-linked copies of ``evtx/evtx-attack-samples`` (separate paths,
so separate evidence), then measures, each in a fresh process:

* parse-only: every record through the Rust ``evtx`` parser as JSON, in as many processes as
  the hunt uses (the ceiling for ingest);
* ingest-only: ``tidehunt ingest`` of the same files into a fresh case (parse, flatten,
  hash, store: everything of a hunt before detection), unless ``--no-ingest``;
* hunt: ``tidehunt hunt`` with ``rules/windows`` + ``rules-threat-hunting/windows`` (plan cache
  warm: the cold compile is reported once, separately), wall time and peak RSS of the process
  tree (sampled from /proc every 20 ms).

Two ratios come out: hunt over parse-only (the issue's: the parser alone is the floor), and
hunt over ingest-only (what matching 2,500 rules, the findings and the reports add to
reading the evidence into the case).

With ``--repeat R`` each N is measured R times (parse-only and hunt alternately, so each
ratio compares runs of the same minutes: this machine class drifts by up to 40% within an
hour), and the table gives the fastest, median and slowest hunt. ``--baseline DIR`` runs
the hunts of another checkout of tidehunt (its ``src/`` first on ``PYTHONPATH``, with this
venv and the native flatten built in that checkout) interleaved with this one's, for a
before/after comparison in the same minutes.

Each tree's ``tidehunt`` modules are compiled to bytecode first, as an installed package's
are: with an editable install and ``PYTHONDONTWRITEBYTECODE`` set, every process of every
hunt would otherwise compile them from source (0.3-0.6 s of a 10x hunt here).

Prints a Markdown table and writes bench/out/results.json.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARSE = r"""
import sys, evtx, time
from concurrent.futures import ProcessPoolExecutor
def count(files):
    n = 0
    for f in files:
        for _ in evtx.PyEvtxParser(f, number_of_threads=1).records_json():
            n += 1
    return n
if __name__ == "__main__":
    files = open(sys.argv[2]).read().splitlines()
    w = int(sys.argv[1])
    t = time.perf_counter()
    with ProcessPoolExecutor(w) as pool:
        n = sum(pool.map(count, [files[i::w] for i in range(w)]))
    print(n, time.perf_counter() - t)
"""
#: The tidehunt command, run by this venv's Python so that ``PYTHONPATH`` picks the tree
#: measured (``--baseline``); the same as the ``tidehunt`` console script otherwise.
HUNT = "import sys; from tidehunt.cli.main import main; sys.exit(main())"


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and its descendants."""
    total = 0
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(stat[1]), []).append(int(d.name))
        except (OSError, IndexError):
            continue
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        todo += children.get(p, [])
    return total


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str, int]:
    """Wall seconds, sampled peak RSS of the process tree, output, and the largest
    high-water mark of any one process in it (the kernel's ``ru_maxrss``: exact, where
    the 20 ms samples can miss a short peak)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read() if proc.stdout else ""
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}):\n{out[-3000:]}")
    return wall, peak, out, usage.ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the temporary cases")
    ap.add_argument("--max-memory", default=None, metavar="SIZE",
                    help="pass --max-memory to the hunts (default: tidehunt's own, 2GB); "
                         "4GB matches while ingest runs")
    ap.add_argument("--repeat", type=int, default=1, metavar="R",
                    help="measure each N R times, alternating parse-only and hunt")
    ap.add_argument("--baseline", default=None, metavar="DIR",
                    help="another tidehunt checkout: its hunts interleaved with this one's")
    ap.add_argument("--no-ingest", action="store_true",
                    help="skip the ingest-only runs (and the hunt/ingest ratio)")
    args = ap.parse_args()
    corpus = Path(args.corpus)
    trees = {"this": None}
    if args.baseline:
        base = Path(args.baseline).resolve() / "src"
        if not (base / "tidehunt" / "__init__.py").is_file():
            raise SystemExit(f"{base}: no tidehunt package there")
        if not list((base / "tidehunt").glob("_evtxflat*.so")):
            raise SystemExit(f"{base}/tidehunt: the native flatten is not built there "
                             "(run 'make .venv/.native' in that checkout, or copy the .so)")
        trees["baseline"] = str(base)
    for src in [str(ROOT / "src"), *filter(None, trees.values())]:
        if not compileall.compile_dir(str(Path(src) / "tidehunt"), quiet=1):
            raise SystemExit(f"{src}/tidehunt: does not compile")
    samples = corpus / "evtx" / "evtx-attack-samples"
    rules = [corpus / "sigma" / "rules" / "windows",
             corpus / "sigma" / "rules-threat-hunting" / "windows"]
    if not samples.is_dir():
        raise SystemExit(f"{samples} not found; pass --corpus")
    tidehunt = str(Path(sys.executable).with_name("tidehunt"))
    work = Path(tempfile.mkdtemp(prefix="tidehunt-bench-"))
    env = dict(os.environ, TIDEHUNT_CACHE_DIR=str(work / "cache"),
               TIDEHUNT_DATA_DIR=str(work / "data"))
    results = []
    try:
        # cold rule compile, once
        tiny = work / "tiny"
        tiny.mkdir()
        shutil.copy(next(samples.rglob("*.evtx")), tiny / "one.evtx")
        rule_args = [a for r in rules for a in ("--rules", str(r))]
        if args.max_memory:
            rule_args += ["--max-memory", args.max_memory]
        cold, _, _, _ = run_measured([tidehunt, "-q", "--workers", str(args.workers), "hunt",
                                   str(tiny), "-o", str(work / "tinycase"), *rule_args], env)
        warm, _, _, _ = run_measured([tidehunt, "-q", "--workers", str(args.workers), "hunt",
                                   str(tiny), "-o", str(work / "tinycase2"), *rule_args], env)
        n_rules = sum(1 for r in rules for _ in r.rglob("*.yml"))
        print(f"fixed cost, 1 small file: cold (compiles {n_rules} rule files) {cold:.2f}s, "
              f"warm (cached plan) {warm:.2f}s")
        for n in args.copies:
            ev = work / f"x{n}"
            files = []
            for i in range(n):
                for f in sorted(samples.rglob("*.evtx")):
                    dst = ev / f"c{i:03d}" / f.relative_to(samples)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.link(f, dst)
                    files.append(str(dst))
            listing = work / f"files{n}.txt"
            listing.write_text("\n".join(files))
            for run in range(args.repeat):
                pw, _, pout, _ = run_measured([sys.executable, "-c", PARSE, str(args.workers),
                                            str(listing)], env)
                events = int(pout.split()[0])
                iw = None
                if not args.no_ingest:  # this tree's ingest alone, in the same minutes
                    icase = work / f"ingest{n}"
                    shutil.rmtree(icase, ignore_errors=True)
                    iw, _, _, _ = run_measured(
                        [sys.executable, "-c", HUNT, "-q", "--workers", str(args.workers),
                         "ingest", str(ev), "-o", str(icase)]
                        + (["--max-memory", args.max_memory] if args.max_memory else []), env)
                    shutil.rmtree(icase, ignore_errors=True)
                # alternate which tree goes first: no order effect (caches, drift) in one
                for tree, src in (list(trees.items()) if run % 2 == 0
                                  else list(trees.items())[::-1]):
                    case = work / f"case{n}"
                    shutil.rmtree(case, ignore_errors=True)
                    tenv = env if src is None else dict(
                        env, PYTHONPATH=os.pathsep.join([src, *filter(None, [
                            env.get("PYTHONPATH")])]))
                    hw, peak, _, hwm = run_measured(
                        [sys.executable, "-c", HUNT, "-q", "--workers", str(args.workers),
                         "hunt", str(ev), "-o", str(case), *rule_args], tenv)
                    report = json.loads((case / "report.json").read_text())
                    own = iw if src is None else None
                    r = {"copies": n, "tree": tree, "run": run + 1, "files": len(files),
                         "events": events, "parse_only_s": round(pw, 2),
                         "hunt_s": round(hw, 2), "events_per_s": round(events / hw),
                         "ratio_hunt_to_parse": round(hw / pw, 2),
                         # of this tree only (a baseline's hunts have no ingest run)
                         "ingest_only_s": None if own is None else round(own, 2),
                         "ratio_hunt_to_ingest": None if own is None else round(hw / own, 2),
                         "peak_rss_mib": round(peak / 2**20),
                         "peak_process_hwm_mib": round(hwm / 2**20),
                         "findings": report["findings_count"],
                         "rules_active": report["stats"]["sigma"]["rules_active"],
                         "stages_s": report["stats"]["seconds"],
                         "match": report["stats"]["memory"]["match"]}
                    results.append(r)
                    print(json.dumps(r), flush=True)
            if not args.keep:
                shutil.rmtree(ev)
                shutil.rmtree(work / f"case{n}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print("\n| copies | tree | runs | events | parse-only s | ingest-only s | hunt s (fastest / "
          "median / slowest) | events/s (fastest) | hunt/parse | hunt/ingest | peak RSS MiB "
          "(tree, sampled) | largest process high-water MiB | findings |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (n, tree), rs in groupby_key(results).items():
        hunts = sorted(r["hunt_s"] for r in rs)
        ratios = sorted(r["ratio_hunt_to_parse"] for r in rs)
        parse = sorted(r["parse_only_s"] for r in rs)
        ingests = sorted(r["ingest_only_s"] for r in rs if r["ingest_only_s"] is not None)
        by_ingest = sorted(r["ratio_hunt_to_ingest"] for r in rs
                           if r["ratio_hunt_to_ingest"] is not None)
        print(f"| {n} | {tree} | {len(rs)} | {rs[0]['events']:,} | "
              f"{span(parse)} | {span(ingests) if ingests else '-'} | "
              f"{hunts[0]} / {statistics.median(hunts):.2f} / {hunts[-1]} | "
              f"{max(r['events_per_s'] for r in rs):,} | {span(ratios)} | "
              f"{span(by_ingest) if by_ingest else '-'} | "
              f"{span(sorted(r['peak_rss_mib'] for r in rs))} | "
              f"{span(sorted(r['peak_process_hwm_mib'] for r in rs))} | {rs[0]['findings']:,} |")


def groupby_key(results: list[dict]) -> dict[tuple[int, str], list[dict]]:
    """The results per (copies, tree), in the order met."""
    out: dict[tuple[int, str], list[dict]] = {}
    for r in results:
        out.setdefault((r["copies"], r["tree"]), []).append(r)
    return out


def span(values: list) -> str:
    """'a' or 'a-b' for sorted values."""
    return f"{values[0]}" if values[0] == values[-1] else f"{values[0]}-{values[-1]}"


if __name__ == "__main__":
    main()
