"""Arrow allocator settings chosen at CLI start (each case in a fresh interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = ("from tidehunt.memory import configure_arrow_memory; import pyarrow as pa; "
        "print(configure_arrow_memory(), pa.default_memory_pool().backend_name)")


def _run(**env: str) -> list[str]:
    e = {k: v for k, v in os.environ.items()
         if k not in ("ARROW_DEFAULT_MEMORY_POOL", "TIDEHUNT_JEMALLOC_DECAY_MS")}
    e.update(env)
    out = subprocess.run([sys.executable, "-c", CODE], env=e, capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def test_jemalloc_is_the_default_pool():
    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow build has no jemalloc")
    assert _run() == ["jemalloc", "jemalloc"]


def test_user_choice_of_pool_wins():
    assert _run(ARROW_DEFAULT_MEMORY_POOL="system") == ["system", "system"]


def test_bad_decay_value_falls_back():
    assert _run(TIDEHUNT_JEMALLOC_DECAY_MS="soon")[0] in ("jemalloc", "mimalloc", "system")
