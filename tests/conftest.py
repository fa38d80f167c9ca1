"""Shared test configuration: dtype parametrisation, tolerances, compile counting, cache.

* ``dtype`` fixture: every test that takes it runs in float32 and in float64; float64 runs inside
  ``with jax.enable_x64(True):`` (the global flag is never flipped).
* :func:`tols` / :func:`assert_allclose`: the one place where tolerances live, by dtype.
* :func:`count_compilations`: counts XLA compilations (and persistent-cache loads, which also mean
  a new program was traced and lowered) with ``jax.monitoring`` listeners.
* ``OPENBLAS_NUM_THREADS=1`` unless set (see below): tiny LAPACK calls are much faster.
* A persistent XLA compilation cache under ``~/.cache/jaxscope-tests`` (outside the clone; override
  with ``JAXSCOPE_TEST_CACHE``, disable with ``JAXSCOPE_TEST_CACHE=off``). This is test
  configuration, set here and not by the library; the suite passes from an empty cache.
"""

from __future__ import annotations

import contextlib
import os
import threading

# JAX's CPU LAPACK kernels (Cholesky, triangular solves) call SciPy's OpenBLAS, whose worker
# threads spin-wait: on a small, shared machine a 32×32 triangular solve then takes milliseconds
# instead of microseconds. Tests use tiny matrices, so one BLAS thread is fastest. Must be set
# before SciPy's OpenBLAS loads (jax is not imported yet at this point); override by exporting it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# --- persistent compilation cache (test configuration only) ---------------------------------
_CACHE = os.environ.get("JAXSCOPE_TEST_CACHE", os.path.expanduser("~/.cache/jaxscope-tests"))
if _CACHE.lower() not in ("", "off", "0", "none"):
    try:
        os.makedirs(_CACHE, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", _CACHE)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except OSError:  # read-only home: run without the cache
        pass


# --- dtypes and tolerances --------------------------------------------------------------------
# (rtol, atol) for results of short, well-conditioned computations (kernel matrices, closed forms).
_TOLS = {
    np.dtype(np.float32): (2e-5, 2e-6),
    np.dtype(np.float64): (1e-12, 1e-13),
}


def tols(dtype, scale: float = 1.0) -> dict[str, float]:
    """``{"rtol", "atol"}`` for ``dtype``, multiplied by ``scale`` for longer computations.

    Use ``scale`` (10, 100, ...) for results that go through a Cholesky factorisation or an
    iterative solver, whose error grows with the condition number; never loosen per call site by
    hand-picked constants.
    """
    rtol, atol = _TOLS[np.dtype(dtype)]
    return {"rtol": rtol * scale, "atol": atol * scale}


def assert_allclose(actual, desired, *, dtype=None, scale: float = 1.0, err_msg: str = ""):
    """``np.testing.assert_allclose`` with the tolerance of ``dtype`` (default: ``actual``'s)."""
    actual = np.asarray(actual)
    dtype = np.dtype(dtype) if dtype is not None else actual.dtype
    if dtype not in _TOLS:
        raise TypeError(f"no tolerance for dtype {dtype}")
    np.testing.assert_allclose(
        actual, np.asarray(desired, dtype=np.float64), err_msg=err_msg, **tols(dtype, scale)
    )


def assert_same_state(a, b):
    """Every leaf of two campaign states, dtype, shape and bytes (keys through their data)."""
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """The float dtype a test runs in; float64 tests run inside ``jax.enable_x64(True)``."""
    if request.param == "float64":
        with jax.enable_x64(True):
            yield jnp.float64
    else:
        with jax.enable_x64(False):
            yield jnp.float32


@pytest.fixture
def x64():
    """Run a test in float64 (inside ``jax.enable_x64(True)``)."""
    with jax.enable_x64(True):
        yield


# --- compile counting -------------------------------------------------------------------------
# One event per program built: JAX times its whole "compile or load from the persistent cache"
# step under this name, so a disk-cache hit emits it too (and must not be counted twice).
_COMPILE_EVENTS = ("/jax/core/compile/backend_compile_duration",)
_lock = threading.Lock()
_active: list[list[str]] = []


def _on_duration(event: str, duration: float, **kw) -> None:
    if event in _COMPILE_EVENTS:
        with _lock:
            for log in _active:
                log.append(event)


jax.monitoring.register_event_duration_secs_listener(_on_duration)


@contextlib.contextmanager
def count_compilations():
    """Collect compilation events inside the block; ``len(log)`` is the number of programs built.

    A persistent-cache hit counts as one too (the program was traced and lowered anew, only the
    XLA step was skipped), so the count does not depend on the state of the disk cache.

    Example:
        >>> with count_compilations() as log:
        ...     f(x)
        >>> assert len(log) == 0
    """
    log: list[str] = []
    with _lock:
        _active.append(log)
    try:
        yield log
    finally:
        with _lock:
            _active.remove(log)
