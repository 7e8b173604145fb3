"""Benchmark: ``detect --engine spark`` against the DuckDB engine on the same case.

Usage:
    .venv/bin/python bench/bench_spark.py [--records 1000000] [--out DIR] [--keep]
                                          [--master local[2]] [--partitions 4]
                                          [--json FILE]

Generates bench/bench_network.py's seeded Zeek capture (``--records`` conn records with
their dns and ssl records; logs in ``--out`` are reused), ingests it once
(``tidehunt ingest``), then runs, each in a fresh process with the bundled rules and
intel and a private cache and data folder:

* ``tidehunt -q detect CASE --engine duckdb``
* ``tidehunt -q detect CASE --engine spark --spark-master MASTER
  --spark-conf spark.sql.shuffle.partitions=N``

measuring wall time and the peak resident memory of the process tree (for Spark this
includes its JVM and Python workers), and the stage seconds the case records. It then
checks that the two wrote the same findings (finding IDs and contents): a sanity
report, not a test; tests/unit/test_spark_engine.py is the test. In local mode Spark
shares this machine's cores with its JVM, so the figure is Spark's overhead at a size
one machine handles, not its speed on a cluster. Timing only; nothing here fails on
time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_network import generate, run_measured  # the generator and the RSS sampler

ROOT = Path(__file__).resolve().parents[1]


def _findings(case: Path) -> dict[str, str]:
    out = {}
    for line in (case / "findings.jsonl").read_text(encoding="utf-8").splitlines():
        out[json.loads(line)["finding_id"]] = line
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000, help="conn.log records")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, help="logs and cases here (default: temporary)")
    ap.add_argument("--keep", action="store_true", help="keep the cases")
    ap.add_argument("--master", default="local[2]", help="Spark master URL")
    ap.add_argument("--partitions", type=int, default=4,
                    help="spark.sql.shuffle.partitions (buckets of the partitioned analytics)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="th-bench-spark-"))
    work.mkdir(parents=True, exist_ok=True)
    logs = work / f"zeek-{args.records}-{args.seed}"
    tidehunt = str(ROOT / ".venv" / "bin" / "tidehunt")
    env = dict(os.environ, TIDEHUNT_CACHE_DIR=str(work / "cache"),
               TIDEHUNT_DATA_DIR=str(work / "data"))
    results: dict[str, Any] = {"records": args.records, "master": args.master,
                               "partitions": args.partitions, "runs": {}}
    try:
        if not (logs / ".done").exists():
            shutil.rmtree(logs, ignore_errors=True)
            print(f"generating {args.records:,} conn records into {logs}", flush=True)
            results["counts"] = generate(logs, args.records, args.seed)
            (logs / ".done").write_text(json.dumps(results["counts"]))
        else:
            results["counts"] = json.loads((logs / ".done").read_text())
        case = work / "case"
        shutil.rmtree(case, ignore_errors=True)
        r = run_measured([tidehunt, "-q", "ingest", str(logs), "-o", str(case)], env)
        results["ingest_s"] = r["wall_s"]
        engines = {
            "duckdb": ["--engine", "duckdb"],
            "spark": ["--engine", "spark", "--spark-master", args.master, "--spark-conf",
                      f"spark.sql.shuffle.partitions={args.partitions}"]}
        found: dict[str, dict[str, str]] = {}
        for name, extra in engines.items():
            cmd = [tidehunt, "-q", "detect", str(case), *extra]
            print("running", " ".join(cmd[1:]), flush=True)
            r = run_measured(cmd, env)
            report = json.loads((case / "report.json").read_text())
            r["seconds"] = report["stats"].get("seconds")
            r["analytics_s"] = round(sum(report["stats"]["analytics"]["seconds"].values()), 2)
            r["on_spark"] = len(report["stats"]["analytics"].get("spark", []))
            results["runs"][name] = {k: v for k, v in r.items()
                                     if k not in ("output", "rss_series")}
            found[name] = _findings(case)
        a, b = found["duckdb"], found["spark"]
        results["same_findings"] = a == b
        results["findings"] = len(a)
        results["differ"] = sorted(set(a) ^ set(b) | {k for k in a if k in b and a[k] != b[k]}
                                   )[:20]
    finally:
        if not args.keep:
            shutil.rmtree(work / "case", ignore_errors=True)
            if not args.out:
                shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"\n{args.records:,} conn records; ingest {results['ingest_s']} s; "
          f"{results['findings']} findings, same on both engines: {results['same_findings']}")
    print("| engine | wall s | peak tree MiB | analytics s | analytics on Spark | stages s |")
    print("|---|---:|---:|---:|---:|---|")
    for name, r in results["runs"].items():
        print(f"| {name} | {r['wall_s']} | {r['peak_tree_mib']} | {r['analytics_s']} | "
              f"{r['on_spark']} | {r['seconds']} |")


if __name__ == "__main__":
    main()
