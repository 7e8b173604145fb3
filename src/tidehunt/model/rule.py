"""Rule metadata shared by every engine (Sigma, YARA, IOC, analytics)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum


class Severity(IntEnum):
    """Ordered severity, so ``>= Severity.HIGH`` works."""

    INFORMATIONAL = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str | None) -> Severity:
        """Parse a Sigma level name ('informational', 'info', 'high', ...).

        Raises:
            ValueError: not a level name.
        """
        if text is None:
            return cls.MEDIUM
        t = text.strip().lower()
        aliases = {"info": "informational", "crit": "critical", "med": "medium"}
        t = aliases.get(t, t)
        try:
            return cls[t.upper()]
        except KeyError:
            raise ValueError(
                f"unknown level {text!r}; use one of {', '.join(s.label for s in cls)}"
            ) from None

    @property
    def label(self) -> str:
        """Lower-case name as Sigma writes it."""
        return self.name.lower()


_TECH = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)
_TACTIC = re.compile(r"^attack\.([a-z][a-z-]+)$")
#: ATT&CK tactic short names (v18, plus the names newer Sigma tags use).
TACTICS: tuple[str, ...] = (
    "reconnaissance", "resource-development", "initial-access", "execution", "persistence",
    "privilege-escalation", "defense-evasion", "stealth", "defense-impairment",
    "credential-access", "discovery", "lateral-movement", "collection", "command-and-control",
    "exfiltration", "impact",
)


@dataclass(frozen=True, slots=True)
class AttackRef:
    """One ATT&CK technique with the tactics the rule ties it to."""

    technique_id: str
    tactics: tuple[str, ...] = ()

    @staticmethod
    def from_sigma_tags(tags: Iterable[str]) -> tuple[tuple[AttackRef, ...], tuple[str, ...]]:
        """Techniques and tactics named by Sigma tags such as ``attack.t1059.001``."""
        techs: list[str] = []
        tactics: list[str] = []
        for tag in tags:
            t = tag.strip().lower().replace("_", "-")
            if m := _TECH.match(t):
                tid = m.group(1).upper()
                if tid not in techs:
                    techs.append(tid)
            elif (m := _TACTIC.match(t)) and m.group(1) in TACTICS and m.group(1) not in tactics:
                tactics.append(m.group(1))
        tac = tuple(tactics)
        return tuple(AttackRef(t, tac) for t in techs), tac


@dataclass(frozen=True, slots=True)
class RuleLocation:
    """Where a rule was read from."""

    path: str
    line: int | None = None


@dataclass(frozen=True, slots=True)
class RuleMeta:
    """What every finding says about the rule that raised it."""

    id: str
    title: str
    engine: str
    severity: Severity
    attack: tuple[AttackRef, ...] = ()
    tactics: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    location: RuleLocation | None = None
    version: str = ""
    description: str = ""
    tags: tuple[str, ...] = field(default=())

    @property
    def techniques(self) -> tuple[str, ...]:
        """ATT&CK technique ids."""
        return tuple(a.technique_id for a in self.attack)
