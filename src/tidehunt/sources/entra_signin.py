"""Entra ID (Azure AD) sign-in logs exported as JSON (Graph ``signIns``: an array, a
``{"value": [...]}`` page, or one object per line) into the ``auth`` table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import orjson

from tidehunt.context import RunContext
from tidehunt.errors import SourceError
from tidehunt.model.batch import TableBatch
from tidehunt.model.times import parse_time
from tidehunt.sources._auth import auth_batch, mfa_kind
from tidehunt.sources._json import obj, seq
from tidehunt.sources.base import Artefact, Source

MAX_BYTES = 1 << 30


def records(data: bytes) -> list[dict[str, Any]]:
    """The sign-in objects of an export (array, Graph page, or JSON lines)."""
    s = data.lstrip()
    if s[:1] == b"[":
        doc = orjson.loads(s)
        return [d for d in doc if isinstance(d, dict)]
    if s[:1] == b"{":
        try:
            doc = orjson.loads(s)
        except orjson.JSONDecodeError:
            lines = [orjson.loads(x) for x in s.splitlines() if x.strip()]
            return [d for d in lines if isinstance(d, dict)]
        if isinstance(doc, dict) and isinstance(doc.get("value"), list):
            return [d for d in doc["value"] if isinstance(d, dict)]
        return [doc] if isinstance(doc, dict) else []
    raise SourceError("not JSON")


class EntraSigninSource(Source):
    """Entra ID sign-ins: user, app, address, result, MFA detail, session, device, place."""

    NAME: ClassVar[str] = "entra_signin"
    FORMAT: ClassVar[str] = "Entra ID / Azure AD sign-in log (JSON export)"
    WRITES: ClassVar[tuple[str, ...]] = ("auth",)
    PRIORITY: ClassVar[int] = 5

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """Graph sign-in field names near the top."""
        h = head[:16384]
        return (h.lstrip()[:1] in (b"[", b"{") and b'"userPrincipalName"' in h
                and b'"createdDateTime"' in h and (b'"appDisplayName"' in h
                                                   or b'"status"' in h))

    def read(self, artefact: Artefact, ctx: RunContext) -> Iterator[TableBatch]:
        """All records of the export, one batch."""
        with artefact.open() as fh:
            data = fh.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise SourceError(f"{artefact.display}: larger than 1 GiB")
        try:
            recs = records(data)
        except (orjson.JSONDecodeError, SourceError) as exc:
            raise SourceError(f"{artefact.display}: not a sign-in export: {exc}") from exc
        rows, locs = [], []
        for i, r in enumerate(recs):
            st = obj(r.get("status"))
            loc = obj(r.get("location"))
            geo = obj(loc.get("geoCoordinates"))
            dev = obj(r.get("deviceDetail"))
            mfa = obj(r.get("mfaDetail"))
            req = str(r.get("authenticationRequirement") or "")
            steps = seq(r.get("authenticationDetails"))
            method = mfa.get("authMethod") or next(
                (s.get("authenticationMethod") for s in steps if isinstance(s, dict)
                 and s.get("authenticationStepRequirement") == "multiFactorAuthentication"),
                None)
            mfa_ok = None
            for s in steps:
                if isinstance(s, dict) and s.get("authenticationMethod") == method:
                    mfa_ok = "approved" if s.get("succeeded") else (
                        "denied" if s.get("succeeded") is False else None)
            code = st.get("errorCode")
            code = code if isinstance(code, int | str) else None
            ts = parse_time(r.get("createdDateTime"))
            if ts is None:
                ctx.warn(artefact.id, self.NAME, "sign-in without a readable createdDateTime",
                         [f"record {i}"], path=artefact.display)
                continue
            rows.append({
                "ts": ts, "user": str(r.get("userPrincipalName") or "").lower() or None,
                "app": r.get("appDisplayName"), "src_ip": r.get("ipAddress"),
                "result": "success" if code in (0, "0", None) else "failure",
                "failure_reason": st.get("failureReason") if code not in (0, "0", None)
                else None,
                "mfa": mfa_kind(method) if method else (
                    "none" if req == "singleFactorAuthentication" else None),
                "mfa_result": mfa_ok, "interactive": r.get("isInteractive"),
                "session_id": r.get("correlationId"),
                "token_id": r.get("uniqueTokenIdentifier") or r.get("sessionId"),
                "device": dev.get("displayName") or dev.get("operatingSystem"),
                "user_agent": r.get("userAgent"), "country": loc.get("countryOrRegion"),
                "city": loc.get("city"), "lat": geo.get("latitude"),
                "lon": geo.get("longitude"), "provider": "entra",
                "event": "sign-in", "source_file": artefact.display})
            locs.append(str(r.get("id") or f"record {i}"))
        if rows:
            yield auth_batch(rows, self.NAME, artefact.id, locs)
