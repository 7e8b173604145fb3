"""Indicator ageing: a per-type lifetime and MISP's polynomial decay.

score(t) = base * (1 - (t / lifetime) ** (1 / speed)), t the age in days since the
indicator was last seen (else first seen, else the report date), ``speed`` 0.3 (MISP's
default decay speed: slow at first, steep near the end). Lifetimes follow OpenCTI's
defaults: IP addresses (and networks) 60 days, URLs 180, everything else 365. An
indicator is expired once its age passes its lifetime or its ``valid_until`` has gone by;
expired indicators still match in retro-hunt mode (the default), labelled expired.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_LIFETIME_DAYS = {"ip": 60, "url": 180}
OTHER_LIFETIME_DAYS = 365
DECAY_SPEED = 0.3
DEFAULT_BASE = 70


@dataclass(frozen=True)
class AgeingPolicy:
    """Lifetimes per type (days) and the decay speed."""

    lifetimes: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIFETIME_DAYS))
    other: int = OTHER_LIFETIME_DAYS
    speed: float = DECAY_SPEED
    base: int = DEFAULT_BASE

    def lifetime(self, kind: str) -> int:
        """Days an indicator of this type stays live (a network lives as long as an
        address, unless ``cidr=DAYS`` says otherwise)."""
        if kind == "cidr" and kind not in self.lifetimes:
            kind = "ip"
        return self.lifetimes.get(kind, self.other)

    def score(self, kind: str, age_days: float | None, confidence: int | None) -> float:
        """The current score, 0-100 (0 once expired)."""
        base = float(confidence if confidence is not None else self.base)
        if age_days is None:
            return base
        frac = max(0.0, age_days) / max(1, self.lifetime(kind))
        return round(max(0.0, base * (1 - frac ** (1 / self.speed))), 1) if frac < 1 else 0.0

    def sql_score(self, kind: str, age: str, confidence: str) -> str:
        """:meth:`score` as a DuckDB expression over column expressions."""
        del kind
        return (f"CASE WHEN {age} IS NULL THEN coalesce({confidence}, {self.base}) "
                f"WHEN {age} >= lifetime THEN 0.0 ELSE round(greatest(0.0, "
                f"coalesce({confidence}, {self.base}) * (1 - pow(greatest({age}, 0) / "
                f"lifetime, {1 / self.speed}))), 1) END")

    @classmethod
    def parse(cls, items: list[str]) -> AgeingPolicy:
        """From ``TYPE=DAYS`` strings (``--intel-lifetime ip=30``)."""
        lifetimes = dict(DEFAULT_LIFETIME_DAYS)
        other = OTHER_LIFETIME_DAYS
        for it in items:
            k, _, v = it.partition("=")
            if not v.strip().isdigit():
                from tidehunt.errors import ConfigError

                raise ConfigError(f"--intel-lifetime wants TYPE=DAYS, got {it!r}")
            if k.strip() in ("other", "*"):
                other = int(v)
            else:
                lifetimes[k.strip()] = int(v)
        return cls(lifetimes, other)
