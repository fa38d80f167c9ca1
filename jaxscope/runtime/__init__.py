"""Process-level helpers: jaxscope's ``jit`` (per-program compiler options), BLAS threads and
the opt-in persistent compilation cache. Nothing here runs on import."""

from .blas import blas_threads, limit_blas_threads
from .cache import enable_compilation_cache
from .jit import jit

__all__ = ["blas_threads", "limit_blas_threads", "enable_compilation_cache", "jit"]
