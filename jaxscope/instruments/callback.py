r"""Call a host instrument from compiled JAX code (``jit``, ``lax.scan``) via a host callback.

:func:`as_callback` turns any :class:`~jaxscope.instruments.Instrument` into a JAX function
``X (q, d) -> y (q,)`` that a compiled campaign calls once per step. The host side validates
what crosses the boundary: the points (shape, finiteness, bounds when the instrument has
``bounds``) and the answer (shape ``(q,)``, finite), raising a ``ValueError`` that names the
problem; inside ``jit`` JAX re-raises it as a runtime error carrying that message.

Two modes:

* ``ordered=False`` (default): ``jax.pure_callback``. Inside ``lax.scan`` whose carry depends on
  the result (a campaign), it runs exactly once per step, in order. It is declared pure, so XLA
  may drop a call whose result is unused, and it must not be differentiated.
  ``vmap_method="sequential"``: under ``vmap`` (e.g. several campaigns sharing one instrument)
  the instrument is called once per batch member with an ordinary ``(q, d)`` array, in batch
  order. We choose it deliberately over ``"expand_dims"``/``"broadcast_all"`` because those hand
  the host a ``(B, q, d)`` array, which the instrument protocol does not accept, and would make
  one hardware call mix points from independent campaigns.
* ``ordered=True``: ``jax.experimental.io_callback(ordered=True)``: a side effect JAX never
  drops, duplicates or reorders, for instruments whose state matters even when a result is
  discarded. It cannot be vmapped.

Cost: about 0.1 ms a call on top of the host function (``callback_overhead`` in
``benchmarks/instruments.py``: 96 µs a step of a jitted ``lax.scan``, 2 CPU cores). An
instrument error inside a compiled campaign discards the program's state; wrap the instrument
in :class:`jaxscope.host.RecordingInstrument` to journal every measurement before it returns.

Example:
    >>> inst = SimulatorInstrument(ThreeGaussians(noise=0.01), seed=0)   # doctest: +SKIP
    >>> measure = as_callback(inst)
    >>> jax.jit(measure)(jnp.array([[0.2, 0.4]]))                       # host call inside jit
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .base import Instrument, Problem, check_points


def _host_measure(instrument: Instrument, out_dtype) -> Callable[[np.ndarray], np.ndarray]:
    bounds = instrument.bounds

    def host(X):
        X = check_points(
            np.asarray(X), bounds, dim=instrument.dim, name="points sent to the instrument"
        )
        y = np.asarray(instrument.measure(X))
        if y.shape != (X.shape[0],):
            raise ValueError(
                f"instrument returned shape {y.shape} for {X.shape[0]} points; "
                f"expected ({X.shape[0]},)"
            )
        if not np.issubdtype(y.dtype, np.number):
            raise ValueError(f"instrument returned non-numeric values of dtype {y.dtype}")
        bad = ~np.isfinite(y)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"instrument returned {y[i]} (NaN or inf) for point {i} at {X[i].tolist()}; "
                "a failed measurement must raise, not return NaN"
            )
        return y.astype(out_dtype)

    return host


def as_callback(
    instrument: Instrument, dtype=None, *, ordered: bool = False
) -> Callable[[Float[Array, "q d"]], Float[Array, " q"]]:
    """A JAX-callable ``X (q, d) -> y (q,)`` that measures on the host instrument.

    Args:
        instrument: anything with ``dim`` and ``measure(X: np.ndarray) -> np.ndarray``.
        dtype: dtype of the result (default: the dtype of ``X``).
        ordered: use an ordered ``io_callback`` instead of ``pure_callback`` (see module doc).

    Returns:
        ``measure(X)``; raises ``ValueError`` at trace time when ``X`` is not ``(q, dim)``.
    """
    if not isinstance(instrument, Instrument):
        raise TypeError(
            f"{type(instrument).__name__} is not an Instrument: subclass "
            "jaxscope.instruments.Instrument (`dim` and `measure(X)`)"
        )
    dim = int(instrument.dim)

    def measure(X: Float[ArrayLike, "q d"]) -> Float[Array, " q"]:
        X = jnp.asarray(X)
        if X.ndim != 2 or X.shape[1] != dim:
            raise ValueError(f"points must have shape (q, {dim}), got {X.shape}")
        if not jnp.issubdtype(X.dtype, jnp.floating):
            raise ValueError(f"points must be floating point, got dtype {X.dtype}")
        out_dtype = jnp.dtype(dtype) if dtype is not None else X.dtype
        out = jax.ShapeDtypeStruct((X.shape[0],), out_dtype)
        host = _host_measure(instrument, out_dtype)
        if ordered:
            return io_callback(host, out, X, ordered=True)
        return jax.pure_callback(host, out, X, vmap_method="sequential")

    return measure


class CallbackProblem(Problem):
    """A host instrument inside a compiled campaign.

    Attributes:
        candidates: ``(m, d)`` measurable points.
        fn: a JAX-callable ``X (q, d) -> y (q,)``, typically
            :func:`jaxscope.instruments.as_callback` of a host instrument (``jax.pure_callback``).
        maximize: whether larger measured values are better.
    """

    candidates: Float[Array, "m d"]
    fn: Callable = eqx.field(static=True)
    maximize: bool = eqx.field(static=True, default=True)

    def measure_batch(self, key: PRNGKeyArray, X: Float[Array, "q d"]) -> Float[Array, " q"]:
        del key  # the host instrument owns its noise
        return self.fn(X)

    def measure(self, key: PRNGKeyArray, x: Float[Array, " d"]) -> Float[Array, ""]:
        return self.measure_batch(key, x[None])[0]
