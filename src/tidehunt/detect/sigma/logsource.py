"""Sigma logsource -> table partition, as SigmaHQ's own pySigma pipelines define it.

The mapping is read from ``pysigma-pipeline-sysmon`` and ``pysigma-pipeline-windows``:
a probe rule with the logsource is run through both pipelines and the ``Channel`` and
``EventID`` conditions they add become the partition (channel in X and event_id in Y).
``process_creation`` also covers Security 4688, as the Windows audit pipeline maps it.
Results are memoised per logsource.
"""

from __future__ import annotations

from functools import cache
from typing import Any

#: Logsource products whose events live in the ``windows`` table.
WINDOWS_PRODUCTS = {"windows"}
#: Where process_creation rules also look, as pysigma-pipeline-windows' audit pipeline maps it.
AUDIT_4688 = ("Security", 4688)
#: Sysmon field -> the Security 4688 field holding the same value (the audit pipeline's map).
AUDIT_FIELDS = {"Image": "NewProcessName", "ParentImage": "ParentProcessName",
                "LogonId": "SubjectLogonId"}


def _pipeline() -> Any:
    """A new pipeline for each probe: applying one records state on it. Building one takes
    ~1 ms, a ``copy.deepcopy`` of a cached one ~2.5 ms (62 logsources at a cold compile)."""
    from sigma.pipelines.sysmon.sysmon import sysmon_pipeline
    from sigma.pipelines.windows.windows import windows_logsource_pipeline

    return sysmon_pipeline() + windows_logsource_pipeline()


@cache
def partition(category: str | None, product: str | None,
              service: str | None) -> dict[str, Any]:
    """``{"table", "channels", "event_ids"}`` or ``{"table": None, "reason": ...}``."""
    if (product or "").lower() not in WINDOWS_PRODUCTS:
        return {"table": None,
                "reason": f"logsource product {product!r} has no table in tidehunt yet"}
    from sigma.rule import SigmaRule

    ls = {k: v for k, v in (("category", category), ("product", product),
                             ("service", service)) if v}
    probe = SigmaRule.from_dict({
        "title": "probe",
        "logsource": ls,
        "detection": {"probe_selection": {"tidehunt_probe": "1"}, "condition":
                      "probe_selection"},
    })
    pipe = _pipeline()
    pipe.apply(probe)
    channels: list[str] = []
    event_ids: list[int] = []
    for name, det in probe.detection.detections.items():
        if name == "probe_selection":
            continue
        for item in det.detection_items:
            field = getattr(item, "field", None)
            vals = [getattr(v, "number", None) if field == "EventID" else str(v)
                    for v in getattr(item, "value", [])]
            if field == "Channel":
                channels += [v for v in vals if v]
            elif field == "EventID":
                event_ids += [int(v) for v in vals if v is not None]
    if (category or "").lower() == "process_creation":
        # SigmaHQ's windows_audit_pipeline: the same rules over Security 4688, with
        # Image/ParentImage read from NewProcessName/ParentProcessName (AUDIT_FIELDS)
        channels.append(AUDIT_4688[0])
        event_ids.append(AUDIT_4688[1])
    if not channels and not event_ids:
        if service or category:
            return {"table": None,
                    "reason": f"no Windows channel known for logsource "
                              f"{category or '-'}/{product}/{service or '-'}"}
        return {"table": "windows", "channels": None, "event_ids": None}
    return {"table": "windows", "channels": sorted(set(channels)) or None,
            "event_ids": sorted(set(event_ids)) or None}
