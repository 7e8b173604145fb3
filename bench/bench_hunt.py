"""Benchmark: tidehunt hunt over EVTX-ATTACK-SAMPLES copied N times, with SigmaHQ rules.

Usage:
    .venv/bin/python bench/bench_hunt.py [--copies 10 100] [--corpus ../shared/corpus]

For each N it builds N hard-linked copies of ``evtx/evtx-attack-samples`` (separate paths,
so separate evidence), then measures, each in a fresh process:

* parse-only: every record through the Rust ``evtx`` parser as JSON, in as many processes as
  the hunt uses (the ceiling for ingest);
* hunt: ``tidehunt hunt`` with ``rules/windows`` + ``rules-threat-hunting/windows`` (plan cache
  warm: the cold compile is reported once, separately), wall time and peak RSS of the process
  tree (sampled from /proc every 20 ms).

Prints a Markdown table and writes bench/out/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.02)
    out = proc.stdout.read() if proc.stdout else ""
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}):\n{out[-3000:]}")
    return wall, peak, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the temporary cases")
    ap.add_argument("--max-memory", default=None, metavar="SIZE",
                    help="pass --max-memory to the hunts (default: tidehunt's own, 2GB); "
                         "4GB matches while ingest runs")
    args = ap.parse_args()
    corpus = Path(args.corpus)
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
        cold, _, _ = run_measured([tidehunt, "-q", "--workers", str(args.workers), "hunt",
                                   str(tiny), "-o", str(work / "tinycase"), *rule_args], env)
        warm, _, _ = run_measured([tidehunt, "-q", "--workers", str(args.workers), "hunt",
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
            pw, _, pout = run_measured([sys.executable, "-c", PARSE, str(args.workers),
                                        str(listing)], env)
            events = int(pout.split()[0])
            case = work / f"case{n}"
            hw, peak, _ = run_measured([tidehunt, "-q", "--workers", str(args.workers),
                                        "hunt", str(ev), "-o", str(case), *rule_args], env)
            report = json.loads((case / "report.json").read_text())
            r = {"copies": n, "files": len(files), "events": events,
                 "parse_only_s": round(pw, 2), "hunt_s": round(hw, 2),
                 "events_per_s": round(events / hw), "ratio_hunt_to_parse": round(hw / pw, 2),
                 "peak_rss_mib": round(peak / 2**20), "findings": report["findings_count"],
                 "rules_active": report["stats"]["sigma"]["rules_active"],
                 "stages_s": report["stats"]["seconds"],
                 "match": report["stats"]["memory"]["match"]}
            results.append(r)
            print(json.dumps(r))
            if not args.keep:
                shutil.rmtree(ev)
                shutil.rmtree(case)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print("\n| copies | events | parse-only s | hunt s | events/s | hunt/parse | peak RSS MiB "
          "| findings |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['copies']} | {r['events']:,} | {r['parse_only_s']} | {r['hunt_s']} | "
              f"{r['events_per_s']:,} | {r['ratio_hunt_to_parse']} | {r['peak_rss_mib']} | "
              f"{r['findings']:,} |")


if __name__ == "__main__":
    main()
