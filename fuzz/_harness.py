"""Shared parts of the atheris harnesses: what counts as a crash, and the entry point.

A harness feeds libFuzzer's bytes to one reader. A crash is an exception that escapes the
reader's contract (for sources: anything but ``SourceError``), or one raised by tidehunt's
own code where a library's failure is expected and noted (the attachment analysers); a
hang is libFuzzer's ``-timeout`` and a memory blow-up its ``-rss_limit_mb``. Run from the
repository root with ``PYTHONPATH=.`` (``make fuzz`` does): ``fuzz/run.py`` passes the
seed folders.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import atheris

from tests.fuzz._contract import raised_in_tidehunt

#: Modules instrumented for coverage: ours and the parsers we feed hostile bytes to.
INSTRUMENT = ["tidehunt", "olefile", "oletools", "LnkParse3", "extract_msg", "zipfile",
              "py7zr", "pycdlib"]


def source_target(name: str, filename: str, setup: Callable[[Any], None] | None = None
                  ) -> Callable[[bytes], None]:
    """A fuzz target reading the bytes as a file with the registered source ``name``."""
    from tidehunt import registry
    from tidehunt.context import RunContext
    from tidehunt.errors import SourceError
    from tidehunt.sources.base import Artefact

    cls = registry.load("sources", name)
    tmp = Path(tempfile.mkdtemp(prefix=f"tidehunt-fuzz-{name}-"))
    path = tmp / filename
    art = Artefact("fuzz", path, filename)

    def target(data: bytes) -> None:
        path.write_bytes(data)
        sniffed = cls.sniff(art, data[:65536])
        if type(sniffed) is not bool:
            raise AssertionError(f"sniff returned {sniffed!r}")
        src = cls()
        if setup is not None:
            setup(src)
        try:
            for _ in src.read(art, RunContext()):
                pass
        except SourceError:
            pass

    return target


def library_may_raise(fn: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """A target where a parser library may raise (the caller notes it), tidehunt may not."""
    def target(data: bytes) -> None:
        try:
            fn(data)
        except Exception as exc:
            if raised_in_tidehunt(exc):
                raise

    return target


def main(target: Callable[[bytes], None]) -> None:
    """Hand ``target`` to libFuzzer with this process's command line."""
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
