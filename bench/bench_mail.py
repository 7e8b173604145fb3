"""Benchmark: mail ingest with attachment analysis, on generated mailboxes.

Usage:
    .venv/bin/python bench/bench_mail.py [--mails 2000] [--workers 2]

Writes N .eml files (a quarter plain text, the rest carrying one of: a clean .docx, a
remote-template .docx, an Equation Editor RTF, a password zip holding an LNK, an HTA) and
times ``tidehunt ingest`` over them, then ``detect`` (the mail analytics), each in a fresh
process. Prints mails/s and attachments/s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures import maldocs as M  # noqa: E402


def write(out: Path, n: int) -> int:
    """N mails into ``out``; returns the number of attachments."""
    kinds = [
        None,
        ("Quarterly_Newsletter.docx", M.docx_clean(), "application/octet-stream"),
        ("Draft_Paper.docx", M.docx_remote_template(), "application/octet-stream"),
        ("Survey.rtf", M.rtf_equation_editor(), "application/rtf"),
        ("CV.zip", M.zip_with({"CV.pdf.lnk": M.lnk()}, password="Cv2026"), "application/zip"),
        ("report.hta", M.hta(), "application/octet-stream"),
    ]
    out.mkdir(parents=True, exist_ok=True)
    atts = 0
    for i in range(n):
        k = kinds[i % len(kinds)] if i % 4 else None
        atts += k is not None
        date = f"Mon, {1 + i % 28:02d} Mar 2026 {i % 24:02d}:{i % 60:02d}:00 +0000"
        (out / f"{i:06d}.eml").write_bytes(M.eml(
            f"Subject {i}", f"Sender {i} <s{i % 97}@d{i % 53}.example>",
            "j.smith@corp.example", f"body {i}. Password: Cv2026", [k] if k else [],
            auth="spf=pass dkim=pass dmarc=pass", date=date))
    return atts


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mails", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    th = str(ROOT / ".venv" / "bin" / "tidehunt")
    with tempfile.TemporaryDirectory() as tmp:
        ev, case = Path(tmp) / "mail", Path(tmp) / "case"
        atts = write(ev, a.mails)
        t0 = time.perf_counter()
        subprocess.run([th, "-q", "--workers", str(a.workers), "ingest", str(ev), "-o",
                        str(case)], check=True)
        ing = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([th, "-q", "detect", str(case)], check=True)
        det = time.perf_counter() - t0
    print(f"| mails | attachments | ingest s | mails/s | attachments/s | detect s |\n"
          f"|---|---|---|---|---|---|\n"
          f"| {a.mails} | {atts} | {ing:.1f} | {a.mails / ing:.0f} | {atts / ing:.0f} "
          f"| {det:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
