"""OpenBLAS thread control (``jaxscope.limit_blas_threads``), read back through OpenBLAS itself."""

from __future__ import annotations

import ctypes
import os

import numpy as np
import pytest

import jaxscope
from jaxscope.runtime.blas import _GET, _SET, _symbol


def _set_each(counts):
    for path, n in counts.items():
        _symbol(ctypes.CDLL(path), _SET)(ctypes.c_int(n))


def test_limit_blas_threads_sets_every_library():
    before = jaxscope.blas_threads()
    if not before:
        pytest.skip("no OpenBLAS library loaded in this process")
    try:
        for n in sorted({min(2, os.cpu_count() or 1), 1}, reverse=True):
            changed = jaxscope.limit_blas_threads(n)
            assert sorted(changed) == sorted(before)
            # read back with openblas_get_num_threads, independently of blas_threads()
            for path in changed:
                get = _symbol(ctypes.CDLL(path), _GET)
                get.restype = ctypes.c_int
                assert get() == n, (path, get(), n)
    finally:
        _set_each(before)
    assert jaxscope.blas_threads() == before


def test_limit_blas_threads_rejects_bad_count():
    with pytest.raises(ValueError, match="at least 1"):
        jaxscope.limit_blas_threads(0)


_SHIPPED = r"""
import ctypes, json, os, sys
os.environ.pop("OPENBLAS_NUM_THREADS", None)
import jax, jax.numpy as jnp, numpy as np
import jaxscope
from jaxscope.runtime import blas
from jaxscope.runtime.jit import jit

for get, set_ in blas._setters():  # a library default of 3 threads (not a user's choice)
    set_(ctypes.c_int(3))
seen = []

def probe(x):
    seen.append(sorted(jaxscope.blas_threads().values()))
    return x

@jit
def program(x):
    x = jax.pure_callback(probe, jax.ShapeDtypeStruct(x.shape, x.dtype), x)
    return jnp.linalg.cholesky(x @ x.T + jnp.eye(3))

program(jnp.ones((3, 3)))
after = sorted(jaxscope.blas_threads().values())
jaxscope.limit_blas_threads(2)  # the user's own choice: left alone from now on
program(jnp.ones((3, 3)))
print(json.dumps({"inside": seen[0], "after": after, "user": seen[1]}))
"""


def test_entry_points_run_single_threaded_as_shipped():
    """A user who sets nothing: jaxscope's compiled entry points run with one OpenBLAS thread
    and every library gets its own count back when the call returns; a user's choice
    (limit_blas_threads or OPENBLAS_NUM_THREADS) is never overridden."""
    import json
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    r = subprocess.run(
        [sys.executable, "-c", _SHIPPED], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    if not got["after"]:
        pytest.skip("no OpenBLAS library loaded in this process")
    assert set(got["inside"]) == {1}
    assert set(got["after"]) == {3}
    assert set(got["user"]) == {2}


def test_jit_passes_a_programs_own_compiler_options_to_xla():
    """``jit(compiler_options=...)`` reaches XLA for that program only (an unknown option is
    refused by the compiler), on top of the defaults; other programs are untouched."""
    import jax
    import jax.numpy as jnp

    from jaxscope.runtime.jit import jit

    if jax.default_backend() != "cpu":
        pytest.skip("compiler options are attached on the CPU only")
    bad = jit(lambda x: x + 1, compiler_options={"xla_no_such_option": 1})
    with pytest.raises(Exception, match="xla_no_such_option"):
        bad(jnp.ones(3))
    fast = jit(lambda x: 2 * x, compiler_options={"xla_backend_optimization_level": 1})
    np.testing.assert_array_equal(np.asarray(fast(jnp.ones(3))), 2.0)
    plain = jit(lambda x: x + 1)
    np.testing.assert_array_equal(np.asarray(plain(jnp.ones(3))), 2.0)
