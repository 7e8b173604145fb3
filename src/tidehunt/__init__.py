"""tidehunt: hunt APT40 (Leviathan, G0065) tradecraft in a case's evidence."""

from __future__ import annotations

from tidehunt.memory import preset_blas_threads, preset_jemalloc_conf

__version__ = "0.1.0"

# Arrow's jemalloc reads its settings when pyarrow loads: set them first (tidehunt.memory)
preset_jemalloc_conf()
# NumPy's OpenBLAS starts its threads when NumPy loads: one is enough (tidehunt.memory)
preset_blas_threads()

__all__ = ["__version__"]
