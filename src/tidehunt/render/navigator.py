"""ATT&CK Navigator 4.5 layer of the techniques that fired in the case: score = findings,
colour by the worst level, the rules named in the comment. (The posture layer beside it,
``posture-layer.json``, shows coverage; this one shows what happened.)"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import IO, Any

import orjson
import pyarrow as pa

from tidehunt.correlate import LEVEL_WEIGHT
from tidehunt.model.report import RunReport
from tidehunt.render.html import LEVEL_COLOR

NAME = "navigator"


def layer(report: RunReport, findings: pa.Table) -> dict[str, Any]:
    """The layer as data."""
    counts: Counter[str] = Counter()
    worst: dict[str, str] = {}
    rules: dict[str, set[str]] = defaultdict(set)
    for r in findings.select(["techniques", "level", "rule_title"]).to_pylist():
        for t in dict.fromkeys(r["techniques"] or []):
            counts[t] += 1
            if LEVEL_WEIGHT.get(r["level"], 0) >= LEVEL_WEIGHT.get(worst.get(t, ""), -1):
                worst[t] = r["level"]
            rules[t].add(r["rule_title"])
    case = report.meta.case.rstrip("/").rsplit("/", 1)[-1]
    techniques = [{
        "techniqueID": t, "score": n, "color": LEVEL_COLOR.get(worst[t], "#999999"),
        "comment": f"{n} finding(s), worst {worst[t]}: " + "; ".join(sorted(rules[t]))[:900],
        "enabled": True, "showSubtechniques": True,
        "metadata": [{"name": "findings", "value": str(n)},
                     {"name": "worst level", "value": worst[t]}],
    } for t, n in sorted(counts.items())]
    return {
        "name": f"tidehunt findings: {case}",
        "versions": {"attack": "18", "navigator": "4.5", "layer": "4.5"},
        "domain": "enterprise-attack",
        "description": f"Techniques of the {report.findings_count} findings of "
                       f"{report.meta.case} ({report.meta.finished}).",
        "sorting": 3, "hideDisabled": False,
        "layout": {"layout": "side", "showID": True, "showName": True},
        "techniques": techniques,
        "gradient": {"colors": ["#ffe0e0", "#8b0000"], "minValue": 0,
                     "maxValue": max(counts.values(), default=1)},
        "legendItems": [{"label": lv, "color": LEVEL_COLOR[lv]}
                        for lv in ("critical", "high", "medium", "low", "informational")],
    }


def render(report: RunReport, findings: pa.Table, out: IO[bytes]) -> None:
    """Write the layer JSON."""
    out.write(orjson.dumps(layer(report, findings), option=orjson.OPT_INDENT_2))
