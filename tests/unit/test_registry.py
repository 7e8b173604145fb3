"""The registry's answers, remembered while the registrations stay the same."""

from __future__ import annotations

import pytest

from tidehunt import registry


def test_all_of_follows_registration_changes(monkeypatch: pytest.MonkeyPatch):
    first = registry.all_of("renderers")
    assert registry.all_of("renderers") == first
    registry.all_of("renderers").pop("jsonl")  # a caller's copy: the registry keeps its own
    assert "jsonl" in registry.all_of("renderers")
    monkeypatch.setitem(registry.RENDERERS, "broken", "tidehunt.render.no_such_module")
    monkeypatch.delitem(registry.RENDERERS, "stix")
    again = registry.all_of("renderers")
    assert "broken" not in again and "stix" not in again and "jsonl" in again
    assert "renderers:broken" in registry.FAILED
    monkeypatch.undo()
    assert registry.all_of("renderers") == first
