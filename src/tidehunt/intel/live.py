"""The case's indicators as they stand at match time: aged, scored, warninglist applied."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from tidehunt.intel.ageing import AgeingPolicy
from tidehunt.intel.warninglist import Warninglist

LIVE_SCHEMA = pa.schema([
    ("type", pa.string()), ("value", pa.string()), ("source", pa.string()),
    ("first_seen", pa.timestamp("us", tz="UTC")), ("last_seen", pa.timestamp("us", tz="UTC")),
    ("valid_until", pa.timestamp("us", tz="UTC")), ("confidence", pa.int64()),
    ("context", pa.string()), ("source_file", pa.string()), ("artefact", pa.string()),
    ("locator", pa.string()), ("age_days", pa.float64()), ("lifetime_days", pa.int64()),
    ("score", pa.float64()), ("expired", pa.bool_()),
])


@dataclass
class IntelOptions:
    """How intel is matched."""

    retro: bool = True
    policy: AgeingPolicy = field(default_factory=AgeingPolicy)
    warninglists: list[str] = field(default_factory=list)
    now: datetime | None = None


@dataclass
class LiveStats:
    """What was left out, and why."""

    indicators: int = 0
    warninglisted: int = 0
    expired: int = 0
    expired_dropped: int = 0


def live_table(rows: list[dict[str, Any]], opts: IntelOptions) -> tuple[pa.Table, LiveStats]:
    """Indicator rows -> the ``intel_live`` table."""
    now = opts.now or datetime.now(UTC)
    wl = Warninglist.load(opts.warninglists)
    st = LiveStats(indicators=len(rows))
    out: dict[str, list[Any]] = {f.name: [] for f in LIVE_SCHEMA}
    for r in rows:
        kind, value = r["type"], r["value"]
        if wl.listed(kind, value):
            st.warninglisted += 1
            continue
        seen = r["last_seen"] or r["first_seen"]
        age = (now - seen).total_seconds() / 86400 if seen else None
        life = opts.policy.lifetime(kind)
        expired = bool((age is not None and age > life) or
                       (r["valid_until"] is not None and r["valid_until"] < now))
        if expired:
            st.expired += 1
            if not opts.retro:
                st.expired_dropped += 1
                continue
        vals = {"type": kind, "value": value, "source": r["source"],
                "first_seen": r["first_seen"], "last_seen": r["last_seen"],
                "valid_until": r["valid_until"], "confidence": r["confidence"],
                "context": r["context"], "source_file": r["source_file"],
                "artefact": r["_artefact"], "locator": r["_locator"],
                "age_days": round(age, 1) if age is not None else None,
                "lifetime_days": life,
                "score": 0.0 if expired else opts.policy.score(kind, age, r["confidence"]),
                "expired": expired}
        for k, v in vals.items():
            out[k].append(v)
    return pa.table(out, schema=LIVE_SCHEMA), st
