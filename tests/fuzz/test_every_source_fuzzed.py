"""Every registered Source has a property test in tests/fuzz (a new reader gets one)."""

from __future__ import annotations

from pathlib import Path

from tidehunt import registry


def test_every_source_is_fuzzed():
    text = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    missing = [n for n in registry.targets("sources") if f'"{n}"' not in text]
    assert not missing, f"sources without a property test in tests/fuzz: {missing}"
