"""atheris harness: EVTX files through the evtx source's read path (header checks, the
Rust parser resumed after errors, record flattening).

The parser runs in this process (``isolate`` off): a damaged file would otherwise be
parsed in a child, which is slow per input and hides a parser that loops. A libFuzzer
timeout here is such a loop; in ``ingest`` the child is killed after ``stall_seconds``
(tests/robustness/test_evtx_parser_stall.py)."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["tidehunt"]):
    import tidehunt.sources.evtx  # noqa: F401 - imported here to be instrumented
    from fuzz._harness import main, source_target


def _one_thread(src: object) -> None:
    src.threads = 1  # type: ignore[attr-defined]
    src.isolate = False  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(source_target("evtx", "fuzz.evtx", _one_thread))
