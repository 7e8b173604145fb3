"""atheris harness, differential: EVTX files through the evtx source's read path twice,
with the native flatten and with the Python one; the rows (spellings of a name merged, as
the store reads them) and the warnings must be the same. Without the native build it
only says so and exits 0. Damaged files go through the child parser, as in ``ingest``."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["tidehunt"]):
    from fuzz._harness import main
    from tidehunt.context import RunContext
    from tidehunt.errors import SourceError
    from tidehunt.sources._wincolumnar import EvtxRows, native_flatten
    from tidehunt.sources.base import Artefact
    from tidehunt.sources.evtx import EvtxSource

TMP = Path(tempfile.mkdtemp(prefix="tidehunt-fuzz-evtx-native-"))
PATH = TMP / "fuzz.evtx"
ART = Artefact("fuzz", PATH, "fuzz.evtx")


def _read(native: bool) -> tuple[object, list[str]]:
    from tests.unit.test_flatten_equivalence import _merge_case, _table, _warnings

    src, ctx = EvtxSource(), RunContext()
    src.threads = 1  # type: ignore[misc]
    src.stall_seconds = 5.0  # type: ignore[misc]  # stopped before libFuzzer's -timeout
    sink = EvtxRows(src.NAME, native=native)
    sink.begin(ART.id, ART.display)
    out = []
    try:
        out += src.read_rows(ART, ctx, sink)
    except SourceError as exc:
        return ("error", str(exc)), []
    out += sink.flush()
    sink.report(ctx, src.NAME)
    return _merge_case(_table(out)), _warnings(ctx.warnings)


def target(data: bytes) -> None:
    PATH.write_bytes(data)
    (pt, pw), (nt, nw) = _read(False), _read(True)
    if pw != nw:
        raise AssertionError(f"warnings differ:\n{pw}\n{nw}")
    if pt != nt:
        raise AssertionError(f"rows differ:\n{pt}\n{nt}")


if __name__ == "__main__":
    if native_flatten() is None:
        print("fuzz_evtx_native: the native flatten is not built; nothing to compare",
              file=sys.stderr)
        sys.exit(0)
    main(target)
