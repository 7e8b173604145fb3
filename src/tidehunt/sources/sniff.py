"""Find the Source for an evidence file from its content, never its name."""

from __future__ import annotations

from tidehunt import registry
from tidehunt.errors import SourceError
from tidehunt.sources.base import Artefact, Source

HEAD = 65536


def sniff(artefact: Artefact, head: bytes | None = None) -> type[Source] | None:
    """The Source class whose ``sniff`` accepts the file; None when none does.

    Raises:
        SourceError: two Sources of equal priority claim it (names both).
    """
    if head is None:
        with artefact.open() as fh:
            head = fh.read(HEAD)
    hits: list[type[Source]] = [
        cls for cls in registry.all_of("sources").values() if cls.sniff(artefact, head)
    ]
    if not hits:
        return None
    hits.sort(key=lambda c: -c.PRIORITY)
    if len(hits) > 1 and hits[0].PRIORITY == hits[1].PRIORITY:
        names = ", ".join(c.NAME for c in hits)
        raise SourceError(f"{artefact.display}: more than one reader claims it ({names})")
    return hits[0]
