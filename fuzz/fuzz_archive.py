"""atheris harness: archives (zip, 7z, ISO, gzip, RAR and the rest through libarchive)
unpacked within the limits; the first byte picks the kind."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["tidehunt", "zipfile", "py7zr", "pycdlib"]):
    from fuzz._harness import library_may_raise, main
    from tidehunt.attachments.archive import Budget, Limits, unpack
    from tidehunt.attachments.kinds import kind
    from tidehunt.attachments.model import Report

LIMITS = Limits(max_total=16 << 20, max_member=8 << 20, max_count=100, max_depth=2)
KINDS = ("zip", "7z", "iso", "gzip", "rar", "tar", "cab")


def target(data: bytes) -> None:
    k = kind(data, "a.bin")
    if k not in KINDS:
        k = KINDS[data[0] % len(KINDS)] if data else "zip"
    unpack(data, k, Report("a", k), Budget(LIMITS), ["infected"])


if __name__ == "__main__":
    main(library_may_raise(target))
