"""A synthetic APT40 intrusion case for demonstrations and end-to-end tests.

``write_demo_evidence(out_dir)`` writes the case's Windows logs as evtx_dump JSON lines and
``story()`` lists the stages a hunt over them should find. Both live in
:mod:`tidehunt.demo.generate` and are imported from there on first use, so
``python -m tidehunt.demo.generate`` runs without importing the module twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tidehunt.demo.generate import story, write_demo_evidence

__all__ = ["story", "write_demo_evidence"]


def __getattr__(name: str) -> Any:
    """Load ``story`` and ``write_demo_evidence`` from the generator on first access."""
    if name in __all__:
        from tidehunt.demo import generate

        return getattr(generate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
