"""atheris harness: Office documents and RTF through the oletools checks; the whole
attachment tree must never raise, and each check may fail only inside a library."""

from __future__ import annotations

import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["tidehunt", "oletools", "olefile"]):
    from fuzz._harness import main
    from tidehunt.attachments import analyse_tree
    from tidehunt.attachments.archive import Limits

WORK = Path(tempfile.mkdtemp(prefix="tidehunt-fuzz-office-"))
LIMITS = Limits(max_total=16 << 20, max_count=50, max_depth=2)
NAMES = ("a.doc", "a.docx", "a.xls", "a.rtf", "a.xlsm", "a.pptx", "a.csv")


def target(data: bytes) -> None:
    name = NAMES[data[0] % len(NAMES)] if data else NAMES[0]
    analyse_tree(data[1:], name, limits=LIMITS, work=WORK)


if __name__ == "__main__":
    main(target)
