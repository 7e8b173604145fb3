"""Process-wide memory settings for Arrow.

Arrow's default pool here (mimalloc) keeps freed pages, so a run's resident memory is the
sum of every stage's peak. jemalloc with no decay hands them back as soon as a stage lets
go of its tables: on the 100x benchmark case, detection peaked at 982 MiB against
1,302 MiB (see docs/PERFORMANCE.md). ``ARROW_DEFAULT_MEMORY_POOL`` set by the user wins.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("tidehunt")


def configure_arrow_memory() -> str:
    """Use jemalloc with immediate decay where this pyarrow build has it; returns the pool."""
    import pyarrow as pa

    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return str(pa.default_memory_pool().backend_name)
    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(0)
    except (NotImplementedError, pa.ArrowNotImplementedError) as exc:
        log.debug("jemalloc not available in this pyarrow build: %s", exc)
        return str(pa.default_memory_pool().backend_name)
    pa.set_memory_pool(pool)
    return str(pool.backend_name)
