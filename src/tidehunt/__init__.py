"""tidehunt: hunt APT40 (Leviathan, G0065) tradecraft in a case's evidence."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
