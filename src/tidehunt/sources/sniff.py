"""Find the Source for an evidence file from its content, never its name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tidehunt import registry
from tidehunt.errors import SourceError
from tidehunt.sources.base import Artefact, Source

HEAD = 65536


def sniff(artefact: Artefact, head: bytes | None = None,
          options: Mapping[str, Any] | None = None,
          sources: Sequence[type[Source]] | None = None) -> type[Source] | None:
    """The Source class whose ``sniff`` accepts the file; None when none does.

    With ``options`` (the ingest options), a Source whose ``claims`` accepts the file
    (the analyst's column mapping fits its header) wins over content sniffing.
    ``sources``: the Sources to choose from (default: every registered one that imports;
    a caller sniffing many files passes ``readers()`` once).

    Raises:
        SourceError: two Sources of equal priority, or two claims, for one file.
    """
    if head is None:
        with artefact.open() as fh:
            head = fh.read(HEAD)
    if sources is None:
        sources = readers()
    signed = [cls for cls in sources if cls.MAGIC and head.startswith(cls.MAGIC)]
    if signed:  # a binary signature: only its readers decide (and may still refuse)
        sources = signed
    if options:
        claimed: list[type[Source]] = [cls for cls in sources
                                       if cls.claims(artefact, head, options)]
        if len(claimed) > 1:
            names = ", ".join(c.NAME for c in claimed)
            raise SourceError(f"{artefact.display}: the mappings of more than one reader "
                              f"fit it ({names})")
        if claimed:
            return claimed[0]
    hits: list[type[Source]] = [cls for cls in sources if cls.sniff(artefact, head)]
    if not hits:
        return None
    hits.sort(key=lambda c: -c.PRIORITY)
    if len(hits) > 1 and hits[0].PRIORITY == hits[1].PRIORITY:
        names = ", ".join(c.NAME for c in hits)
        raise SourceError(f"{artefact.display}: more than one reader claims it ({names})")
    return hits[0]


def readers() -> list[type[Source]]:
    """Every registered Source that imports."""
    return list(registry.all_of("sources").values())
