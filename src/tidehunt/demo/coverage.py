"""Which stages of the demo intrusion story the findings detect."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from tidehunt.demo.generate import story

BEFORE = timedelta(minutes=5)
AFTER = timedelta(minutes=90)


def _parent(t: str) -> str:
    return t.split(".")[0]


def coverage(findings: pa.Table) -> list[dict[str, Any]]:
    """For each story stage: the findings on its host, near its time, sharing a technique."""
    rows = findings.select(["ts", "host", "rule_title", "techniques"]).to_pylist()
    out = []
    for stage in story():
        when = datetime.fromisoformat(stage["time"].replace("Z", "+00:00"))
        hosts = tuple(h.strip().lower() for h in stage["host"].split("->"))
        techs = {t.strip() for t in stage["techniques"].split(",") if t.strip()}
        parents = {_parent(t) for t in techs}
        titles: dict[str, int] = {}
        for r in rows:
            if r["ts"] is None or not (when - BEFORE <= r["ts"] <= when + AFTER):
                continue
            if not (r["host"] or "").lower().startswith(hosts):
                continue
            found = set(r["techniques"] or [])
            if found & techs or {_parent(t) for t in found} & parents:
                titles[r["rule_title"]] = titles.get(r["rule_title"], 0) + 1
        out.append({**stage, "detected_by": titles})
    return out
