"""Hypothesis profiles for the fuzz suite.

``ci`` (the default) keeps the whole of ``tests/fuzz`` near a minute on two cores and is
derandomised, so a CI run is repeatable; ``fuzz`` (``TIDEHUNT_FUZZ_PROFILE=fuzz``, used by
``make fuzz``) draws many more, random examples and keeps failures in ``.hypothesis/`` so a
rerun replays them first. ``TIDEHUNT_FUZZ_EXAMPLES`` overrides the example count of either.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture]
_N = os.environ.get("TIDEHUNT_FUZZ_EXAMPLES")

settings.register_profile(
    "ci", max_examples=int(_N or 25), deadline=None, derandomize=True, database=None,
    suppress_health_check=_SLOW_OK, print_blob=True)
settings.register_profile(
    "fuzz", max_examples=int(_N or 1500), deadline=10_000, suppress_health_check=_SLOW_OK,
    print_blob=True)
settings.load_profile(os.environ.get("TIDEHUNT_FUZZ_PROFILE", "ci"))
