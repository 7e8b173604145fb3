"""Shape guards for JSON exports: a reader asks for an object or a list and gets an empty
one when the export holds another JSON type there (hostile or damaged input)."""

from __future__ import annotations

from typing import Any


def obj(v: Any) -> dict[str, Any]:
    """``v`` if it is a JSON object, else an empty one."""
    return v if isinstance(v, dict) else {}


def seq(v: Any) -> list[Any]:
    """``v`` if it is a JSON array, else an empty one."""
    return v if isinstance(v, list) else []
