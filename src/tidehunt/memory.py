"""Process-wide memory settings for Arrow.

Arrow's default pool here (mimalloc) keeps freed pages, so a run's resident memory is the
sum of every stage's peak. jemalloc with no decay hands them back as soon as a stage lets
go of its tables: on the 100x benchmark case, detection peaked at 982 MiB against
1,302 MiB (see docs/PERFORMANCE.md), for about 20% more CPU in the stages that allocate
most. ``TIDEHUNT_JEMALLOC_DECAY_MS`` trades the other way (250: faster, ~15% more memory);
``ARROW_DEFAULT_MEMORY_POOL`` set by the user wins over both.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("tidehunt")


def configure_arrow_memory() -> str:
    """Use jemalloc (decay 0 unless set) where this pyarrow build has it; returns the pool."""
    import pyarrow as pa

    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return str(pa.default_memory_pool().backend_name)
    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(_decay_ms())
    except (NotImplementedError, pa.ArrowNotImplementedError) as exc:
        log.debug("jemalloc not available in this pyarrow build: %s", exc)
        return str(pa.default_memory_pool().backend_name)
    pa.set_memory_pool(pool)
    return str(pool.backend_name)


def _decay_ms() -> int:
    raw = os.environ.get("TIDEHUNT_JEMALLOC_DECAY_MS", "0")
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        log.warning("TIDEHUNT_JEMALLOC_DECAY_MS=%r is not a number of milliseconds; using 0",
                    raw)
        return 0
    return value
