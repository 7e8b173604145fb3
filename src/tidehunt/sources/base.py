"""Source base class and the Artefact (one evidence file) it reads."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.model.batch import TableBatch


@dataclass(frozen=True, slots=True)
class Artefact:
    """One evidence file: its manifest id, real path and the path as the user gave it."""

    id: str
    path: Path
    display: str
    #: The file's bytes, when the task that hashed it kept them for its reader (see
    #: ``tidehunt.ingest.hash_in_task``); None: readers open the file.
    data: bytes | None = field(default=None, repr=False, compare=False)

    def open(self) -> IO[bytes]:
        """Open read-only, binary. Evidence is never written."""
        return open(self.path, "rb")


class Source(abc.ABC):
    """A reader for one evidence format."""

    NAME: ClassVar[str]
    FORMAT: ClassVar[str]
    WRITES: ClassVar[tuple[str, ...]]
    #: Higher wins when two Sources claim the same head (e.g. a generic JSON reader).
    PRIORITY: ClassVar[int] = 0
    #: A binary signature the format always starts with. A head that starts with one is
    #: sniffed only by the Sources declaring it: no text format can begin that way, and
    #: the text sniffers' decoding of binary heads was most of the cost of sniffing EVTX.
    MAGIC: ClassVar[bytes | None] = None

    def __init__(self) -> None:
        #: Ingest options that reach the readers (attachment passwords, unpack limits...).
        self.options: dict[str, Any] = {}
        #: The case folder, for sources that keep copies of what they unpack (attachments).
        self.case_root: str | None = None

    @classmethod
    @abc.abstractmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """Return True if ``head`` (the first 64 KiB) looks like this format. No side effects."""

    @classmethod
    def claims(cls, artefact: Artefact, head: bytes, options: Mapping[str, Any]) -> bool:
        """Return True if the analyst's configuration among the ingest ``options`` (a
        column mapping whose header matches) names this file for this Source; a claim
        beats content sniffing. Default: no claim. Never raises, like :meth:`sniff`."""
        return False

    @abc.abstractmethod
    def read(self, artefact: Artefact, ctx: RunContext) -> Iterator[TableBatch]:
        """Yield batches; record bad records with ``ctx.warn``; raise SourceError if unreadable."""
