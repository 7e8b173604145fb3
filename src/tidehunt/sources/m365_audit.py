"""Microsoft 365 unified audit log exports: the JSON records (array or lines) or the
portal's CSV (CreationDate, UserIds, Operations, AuditData) into ``cloud_audit``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any, ClassVar

import orjson

from tidehunt.context import RunContext
from tidehunt.errors import SourceError
from tidehunt.model.batch import TableBatch
from tidehunt.model.times import parse_time
from tidehunt.sources._cloud import cloud_batch
from tidehunt.sources._json import seq
from tidehunt.sources.base import Artefact, Source
from tidehunt.sources.entra_signin import records

MAX_BYTES = 1 << 30


def _params(rec: dict[str, Any]) -> dict[str, str]:
    """Exchange cmdlet parameters (New-InboxRule, Set-Mailbox...) as name -> value."""
    out = {}
    for p in seq(rec.get("Parameters")):
        if isinstance(p, dict) and p.get("Name"):
            out[str(p["Name"])] = str(p.get("Value", ""))
    return out


def row(rec: dict[str, Any], display: str) -> dict[str, Any] | None:
    """One audit record as a cloud_audit row (None without a time)."""
    ts = parse_time(rec.get("CreationTime"))
    if ts is None:
        return None
    op = str(rec.get("Operation") or "")
    params = _params(rec)
    target = (params.get("ForwardTo") or params.get("RedirectTo") or
              params.get("ForwardAsAttachmentTo") or params.get("ForwardingSmtpAddress") or
              params.get("ForwardingAddress") or rec.get("TargetUserOrGroupName") or
              rec.get("TargetUserOrGroupType"))
    app = None
    if op.lower().startswith(("consent to application", "add delegated permission",
                              "add app role assignment", "add service principal")):
        for t in seq(rec.get("Target")):
            if isinstance(t, dict) and t.get("Type") in (1, 2, "1", "2") and t.get("ID"):
                app = str(t["ID"])
        for m in seq(rec.get("ModifiedProperties")):
            if isinstance(m, dict) and "DisplayName" in str(m.get("Name", "")):
                app = str(m.get("NewValue") or app or "").strip('"[] ') or app
    detail = orjson.dumps(params).decode() if params else None
    return {"ts": ts, "user": str(rec.get("UserId") or "").lower() or None, "operation": op,
            "workload": rec.get("Workload"), "object": rec.get("ObjectId") or
            rec.get("SourceFileName"), "src_ip": (str(rec.get("ClientIP") or "")
                                                   .split(":")[0] if str(rec.get("ClientIP")
                                                                         or "").count(":")
                                                   == 1 else rec.get("ClientIP")) or None,
            "target": str(target) if target else None,
            "visibility": rec.get("SharingType") or rec.get("EventData"),
            "app": app, "detail": detail, "provider": "m365", "source_file": display}


class M365AuditSource(Source):
    """Unified audit log records: SharePoint/OneDrive file events and sharing, Exchange
    inbox rules and forwarding, Entra consent to applications."""

    NAME: ClassVar[str] = "m365_audit"
    FORMAT: ClassVar[str] = "Microsoft 365 unified audit log (JSON or portal CSV)"
    WRITES: ClassVar[tuple[str, ...]] = ("cloud_audit",)
    PRIORITY: ClassVar[int] = 5

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """Audit record fields, or the portal CSV header."""
        h = head[:16384]
        if h.lstrip()[:1] in (b"[", b"{"):
            return b'"CreationTime"' in h and b'"Operation"' in h and b'"Workload"' in h
        first = h.split(b"\n", 1)[0].lower()
        return b"auditdata" in first and b"operations" in first

    def read(self, artefact: Artefact, ctx: RunContext) -> Iterator[TableBatch]:
        """Every record; the CSV's AuditData column holds the JSON record."""
        with artefact.open() as fh:
            data = fh.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise SourceError(f"{artefact.display}: larger than 1 GiB")
        recs: list[tuple[str, dict[str, Any]]] = []
        if data.lstrip()[:1] in (b"[", b"{"):
            try:
                recs = [(str(r.get("Id") or f"record {i}"), r)
                        for i, r in enumerate(records(data))]
            except (orjson.JSONDecodeError, SourceError) as exc:
                raise SourceError(f"{artefact.display}: not an audit export: {exc}") from exc
        else:
            reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig", "replace"),
                                                newline=""))
            n = 1
            try:
                for n, r in enumerate(reader, 2):
                    raw = {(k or "").strip().lower(): v for k, v in r.items()}
                    cell = raw.get("auditdata")
                    try:
                        recs.append((f"line {n}", orjson.loads(cell if isinstance(cell, str)
                                                               else "")))
                    except orjson.JSONDecodeError:
                        ctx.warn(artefact.id, self.NAME, "AuditData cell that is not JSON",
                                 [f"line {n}"], path=artefact.display)
            except csv.Error as exc:
                ctx.warn(artefact.id, self.NAME, f"CSV unreadable after this row ({exc}); "
                         "the rest of the file is not read", [f"line {n}"],
                         path=artefact.display)
        rows, locs, bad = [], [], []
        for loc, r in recs:
            out = row(r, artefact.display) if isinstance(r, dict) else None
            if out is None:
                bad.append(loc)
                continue
            rows.append(out)
            locs.append(loc)
        if bad:
            ctx.warn(artefact.id, self.NAME, "audit records without a readable CreationTime",
                     bad[:100], count=len(bad), path=artefact.display)
        if rows:
            yield cloud_batch(rows, self.NAME, artefact.id, locs)
