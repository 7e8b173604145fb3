"""Inputs the fuzzers found crashing a reader, kept so the crash stays fixed.

``regressions/<source>/<name>.<ext>`` is read by that registered source (and sniffed by
every source); each file is small and generated or minimised, never evidence. The reason
each was kept is in ``regressions/README.md``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz import seeds
from tests.fuzz._contract import run_source

HERE = Path(__file__).parent / "regressions"
CASES = sorted(p for p in HERE.glob("*/*") if p.is_file() and p.parent.name != "sigma")


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_regression(path):
    run_source(path.parent.name, path.read_bytes(), filename=path.name, whole_sniff=True)


#: Crashes found by the atheris harnesses, as inputs generated here (the found files were
#: mutated corpus samples, which are not kept): source -> file name -> bytes.
GENERATED = {
    # the Rust parser renders a record of empty BinXML as {"Event": null}: AttributeError
    "evtx": {"empty-binxml.evtx": lambda: seeds.evtx_with_record(b"\x00")},
    # a body stream that is not UTF-16 made extract-msg raise UnicodeDecodeError
    "outlook_msg": {"bad-utf16-body.msg": lambda: seeds.outlook_msg(body=b"a\x00\x00\xd8")},
}


@pytest.mark.parametrize(("source", "name"), [(s, n) for s, d in GENERATED.items() for n in d])
def test_generated_regression(source, name):
    out = run_source(source, GENERATED[source][name](), filename=name, whole_sniff=True)
    assert out.error is None and (out.rows or out.ctx.warnings)
