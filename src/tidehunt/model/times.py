"""One reader for the timestamps evidence and feeds write, always to an aware UTC datetime."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

_EPOCH = re.compile(r"^\d{9,13}(\.\d+)?$")
#: Layouts that are not ISO-8601 but that exports use (the Microsoft 365 portal's CSV).
_LAYOUTS = ("%m/%d/%Y %I:%M:%S %p",)


def parse_time(v: Any) -> datetime | None:
    """A datetime, epoch seconds or milliseconds, or an ISO-8601 string, in UTC; a value
    without a zone is taken as UTC. None when it cannot be read (never raises)."""
    if v is None or v == "" or v == 0 or v == "0":
        return None
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    s = str(v).strip()
    if _EPOCH.match(s):
        x = float(s)
        try:
            return datetime.fromtimestamp(x / 1000 if x > 1e11 else x, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return _layout(s)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _layout(s: str) -> datetime | None:
    for fmt in _LAYOUTS:
        try:  # these layouts carry no zone: the exports write UTC
            return datetime.strptime(s, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None
