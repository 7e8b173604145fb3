"""IngestWarning: bad input recorded as data, not raised."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IngestWarning:
    """One kind of defect in one evidence file, with where it was (first 20 places)."""

    artefact: str
    source: str
    message: str
    locators: tuple[str, ...] = ()
    count: int = 1
    path: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "artefact": self.artefact,
            "path": self.path,
            "source": self.source,
            "message": self.message,
            "locators": list(self.locators),
            "count": self.count,
        }
