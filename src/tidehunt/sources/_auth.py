"""Shared parts of the sign-in sources: the ``auth`` columns and the batch builder."""

from __future__ import annotations

from typing import Any

from tidehunt.model.batch import TableBatch

AUTH_COLUMNS = ("ts", "user", "app", "src_ip", "result", "failure_reason", "mfa",
                "mfa_result", "interactive", "session_id", "token_id", "device", "user_agent",
                "country", "city", "lat", "lon", "provider", "event", "source_file")


def auth_batch(rows: list[dict[str, Any]], source: str, artefact: str,
               locators: list[str]) -> TableBatch:
    """Rows (dicts with AUTH_COLUMNS keys) as an ``auth`` batch typed by the schema."""
    return TableBatch.from_values("auth", {k: [r.get(k) for r in rows] for k in AUTH_COLUMNS},
                                  source=source, artefact=artefact, locators=locators)


def mfa_kind(text: str | None) -> str | None:
    """A method name folded to: push, otp, sms, call, fido, password, none."""
    t = str(text or "").lower()
    if not t:
        return None
    for key, kind in (("push", "push"), ("notification", "push"), ("verify", "push"),
                      ("authenticator app", "push"), ("otp", "otp"), ("totp", "otp"),
                      ("code", "otp"), ("token", "otp"), ("sms", "sms"), ("text", "sms"),
                      ("call", "call"), ("voice", "call"), ("fido", "fido"), ("webauthn", "fido"),
                      ("security key", "fido"), ("windows hello", "fido"), ("password", "password"),
                      ("single", "none"), ("none", "none")):
        if key in t:
            return kind
    return t[:40]
