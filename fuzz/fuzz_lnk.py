"""atheris harness: Windows shortcuts through the lnk analyser (LnkParse3 may raise on a
broken file; our reading of what it returns may not)."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["tidehunt", "LnkParse3"]):
    from fuzz._harness import library_may_raise, main
    from tidehunt.attachments.lnk import analyse_lnk
    from tidehunt.attachments.model import Report


def target(data: bytes) -> None:
    analyse_lnk(data, Report("fuzz.lnk", "lnk"))


if __name__ == "__main__":
    main(library_may_raise(target))
