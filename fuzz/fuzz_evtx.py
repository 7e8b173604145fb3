"""atheris harness: EVTX files through the evtx source's read path (header checks, the
Rust parser resumed after errors, record flattening)."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["tidehunt"]):
    import tidehunt.sources.evtx  # noqa: F401 - imported here to be instrumented
    from fuzz._harness import main, source_target


def _one_thread(src: object) -> None:
    src.threads = 1  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(source_target("evtx", "fuzz.evtx", _one_thread))
