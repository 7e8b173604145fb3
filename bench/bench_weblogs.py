"""Benchmark: access-log ingest and the web analytics on generated logs.

Usage:
    .venv/bin/python bench/bench_weblogs.py [--lines 1000000] [--keep DIR]

Writes an Apache combined log and an IIS W3C log of ``--lines`` lines each (synthetic,
seeded), then measures in this process:

* read-only: the source's ``read`` over the file (vectorised regex into Arrow), lines/s;
* a naive reference: Python's ``re`` line by line into dicts (what a hand loop costs);
* hunt: ingest into a case and all analytics (``AnalyticsDetector``), seconds.

Prints a Markdown table. Timing only; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import tempfile
import time
from pathlib import Path

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.detect.analytics.detector import AnalyticsDetector
from tidehunt.ingest import ingest
from tidehunt.sources.access_log import APACHE, AccessLogSource
from tidehunt.sources.base import Artefact
from tidehunt.sources.iis_w3c import IisW3cSource

PATHS = ["/", "/index.php", "/news/item.php", "/css/site.css", "/js/app.js", "/img/a.png",
         "/search", "/login.php", "/api/v1/items", "/about.html"]


def write_logs(d: Path, n: int) -> tuple[Path, Path]:
    rng = random.Random(7)
    apache, iis = d / "access.log", d / "u_ex240501.log"
    with open(apache, "w") as a, open(iis, "w") as w:
        w.write("#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n"
                "#Date: 2024-05-01 00:00:00\n#Fields: date time s-ip cs-method cs-uri-stem "
                "cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status "
                "sc-substatus sc-win32-status sc-bytes time-taken\n")
        for i in range(n):
            ip = f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(256)}"
            p = rng.choice(PATHS)
            q = f"id={rng.randrange(9999)}" if rng.random() < 0.3 else "-"
            st = rng.choice((200, 200, 200, 304, 404))
            size = rng.randrange(100, 90000)
            h, m, s = (i // 3600) % 24, (i // 60) % 60, i % 60
            uri = p + ("?" + q if q != "-" else "")
            a.write(f'{ip} - - [01/May/2024:{h:02d}:{m:02d}:{s:02d} +0000] "GET {uri} '
                    f'HTTP/1.1" {st} {size} "-" "Mozilla/5.0 (X11; Linux x86_64)"\n')
            w.write(f"2024-05-01 {h:02d}:{m:02d}:{s:02d} 10.9.9.9 GET {p} {q} 443 - {ip} "
                    f"Mozilla/5.0+(X11;+Linux+x86_64) - {st} 0 0 {size} {rng.randrange(900)}\n")
    return apache, iis


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="keep the generated logs and case here")
    args = ap.parse_args()
    d = args.keep or Path(tempfile.mkdtemp(prefix="th-bench-web-"))
    d.mkdir(parents=True, exist_ok=True)
    apache, iis = write_logs(d, args.lines)
    rows = []
    for name, path, cls in (("apache", apache, AccessLogSource), ("iis", iis, IisW3cSource)):
        art = Artefact("b", path, str(path))
        sec, n = timed(lambda c=cls, a=art: sum(b.num_rows for b in c().read(a, RunContext())))
        rows.append((f"read {name}", sec, n))
    rx = re.compile(APACHE.regex)

    def naive() -> int:
        out = []
        with open(apache, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                m = rx.match(line.rstrip("\n"))
                if m:
                    out.append(m.groupdict())
        return len(out)

    sec, n = timed(naive)
    rows.append(("naive Python re, apache (reference)", sec, n))
    case = d / "case"
    shutil.rmtree(case, ignore_errors=True)
    store = CaseStore(case, create=True)
    sec, _ = timed(lambda: ingest([str(apache), str(iis)], store, RunContext()))
    rows.append(("ingest both (2 workers)", sec, store.rows("web_access")))
    det = AnalyticsDetector()
    sec, _ = timed(lambda: list(det.run(store, RunContext())))
    rows.append((f"all analytics ({len(det.stats.ran)} ran)", sec, store.rows("web_access")))
    print(f"| step ({args.lines:,} lines per log) | seconds | rows | rows/s |")
    print("|---|---:|---:|---:|")
    for label, sec, n in rows:
        print(f"| {label} | {sec:.2f} | {n:,} | {n / sec:,.0f} |")
    if not args.keep:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
