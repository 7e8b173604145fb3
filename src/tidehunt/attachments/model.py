"""What the attachment analysis says about one file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Levels in order, lowest first (as Sigma's).
LEVELS = ("informational", "low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class Indicator:
    """One thing found in a file, with a one-line explanation."""

    id: str
    severity: str
    detail: str
    technique: str | None = None
    cve: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        return {"id": self.id, "severity": self.severity, "detail": self.detail,
                "technique": self.technique, "cve": self.cve}


@dataclass(slots=True)
class Child:
    """A file that came out of another: an archive member, an OLE Package, decrypted content."""

    name: str
    data: bytes
    how: str
    note: str | None = None


@dataclass
class Report:
    """Everything the analysers found in one file; children are analysed in turn."""

    name: str
    kind: str = ""
    indicators: list[Indicator] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    lnk: dict[str, Any] | None = None
    macros: str | None = None
    encrypted: bool = False
    password: str | None = None
    lure_themes: list[str] = field(default_factory=list)
    lure_score: int = 0
    yara: list[dict[str, Any]] = field(default_factory=list)

    def add(self, ind: Indicator) -> None:
        """Keep one indicator per (id, detail)."""
        if all((i.id, i.detail) != (ind.id, ind.detail) for i in self.indicators):
            self.indicators.append(ind)

    @property
    def severity(self) -> str | None:
        """The highest level among the indicators, or None."""
        if not self.indicators:
            return None
        return max((i.severity for i in self.indicators), key=LEVELS.index)
