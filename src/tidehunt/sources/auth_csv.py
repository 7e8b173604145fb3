"""Sign-ins of a VPN or appliance exported as CSV, found by its header (time, user, address
and a result or factor column) and read into ``auth``; ``--auth-mapping FILE`` (YAML:
our column: their header) names columns the built-in names do not cover, and a CSV whose
header holds every mapped name is read even when the built-in names find nothing::

    ts: Event Time
    user: Login Name
    src_ip: Client Address
    result: Outcome
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.errors import ConfigError, SourceError
from tidehunt.model.batch import TableBatch
from tidehunt.model.times import parse_time
from tidehunt.sources._auth import auth_batch, mfa_kind
from tidehunt.sources._lines import decode_text, text_head, utf16_of
from tidehunt.sources.base import Artefact, Source
from tidehunt.yamlconf import load_yaml

MAX_BYTES = 1 << 30
NAMES: dict[str, tuple[str, ...]] = {
    "ts": ("time", "timestamp", "date", "datetime", "@timestamp", "event_time", "logtime"),
    "user": ("user", "username", "user_name", "account", "login", "userid", "user_id"),
    "src_ip": ("src_ip", "source_ip", "client_ip", "ip", "remote_ip", "src", "ip_address",
               "public_ip", "remote_address"),
    "result": ("result", "status", "outcome", "action", "auth_result"),
    "mfa": ("mfa", "factor", "auth_method", "second_factor", "2fa", "mfa_method"),
    "mfa_result": ("mfa_result", "factor_result", "mfa_status"),
    "app": ("app", "application", "service", "resource", "portal", "realm"),
    "session_id": ("session", "session_id", "sessionid"),
    "country": ("country", "geo_country"), "user_agent": ("user_agent", "useragent"),
}
_OK = {"success", "succeeded", "ok", "allow", "allowed", "accept", "accepted", "pass",
       "passed", "granted", "true", "1"}
_BAD = {"failure", "failed", "fail", "deny", "denied", "reject", "rejected", "error",
        "false", "0", "blocked"}


def columns(header: list[str], mapping: dict[str, str] | None = None) -> dict[str, int]:
    """Our column -> index in their header."""
    low = [h.strip().lower() for h in header]
    out = {}
    for ours, theirs in NAMES.items():
        for t in theirs:
            if t in low:
                out[ours] = low.index(t)
                break
    for ours, name in (mapping or {}).items():
        if str(name).strip().lower() in low:
            out[ours] = low.index(str(name).strip().lower())
    return out


def load_auth_mapping(path: str | Path) -> dict[str, str]:
    """An ``--auth-mapping`` file: our column -> their header name, checked.

    Raises:
        ConfigError: not YAML, not a mapping of names, or a column ``auth`` does not read.
    """
    doc = load_yaml(path, "auth mapping")
    if not isinstance(doc, dict) or not doc:
        raise ConfigError(f"{path}: auth mapping must map our columns to their header "
                          f"names (our columns: {', '.join(NAMES)})")
    out: dict[str, str] = {}
    for ours, theirs in doc.items():
        if ours not in NAMES:
            raise ConfigError(f"{path}: {ours!r} is not a column the sign-in CSV reader "
                              f"fills (known: {', '.join(NAMES)})")
        if not isinstance(theirs, str) or not theirs.strip():
            raise ConfigError(f"{path}: column {ours} wants a header name, not {theirs!r}")
        out[str(ours)] = theirs.strip()
    return out


def _first_row(head: bytes) -> list[str] | None:
    if utf16_of(head):  # PowerShell's Out-File: UTF-16 with a byte-order mark
        head = text_head(head).encode("utf-8")
    first_b = head.split(b"\n", 1)[0].rstrip(b"\r")
    if b"," not in first_b or b"\x00" in first_b or len(first_b) > 4096:
        return None
    try:  # a sniffer never raises, whatever the bytes
        return next(csv.reader([first_b.decode("utf-8", "replace").lstrip("\ufeff")]))
    except (csv.Error, StopIteration):
        return None


class AuthCsvSource(Source):
    """A CSV of sign-ins (VPN, firewall portal, appliance)."""

    NAME: ClassVar[str] = "auth_csv"
    FORMAT: ClassVar[str] = "VPN / appliance sign-in CSV"
    WRITES: ClassVar[tuple[str, ...]] = ("auth",)

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """A header with a time, a user, an address and a result or factor column."""
        header = _first_row(head)
        if header is None:
            return False
        cols = columns(header)
        return {"ts", "user", "src_ip"} <= set(cols) and bool({"result", "mfa"} & set(cols))

    @classmethod
    def claims(cls, artefact: Artefact, head: bytes, options: Mapping[str, Any]) -> bool:
        """The ``--auth-mapping`` names are all in the header, with a time and a user."""
        mapping = options.get("auth_mapping")
        if not isinstance(mapping, dict) or not mapping:
            return False
        header = _first_row(head)
        if header is None:
            return False
        low = {h.strip().lower() for h in header}
        if not all(str(v).strip().lower() in low for v in mapping.values()):
            return False
        return {"ts", "user"} <= set(columns(header, mapping))

    def read(self, artefact: Artefact, ctx: RunContext) -> Iterator[TableBatch]:
        """Every row with a readable time; others are warnings."""
        with artefact.open() as fh:  # read(MAX_BYTES + 1) would reserve 1 GiB for any file
            if os.fstat(fh.fileno()).st_size > MAX_BYTES:
                raise SourceError(f"{artefact.display}: larger than 1 GiB")
            data = fh.read()
        if len(data) > MAX_BYTES:
            raise SourceError(f"{artefact.display}: larger than 1 GiB")
        text, enc, n_bad = decode_text(data)
        if n_bad:
            where: list[str] = []
            at, seen, line = text.find("\ufffd"), 0, 1
            while at >= 0 and len(where) < 20:  # the first lines that hold one
                line += text.count("\n", seen, at)
                where.append(f"line {line}")
                seen = text.find("\n", at)
                at = text.find("\ufffd", seen) if seen >= 0 else -1
            ctx.warn(artefact.id, self.NAME, f"bytes that are not {enc} replaced with U+FFFD",
                     where, count=n_bad, path=artefact.display)
        reader = csv.reader(io.StringIO(text, newline=""))  # a bare CR inside a cell is data
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise SourceError(f"{artefact.display}: header is not CSV: {exc}") from exc
        if not header:
            raise SourceError(f"{artefact.display}: empty")
        cols = columns(header, self.options.get("auth_mapping"))
        rows: list[dict[str, Any]] = []
        locs, bad = [], []
        for n, rec in enumerate(_rows(reader, ctx, artefact, self.NAME), 2):
            if not rec:
                continue

            def get(k: str, rec: list[str] = rec) -> str | None:
                i = cols.get(k)
                return rec[i].strip() if i is not None and i < len(rec) and rec[i].strip() \
                    else None

            ts = parse_time(get("ts") or "")
            if ts is None:
                bad.append(f"line {n}")
                continue
            res = (get("result") or "").lower()
            rows.append({
                "ts": ts, "user": (get("user") or "").lower() or None, "app": get("app"),
                "src_ip": get("src_ip"),
                "result": "success" if res in _OK else "failure" if res in _BAD else
                res or None, "mfa": mfa_kind(get("mfa")), "mfa_result":
                (get("mfa_result") or "").lower() or None, "interactive": True,
                "session_id": get("session_id"), "country": get("country"),
                "user_agent": get("user_agent"), "provider": "csv", "event": "sign-in",
                "source_file": artefact.display})
            locs.append(f"line {n}")
        if bad:
            ctx.warn(artefact.id, self.NAME, "rows without a readable time", bad[:100],
                     count=len(bad), path=artefact.display)
        if rows:
            yield auth_batch(rows, self.NAME, artefact.id, locs)


def _rows(reader: Iterator[list[str]], ctx: RunContext, artefact: Artefact,
          source: str) -> Iterator[list[str]]:
    """Rows until the CSV module gives up on one (a cell over its size limit); then one
    warning, and the rest of the file is not read."""
    n = 2  # the row after the header
    try:
        for rec in reader:
            yield rec
            n += 1
    except csv.Error as exc:
        ctx.warn(artefact.id, source, f"CSV unreadable from this row on ({exc}); the rest "
                 "of the file is not read", [f"line {n}"], path=artefact.display)
