"""OpenBLAS thread control (``jaxscope.limit_blas_threads``), read back through OpenBLAS itself."""

from __future__ import annotations

import ctypes
import os

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
