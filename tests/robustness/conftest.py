"""The robustness suite runs in well under a minute by default; its ``slow`` cases (the
true multi-gigabyte inputs) run when asked for: ``pytest -m slow tests/robustness`` (or
any ``-m`` expression naming ``slow``)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="large input: run with -m slow")
    for item in items:
        if item.get_closest_marker("slow") and "robustness" in item.nodeid:
            item.add_marker(skip)
