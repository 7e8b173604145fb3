"""The case's indicators as they stand at match time: aged, scored, warninglist applied.
Network indicators (``cidr``) carry their first and last address as 128-bit integers
(decimal strings: Arrow has no such integer) and the number of host bits, for the join
of the intel match (address >> host bits = first >> host bits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from tidehunt.intel.ageing import AgeingPolicy
from tidehunt.intel.model import MIN_PREFIX, net_range
from tidehunt.intel.warninglist import Warninglist

LIVE_SCHEMA = pa.schema([
    ("type", pa.string()), ("value", pa.string()), ("source", pa.string()),
    ("first_seen", pa.timestamp("us", tz="UTC")), ("last_seen", pa.timestamp("us", tz="UTC")),
    ("valid_until", pa.timestamp("us", tz="UTC")), ("confidence", pa.int64()),
    ("context", pa.string()), ("source_file", pa.string()), ("artefact", pa.string()),
    ("locator", pa.string()), ("age_days", pa.float64()), ("lifetime_days", pa.int64()),
    ("score", pa.float64()), ("expired", pa.bool_()), ("net_lo", pa.string()),
    ("net_hi", pa.string()), ("net_shift", pa.int64()),
])
#: Listed networks, numbered as in LIVE_SCHEMA.
WARN_NET_SCHEMA = pa.schema([("net_lo", pa.string()), ("net_hi", pa.string()),
                             ("net_shift", pa.int64())])


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
    #: Networks wider than MIN_PREFIX (/8 for IPv4, /16 for IPv6): left out.
    too_broad: int = 0
    #: Warninglists loaded, and entries of them no type could read.
    warninglists: int = 0
    warninglist_skipped: int = 0


def live_table(rows: list[dict[str, Any]], opts: IntelOptions,
               wl: Warninglist | None = None) -> tuple[pa.Table, LiveStats]:
    """Indicator rows -> the ``intel_live`` table (``wl``: the warninglist already
    loaded from ``opts.warninglists``)."""
    now = opts.now or datetime.now(UTC)
    wl = wl or Warninglist.load(opts.warninglists)
    st = LiveStats(indicators=len(rows), warninglists=len(wl.lists),
                   warninglist_skipped=wl.skipped)
    out: dict[str, list[Any]] = {f.name: [] for f in LIVE_SCHEMA}
    for r in rows:
        kind, value = r["type"], r["value"]
        if wl.listed(kind, value):
            st.warninglisted += 1
            continue
        rng = net_range(value) if kind == "cidr" else None
        if kind == "cidr" and (rng is None or _too_broad(value)):
            st.too_broad += rng is not None
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
                "expired": expired, "net_lo": str(rng[0]) if rng else None,
                "net_hi": str(rng[1]) if rng else None,
                "net_shift": (rng[1] - rng[0] + 1).bit_length() - 1 if rng else None}
        for k, v in vals.items():
            out[k].append(v)
    return pa.table(out, schema=LIVE_SCHEMA), st


def _too_broad(value: str) -> bool:
    v, _, plen = value.partition("/")
    return int(plen or 128) < MIN_PREFIX[6 if ":" in v else 4]


def warn_net_table(wl: Warninglist) -> pa.Table:
    """The ``intel_warn_net`` table: listed networks, which a network indicator's matches
    leave out (a feed's /16 that holds a public resolver does not match the resolver)."""
    lo, hi, shift = wl.ranges()
    return pa.table({"net_lo": lo, "net_hi": hi, "net_shift": shift}, schema=WARN_NET_SCHEMA)
