"""Google Workspace audit activities (Reports API JSON: ``{"items": [...]}`` pages, an
array or lines; Drive, Token and Login applications) into ``cloud_audit``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import orjson

from tidehunt.context import RunContext
from tidehunt.errors import SourceError
from tidehunt.model.batch import TableBatch
from tidehunt.model.times import parse_time
from tidehunt.sources._cloud import cloud_batch
from tidehunt.sources._json import obj, seq
from tidehunt.sources.base import Artefact, Source
from tidehunt.sources.m365_audit import MAX_BYTES


def activities(data: bytes) -> list[dict[str, Any]]:
    """The activity objects of an export."""
    s = data.lstrip()
    if s[:1] == b"[":
        doc = orjson.loads(s)
        return [a for a in doc if isinstance(a, dict)] if isinstance(doc, list) else []
    try:
        doc = orjson.loads(s)
    except orjson.JSONDecodeError:
        lines = [orjson.loads(x) for x in s.splitlines() if x.strip()]
        return [a for a in lines if isinstance(a, dict)]
    if isinstance(doc, dict) and isinstance(doc.get("items"), list):
        return [a for a in doc["items"] if isinstance(a, dict)]
    return [doc] if isinstance(doc, dict) else []


def _params(ev: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in seq(ev.get("parameters")):
        if isinstance(p, dict) and p.get("name"):
            out[str(p["name"])] = p.get("value", p.get("multiValue", p.get("boolValue")))
    return out


class GwsAuditSource(Source):
    """Drive downloads, uploads, sharing and visibility changes; OAuth token grants."""

    NAME: ClassVar[str] = "gws_audit"
    FORMAT: ClassVar[str] = "Google Workspace audit activities (Reports API JSON)"
    WRITES: ClassVar[tuple[str, ...]] = ("cloud_audit",)
    PRIORITY: ClassVar[int] = 5

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """The Reports API activity kind."""
        return b"admin#reports#activity" in head[:16384]

    def read(self, artefact: Artefact, ctx: RunContext) -> Iterator[TableBatch]:
        """One row per event of each activity."""
        with artefact.open() as fh:
            data = fh.read(MAX_BYTES + 1)
        try:
            acts = activities(data)
        except orjson.JSONDecodeError as exc:
            raise SourceError(f"{artefact.display}: not a Reports API export: {exc}") from exc
        rows, locs = [], []
        for i, a in enumerate(acts):
            aid = obj(a.get("id"))
            ts = parse_time(aid.get("time"))
            if ts is None:
                ctx.warn(artefact.id, self.NAME, "activity without a readable id.time",
                         [f"activity {i}"], path=artefact.display)
                continue
            actor = obj(a.get("actor")).get("email")
            for j, ev in enumerate(seq(a.get("events"))):
                if not isinstance(ev, dict):
                    continue
                p = _params(ev)
                target = p.get("target_user") or p.get("target_domain")
                rows.append({
                    "ts": ts, "user": str(actor or "").lower() or None,
                    "operation": str(ev.get("name") or ""),
                    "workload": aid.get("applicationName"),
                    "object": p.get("doc_title") or p.get("doc_id"),
                    "src_ip": a.get("ipAddress"), "target": str(target) if target else None,
                    "visibility": p.get("visibility") or p.get("new_value"),
                    "app": p.get("app_name") or p.get("client_id"),
                    "detail": orjson.dumps(p, default=str).decode() if p else None,
                    "provider": "google", "source_file": artefact.display})
                locs.append(f"activity {i} event {j}")
        if rows:
            yield cloud_batch(rows, self.NAME, artefact.id, locs)
