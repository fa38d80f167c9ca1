"""OpenBLAS threads of the LAPACK calls behind JAX's CPU linear algebra.

JAX's CPU Cholesky factorisations and triangular solves call LAPACK from SciPy's OpenBLAS, which
starts its own worker threads on top of XLA's. On a machine whose cores are shared with other
processes those threads spin and hand off on every call: a 256 × 256 Cholesky factorisation took
0.13 s instead of 0.4 ms, and NUTS on 50 points ran 30–60× slower. GP work calls LAPACK on
small matrices thousands of times, so one thread per call is usually the right setting; the
``jaxscope`` commands use it. Importing jaxscope changes nothing. jaxscope's own entry points
(``fit_map``, ``fit_nuts``, ``predict_nuts``, campaign steps, ...) run with one thread by
themselves (:func:`single_blas_thread`, restored when the call returns), so a user who sets
nothing gets the fast path; :func:`limit_blas_threads` sets every loaded OpenBLAS for the whole
process (and then jaxscope leaves the thread count to the user).

Example:
    >>> import jaxscope
    >>> jaxscope.limit_blas_threads(1)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ctypes
import os

_USER_CHOICE = False  # set by limit_blas_threads: the user's thread count is left alone

_SET = (
    "scipy_openblas_set_num_threads",
    "scipy_openblas_set_num_threads64_",
    "openblas_set_num_threads",
    "openblas_set_num_threads64_",
)
_GET = (
    "scipy_openblas_get_num_threads",
    "scipy_openblas_get_num_threads64_",
    "openblas_get_num_threads",
    "openblas_get_num_threads64_",
)


def _openblas_libraries() -> list[ctypes.CDLL]:
    import scipy.linalg  # noqa: F401  (make sure jaxlib's LAPACK provider is loaded)

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:  # not Linux: nothing to do
        return []
    return [ctypes.CDLL(p) for p in sorted(paths) if os.path.isfile(p)]


def _symbol(lib: ctypes.CDLL, names):
    return next((getattr(lib, n) for n in names if hasattr(lib, n)), None)


def limit_blas_threads(num_threads: int = 1) -> list[str]:
    """Set the thread count of every OpenBLAS library loaded in this process (Linux).

    ``OPENBLAS_NUM_THREADS`` only acts before the library is loaded (importing jaxscope loads
    it), hence the call through ``ctypes``. Returns the paths of the libraries changed.
    """
    global _USER_CHOICE
    if int(num_threads) < 1:
        raise ValueError(f"num_threads must be at least 1, got {num_threads}")
    _USER_CHOICE = True
    done = []
    for lib in _openblas_libraries():
        fn = _symbol(lib, _SET)
        if fn is not None:
            fn(ctypes.c_int(int(num_threads)))
            done.append(lib._name)
    return done


def blas_threads() -> dict[str, int]:
    """The current thread count of every loaded OpenBLAS library, by path."""
    out = {}
    for lib in _openblas_libraries():
        fn = _symbol(lib, _GET)
        if fn is not None:
            fn.restype = ctypes.c_int
            out[lib._name] = int(fn())
    return out


_SETTERS: list | None = None  # (get, set) of every loaded OpenBLAS, found once per process


def _setters() -> list:
    global _SETTERS
    if _SETTERS is None:
        found = []
        for lib in _openblas_libraries():
            get, set_ = _symbol(lib, _GET), _symbol(lib, _SET)
            if get is not None and set_ is not None:
                get.restype = ctypes.c_int
                found.append((get, set_))
        _SETTERS = found
    return _SETTERS


@contextlib.contextmanager
def single_blas_thread():
    """Run a block with one OpenBLAS thread, then restore every library's own setting.

    jaxscope's compiled entry points run inside it on the CPU (``jaxscope.runtime.jit``), so a
    user who sets nothing gets the fast path for the thousands of small LAPACK calls of GP work,
    and no setting outlives the call: each library gets its own count back afterwards. A user's
    own choice wins: with ``OPENBLAS_NUM_THREADS`` in the environment, or after
    :func:`limit_blas_threads`, nothing is changed.
    """
    if _USER_CHOICE or "OPENBLAS_NUM_THREADS" in os.environ:
        yield
        return
    changed = []
    for get, set_ in _setters():
        n = int(get())
        if n > 1:
            set_(ctypes.c_int(1))
            changed.append((set_, n))
    try:
        yield
    finally:
        for set_, n in changed:
            set_(ctypes.c_int(n))
