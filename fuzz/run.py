"""Run the atheris harnesses for a set time each: ``python fuzz/run.py [--seconds N]
[--runs N] [HARNESS...]`` from the repository root (``make fuzz`` does, with
``FUZZ_SECONDS``).

Each harness gets two seed folders: the project's generated seeds (tests/fuzz/seeds.py)
and links to small samples of ``../shared/corpus`` when it is present (nothing is copied
into the repository). New inputs libFuzzer finds and any crash (``crash-*``, ``timeout-*``,
``oom-*``) go under ``test-artifacts/fuzz/<harness>/``; minimise a crash and keep it under
``tests/fuzz/regressions/`` once fixed. Exit status: 0, or the first failing harness's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: harness -> the largest input it is given
HARNESSES = {"evtx": 140_000, "evtx_native": 140_000, "office": 65_536, "lnk": 8_192,
             "archive": 65_536, "msg": 65_536}


def prepare(name: str, out: Path) -> list[str]:
    """The seed folders for one harness (generated, and corpus links)."""
    sys.path.insert(0, str(ROOT))  # a script run from the command line, not a library
    from tests.fuzz import seeds

    gen = seeds.write_seeds(name, out / "seeds")
    found = out / "found"
    found.mkdir(parents=True, exist_ok=True)
    dirs = [str(found), str(gen)]
    samples = seeds.corpus_files(*seeds.SEEDS[name][1], limit=50,
                                 max_bytes=HARNESSES[name])
    if samples:
        links = out / "corpus"
        links.mkdir(exist_ok=True)
        for i, p in enumerate(samples):
            link = links / f"{i:03d}-{p.name}"
            if not link.exists():
                link.symlink_to(p)
        dirs.append(str(links))
    return dirs


def run(name: str, seconds: int, runs: int | None, base: Path) -> int:
    out = base / name
    dirs = prepare(name, out)
    cmd = [sys.executable, str(ROOT / "fuzz" / f"fuzz_{name}.py"), *dirs,
           f"-max_total_time={seconds}", f"-max_len={HARNESSES[name]}", "-timeout=30",
           "-rss_limit_mb=4096", f"-artifact_prefix={out}/", "-print_final_stats=1"]
    if runs is not None:
        cmd.append(f"-runs={runs}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    print(f"== fuzz_{name}: {seconds} s", flush=True)
    return subprocess.call(cmd, env=env, cwd=ROOT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", 60)))
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "fuzz",
                    help="where found inputs and crashes go")
    ap.add_argument("harness", nargs="*", help=f"some of: {', '.join(HARNESSES)}")
    args = ap.parse_args()
    unknown = set(args.harness) - set(HARNESSES)
    if unknown:
        ap.error(f"unknown harness {', '.join(sorted(unknown))}")
    status = 0
    for name in args.harness or HARNESSES:
        rc = run(name, args.seconds, args.runs, args.out)
        if rc and not status:
            status = rc
    return status


if __name__ == "__main__":
    sys.exit(main())
