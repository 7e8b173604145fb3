"""Okta System Log events (JSON export: array or one event per line) into ``auth``:
sign-ins, MFA challenges and their answers (pushes sent, denied, approved), SSO."""

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
from tidehunt.sources.entra_signin import MAX_BYTES, records


def _mfa(event: str, r: dict[str, Any]) -> tuple[str | None, str | None]:
    e = event.lower()
    dbg = obj(obj(r.get("debugContext")).get("debugData"))
    factor = dbg.get("factor") or dbg.get("factorType")
    res = str(obj(r.get("outcome")).get("result") or "").upper()
    if "push" in e or "factor" in e or "mfa" in e:
        kind = mfa_kind(str(factor or ("push" if "push" in e else "otp")))
        if "deny" in e or "reject" in e or res in ("DENY", "FAILURE"):
            return kind, "denied"
        if "send" in e:
            return kind, "sent"
        return kind, "approved" if res == "SUCCESS" else None
    return None, None


class OktaLogSource(Source):
    """Okta System Log: actor, client address and place, outcome, factor, session."""

    NAME: ClassVar[str] = "okta_log"
    FORMAT: ClassVar[str] = "Okta System Log (JSON export)"
    WRITES: ClassVar[tuple[str, ...]] = ("auth",)
    PRIORITY: ClassVar[int] = 5

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """Okta's field names near the top."""
        h = head[:16384]
        return (h.lstrip()[:1] in (b"[", b"{") and b'"eventType"' in h and b'"actor"' in h
                and b'"published"' in h)

    def read(self, artefact: Artefact, ctx: RunContext) -> Iterator[TableBatch]:
        """Authentication-related events (user.*, system.push.*, policy.evaluate_sign_on)."""
        with artefact.open() as fh:
            data = fh.read(MAX_BYTES + 1)
        try:
            recs = records(data)
        except (orjson.JSONDecodeError, SourceError) as exc:
            raise SourceError(f"{artefact.display}: not an Okta log export: {exc}") from exc
        rows, locs = [], []
        for i, r in enumerate(recs):
            event = str(r.get("eventType") or "")
            if not event.startswith(("user.", "system.push", "policy.evaluate_sign_on")):
                continue
            client = obj(r.get("client"))
            geo = obj(client.get("geographicalContext"))
            gl = obj(geo.get("geolocation"))
            out = obj(r.get("outcome"))
            ts = parse_time(r.get("published"))
            if ts is None:
                ctx.warn(artefact.id, self.NAME, "event without a readable published time",
                         [f"record {i}"], path=artefact.display)
                continue
            kind, answer = _mfa(event, r)
            targets = [t for t in seq(r.get("target")) if isinstance(t, dict)]
            app = next((t.get("displayName") for t in targets
                        if t.get("type") in ("AppInstance", "AppUser")), None)
            res = str(out.get("result") or "").upper()
            rows.append({
                "ts": ts, "user": str(obj(r.get("actor")).get("alternateId") or "").lower()
                or None, "app": app, "src_ip": client.get("ipAddress"),
                "result": "success" if res in ("SUCCESS", "ALLOW") else
                "failure" if res in ("FAILURE", "DENY") else res.lower() or None,
                "failure_reason": out.get("reason"), "mfa": kind, "mfa_result": answer,
                "interactive": True,
                "session_id": obj(r.get("authenticationContext")).get("externalSessionId"),
                "token_id": None, "device": (client.get("device") or None),
                "user_agent": obj(client.get("userAgent")).get("rawUserAgent"),
                "country": geo.get("country"), "city": geo.get("city"),
                "lat": gl.get("lat"), "lon": gl.get("lon"), "provider": "okta",
                "event": event, "source_file": artefact.display})
            locs.append(str(r.get("uuid") or f"record {i}"))
        if rows:
            yield auth_batch(rows, self.NAME, artefact.id, locs)
