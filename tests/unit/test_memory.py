"""Arrow allocator settings chosen at CLI start (each case in a fresh interpreter)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

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


def _jemalloc_opts(code: str, **env: str) -> dict[str, str]:
    """jemalloc's settings in effect in a fresh interpreter that runs ``code`` (its stats)."""
    e = {k: v for k, v in os.environ.items()
         if k not in ("ARROW_DEFAULT_MEMORY_POOL", "TIDEHUNT_JEMALLOC_DECAY_MS",
                      "JE_ARROW_MALLOC_CONF")}
    out = subprocess.run([sys.executable, "-c", code + "\nimport pyarrow as pa\n"
                          "pa.jemalloc_memory_pool().print_stats()"],
                         env={**e, **env}, capture_output=True, check=True)
    opts = {}
    for line in out.stderr.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line.startswith(("opt.dirty_decay_ms:", "opt.muzzy_decay_ms:")):
            name, rest = line.split(":", 1)
            opts[name] = rest.split()[0]  # the value jemalloc started with
        if line.startswith("Arenas:"):
            break
    return opts


def test_jemalloc_starts_with_the_decay_settings():
    """The settings reach jemalloc itself, not only the environment: pyarrow starts its
    jemalloc when it is imported, so tidehunt sets them when it is imported first."""
    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow build has no jemalloc")
    cli = ("import tidehunt.cli.main\nfrom tidehunt.memory import configure_arrow_memory\n"
           "configure_arrow_memory()")
    assert _jemalloc_opts(cli) == {"opt.dirty_decay_ms": "250", "opt.muzzy_decay_ms": "0"}
    assert _jemalloc_opts(cli, TIDEHUNT_JEMALLOC_DECAY_MS="0") == {
        "opt.dirty_decay_ms": "0", "opt.muzzy_decay_ms": "0"}
    assert _jemalloc_opts(cli, JE_ARROW_MALLOC_CONF="dirty_decay_ms:5000") == {
        "opt.dirty_decay_ms": "5000", "opt.muzzy_decay_ms": "1000"}  # the user's own wins
    # a worker process inherits the variable, whatever it imports first
    worker = ("import os, subprocess, sys\nimport tidehunt\n"
              "subprocess.run([sys.executable, '-c', 'import pyarrow as pa; "
              "pa.jemalloc_memory_pool().print_stats()'], check=True)\nimport sys; sys.exit()")
    assert _jemalloc_opts(worker) == {"opt.dirty_decay_ms": "250", "opt.muzzy_decay_ms": "0"}


def _threads_after(code: str, **env: str) -> int:
    """Threads of a fresh interpreter once ``code`` has run."""
    full = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | env
    out = subprocess.run([sys.executable, "-c", code + "\nimport os\n"
                          "print(len(os.listdir('/proc/self/task')))"],
                         capture_output=True, text=True, env=full, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_numpy_blas_starts_one_thread():
    """NumPy's OpenBLAS would start a thread per core when it loads; under tidehunt it
    starts none of its own (tidehunt does no linear algebra), unless the user says."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: OpenBLAS starts no threads anyway")
    if _threads_after("import numpy") < 2:
        pytest.skip("this NumPy's BLAS starts no threads")
    assert _threads_after("import tidehunt, numpy") == 1
    assert _threads_after("import tidehunt, numpy", OPENBLAS_NUM_THREADS="2") == 2


def test_decay_setting(monkeypatch):
    from tidehunt.memory import DEFAULT_DECAY_MS, _decay_ms

    monkeypatch.delenv("TIDEHUNT_JEMALLOC_DECAY_MS", raising=False)
    assert _decay_ms() == DEFAULT_DECAY_MS == 250
    for raw, want in (("0", 0), ("1000", 1000), ("-5", DEFAULT_DECAY_MS),
                      ("soon", DEFAULT_DECAY_MS)):
        monkeypatch.setenv("TIDEHUNT_JEMALLOC_DECAY_MS", raw)
        assert _decay_ms() == want


PANDAS_PROBE = """
import sys
from tidehunt.memory import configure_arrow_memory
configure_arrow_memory()
import pyarrow as pa
pa.array([1, 2]); pa.array(["x", None]); pa.scalar("x"); pa.Table.from_pylist([{"a": 1}])
print("pandas" in sys.modules)
try:
    import pandas  # noqa: F401
except ImportError:
    print("no-pandas")
else:
    df = pa.table({"a": [1, None]}).to_pandas()
    print(type(df).__name__, pa.Table.from_pandas(df).column("a").null_count)
"""


def test_arrow_does_not_import_pandas_to_infer_types():
    out = subprocess.run([sys.executable, "-c", PANDAS_PROBE], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "False"  # inference, scalars and from_pylist left pandas alone
    assert out[1:] in (["no-pandas"], ["DataFrame", "1"])  # and pandas still works when asked


RELEASE = """
import numpy as np
import pyarrow  # loaded before the first measure (release_freed_memory imports it)
from tidehunt.memory import release_freed_memory

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) << 10

blocks, pins = [], []
for _ in range(4000):  # 64 KiB blocks from glibc's heap, each followed by a small one
    blocks.append(np.ones(8192))
    pins.append(np.ones(64))  # kept: the freed blocks are holes, not the heap's free top
del blocks
import subprocess
subprocess.Popen = None  # finding malloc_trim runs nothing (no ldconfig from a big process)
before = rss()
release_freed_memory()
print(before - rss())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists() or
                    platform.libc_ver()[0] != "glibc", reason="needs Linux with glibc")
def test_release_freed_memory_returns_free_heap_pages():
    out = subprocess.run([sys.executable, "-c", RELEASE], capture_output=True, text=True,
                         check=True)
    assert int(out.stdout) > 150 << 20  # of the ~250 MiB freed
