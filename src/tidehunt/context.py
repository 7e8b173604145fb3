"""RunContext: what every stage gets for logging, warnings, progress and cancellation."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tidehunt.model.warning import IngestWarning

ProgressFn = Callable[[str, int, int | None], None]


def printable(text: str) -> str:
    """``text`` as valid UTF-8: a path whose name is not (the bytes Python keeps as lone
    surrogates) with those bytes written ``\\xNN``. Such a string could not go into the
    manifest, an Arrow column or a report; the file itself is opened by its real name."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:  # a file name's bytes (surrogate-escaped): \xNN
            return os.fsencode(text).decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # any other lone surrogate (from a document): \uNNNN
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def not_regular(mode: int) -> str:
    """What a file that is not a regular one is, from its ``st_mode``: walks name it in
    a warning and never open it (reading a named pipe would wait for a writer)."""
    for test, name in ((stat.S_ISFIFO, "named pipe"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "unknown type"


def _no_progress(_stage: str, _done: int, _total: int | None) -> None:
    return None


def _never() -> bool:
    return False


@dataclass
class RunContext:
    """Per-run state handed to sources and detectors.

    ``warn`` merges repeats of the same message for the same artefact into one
    IngestWarning with a count and the first 20 locators.
    """

    log: logging.Logger = field(default_factory=lambda: logging.getLogger("tidehunt"))
    on_progress: ProgressFn = _no_progress
    should_stop: Callable[[], bool] = _never
    _warnings: dict[tuple[str, str, str], IngestWarning] = field(default_factory=dict)

    def warn(
        self,
        artefact: str,
        source: str,
        message: str,
        locators: Iterable[object] = (),
        count: int = 1,
        path: str = "",
    ) -> None:
        """Record a defect in the input; the run goes on."""
        locs = tuple(printable(str(x)) for x in locators)
        path, message = printable(path), printable(message)
        key = (artefact, source, message)
        old = self._warnings.get(key)
        if old is None:
            self._warnings[key] = IngestWarning(artefact, source, message, locs[:20], count, path)
        else:
            merged = (old.locators + locs)[:20]
            self._warnings[key] = IngestWarning(
                artefact, source, message, merged, old.count + count, old.path or path
            )
        self.log.info("%s: %s (%d)", path or artefact, message, count)

    @property
    def warnings(self) -> list[IngestWarning]:
        """Warnings so far, in the order first seen."""
        return list(self._warnings.values())

    def take_warnings(self) -> list[IngestWarning]:
        """Return and forget the warnings so far."""
        out = list(self._warnings.values())
        self._warnings.clear()
        return out
