"""atheris harness: Outlook .msg files through the outlook_msg source (extract-msg,
olefile, our record and attachment walk)."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["tidehunt", "extract_msg", "olefile"]):
    import extract_msg  # noqa: F401 - imported here to be instrumented

    import tidehunt.sources.outlook_msg  # noqa: F401
    from fuzz._harness import main, source_target

if __name__ == "__main__":
    main(source_target("outlook_msg", "fuzz.msg"))
