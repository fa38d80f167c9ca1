"""``jit`` for jaxscope's entry points: ``equinox.filter_jit`` plus per-program compiler options.

XLA:CPU's newer fusion emitters take about twice as long to compile NumPyro's NUTS kernel as the
classic LLVM emitters (2.5 s against 1.4 s of XLA time for a B1-sized fit) and run it no faster:
its time goes to small LAPACK calls and element-wise fusions, not to code quality. The option is
attached to each top-level program (``compiler_options``) when JAX's default backend is the CPU,
so JAX's global configuration, the user's own programs and accelerator programs are untouched.
JAX accepts compiler options only on a top-level ``jit``; called inside the user's ``jit``,
``vmap`` or ``grad`` the entry point is an ordinary nested ``filter_jit`` and the user's program
decides how it is compiled.

A top-level call on the CPU also runs with one OpenBLAS thread and returns when its result is
ready (:func:`~jaxscope.runtime.blas.single_blas_thread`): GP programs make thousands of small
LAPACK calls, which OpenBLAS's spinning worker threads slow down many times on a busy machine.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax

from .blas import single_blas_thread

COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


def _traced(args, kwargs) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves((args, kwargs)))


def jit(fun=None, *, compiler_options: dict | None = None, **jitkwargs):
    """``equinox.filter_jit`` with :data:`COMPILER_OPTIONS` (and ``compiler_options``, for
    this program only) at top level on CPU (bare or with keyword arguments)."""
    if fun is None:
        return lambda f: jit(f, compiler_options=compiler_options, **jitkwargs)
    options = {**COMPILER_OPTIONS, **(compiler_options or {})}
    top = eqx.filter_jit(fun, compiler_options=options, **jitkwargs)
    nested = eqx.filter_jit(fun, **jitkwargs)

    @functools.wraps(fun)
    def call(*args, **kwargs):
        if _traced(args, kwargs) or jax.default_backend() != "cpu":
            return nested(*args, **kwargs)
        try:
            # one OpenBLAS thread while the program runs (its many small LAPACK calls), the
            # library's own setting back afterwards: wait for the result inside the block
            with single_blas_thread():
                return jax.block_until_ready(top(*args, **kwargs))
        except ValueError as e:  # inside a jit, but with no traced argument
            if "compiler_options" not in str(e):
                raise
            return nested(*args, **kwargs)

    return call
