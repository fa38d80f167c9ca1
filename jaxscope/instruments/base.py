r"""Simulators (pure JAX) and the host-side instrument protocol.

Two faces of an instrument:

* :class:`Simulator`: an immutable equinox module, pure JAX, deterministic given a PRNG key, so a
  whole campaign against it compiles into one program and vmaps over seeds. It holds the
  measurable ``candidates`` ``(m, d)``, the box ``bounds`` ``(d, 2)``, whether the objective is
  maximised, a noisy :meth:`Simulator.measure`, the noise-free :meth:`Simulator.truth` used for
  scoring, and a time :meth:`Simulator.cost`.
* :class:`Instrument`: the small host protocol real hardware implements, ``dim`` and
  ``measure(X: np.ndarray (q, d)) -> np.ndarray (q,)``. :class:`SimulatorInstrument` adapts a
  simulator to it (optionally slow and fallible, to exercise host-driven campaigns), and
  :func:`jaxscope.instruments.as_callback` turns any instrument back into a JAX function.

Sign convention: jaxscope campaigns maximise. A simulator with ``maximize=False`` (the test
functions in their literature form) is turned into a maximisation problem by
:meth:`Simulator.as_maximization`, which negates measurements, truth and optimum
(:math:`\max_x -f(x) = -\min_x f(x)`); it is a no-op when ``maximize`` is already true.

Example:
    >>> sim = ThreeGaussians()                       # doctest: +SKIP
    >>> inst = SimulatorInstrument(sim, seed=0)
    >>> inst.measure(np.asarray(sim.candidates[:3]))  # three noisy values, reproducible
"""

# No ``from __future__ import annotations`` here: equinox cannot parse stringified AbstractVar
# annotations.

import abc
import threading
import time
from collections.abc import Iterable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from equinox import AbstractVar
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from ..runtime.jit import jit


class Problem(eqx.Module):
    """What a campaign measures (the campaign-facing protocol; pure JAX, so it compiles).

    Concrete problems give ``candidates`` ``(m, d)`` and ``maximize`` and implement
    :meth:`measure_batch`. :meth:`candidate_mask` (default ``None``: every candidate may be
    chosen), :attr:`has_truth` / :meth:`truth` (ground truth for scoring; default none) and
    :meth:`cost` (default one unit per point) have defaults. Every problem of jaxscope
    (simulators, tabulated grids, the ``pure_callback`` adapter, the host runner's guarded view)
    subclasses it; the campaign core calls only these methods.
    """

    candidates: AbstractVar[Float[Array, "m d"]]
    maximize: AbstractVar[bool]

    @abc.abstractmethod
    def measure_batch(self, key: PRNGKeyArray, X: Float[Array, "q d"]) -> Float[Array, " q"]:
        """Measure every row of ``X`` (pure)."""

    def candidate_mask(self) -> Bool[Array, " m"] | None:
        """Candidates that may be chosen (``True``), or ``None`` for all of them."""
        return None

    @property
    def has_truth(self) -> bool:
        return False

    def truth(self, X: Float[Array, "n d"]) -> Float[Array, " n"]:
        raise ValueError(f"{type(self).__name__} has no ground truth")

    def cost(self, x: Float[Array, " d"], x_prev: Float[Array, " d"]) -> Float[Array, ""]:
        """Time cost of measuring ``x`` right after ``x_prev``; default one unit per point."""
        del x_prev
        return jnp.ones((), jnp.result_type(x))


class Simulator(Problem):
    """Abstract simulated instrument: pure JAX, deterministic given a key.

    Concrete subclasses provide the fields ``candidates`` ``(m, d)``, ``bounds`` ``(d, 2)``,
    ``maximize`` (static bool) and ``name`` (static str), and implement :meth:`measure` and
    :meth:`truth`. ``measure`` works on one point and one key; :meth:`measure_batch` vmaps it.
    Pure-JAX calls do not validate coordinates (they are traced); host calls go through
    :func:`check_points`.
    """

    candidates: AbstractVar[Float[Array, "m d"]]
    bounds: AbstractVar[Float[Array, "d 2"]]
    maximize: AbstractVar[bool]
    name: AbstractVar[str]

    @abc.abstractmethod
    def measure(self, key: PRNGKeyArray, x: Float[Array, " d"]) -> Float[Array, ""]:
        """One noisy measurement at ``x`` (pure; vmap over keys and points for batches)."""

    @abc.abstractmethod
    def truth(self, X: Float[Array, "n d"]) -> Float[Array, " n"]:
        """Noise-free ground truth at the rows of ``X`` (for scoring, hidden from campaigns)."""

    @property
    def has_truth(self) -> bool:
        return True

    @property
    def dim(self) -> int:
        return self.candidates.shape[1]

    @property
    def optimum(self) -> Float[Array, ""]:
        """Best noise-free value over the candidates (max if ``maximize`` else min).

        Subclasses with a known analytic optimum override this.
        """
        t = self.truth(self.candidates)
        return jnp.max(t) if self.maximize else jnp.min(t)

    def measure_batch(self, key: PRNGKeyArray, X: Float[Array, "q d"]) -> Float[Array, " q"]:
        """Measure every row of ``X``; row ``i`` uses ``jax.random.fold_in(key, i)``."""
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(X.shape[0]))
        return jax.vmap(self.measure)(keys, X)

    def regret(self, best_true: ArrayLike) -> Float[Array, "..."]:
        """Simple regret of a true value found: ``optimum - best`` (or ``best - optimum``)."""
        best_true = jnp.asarray(best_true)
        return self.optimum - best_true if self.maximize else best_true - self.optimum

    def as_maximization(self) -> "Simulator":
        """This simulator as a maximisation problem (negated if ``maximize`` is false)."""
        return self if self.maximize else Negated(self)

    def check(self, X: ArrayLike, name: str = "X") -> np.ndarray:
        """Host-side validation of points to measure; see :func:`check_points`."""
        return check_points(X, np.asarray(self.bounds), name=name)


class Negated(Simulator):
    """``-f`` of a minimisation simulator: measurements, truth and optimum change sign."""

    inner: Simulator

    def __check_init__(self):
        if self.inner.maximize:
            raise ValueError(f"{self.inner.name} is already a maximisation problem")

    @property
    def candidates(self) -> Float[Array, "m d"]:
        return self.inner.candidates

    @property
    def bounds(self) -> Float[Array, "d 2"]:
        return self.inner.bounds

    @property
    def maximize(self) -> bool:
        return True

    @property
    def name(self) -> str:
        return f"-{self.inner.name}"

    @property
    def optimum(self) -> Float[Array, ""]:
        return -self.inner.optimum

    def measure(self, key: PRNGKeyArray, x: Float[Array, " d"]) -> Float[Array, ""]:
        return -self.inner.measure(key, x)

    def truth(self, X: Float[Array, "n d"]) -> Float[Array, " n"]:
        return -self.inner.truth(X)

    def cost(self, x: Float[Array, " d"], x_prev: Float[Array, " d"]) -> Float[Array, ""]:
        return self.inner.cost(x, x_prev)

    def __getattr__(self, item):  # optimisers, grids, ... of the wrapped problem
        if item.startswith("_") or item == "inner":
            raise AttributeError(item)
        return getattr(self.inner, item)


def travel_cost(
    x: Float[Array, " d"],
    x_prev: Float[Array, " d"],
    bounds: Float[Array, "d 2"],
    dwell: float | Float[Array, ""],
    speed: float | Float[Array, ""],
) -> Float[Array, ""]:
    r"""Dwell plus travel time: :math:`t = t_\mathrm{dwell} + \lVert (x - x') / w \rVert / v`.

    ``w`` is the width of each coordinate's range, so distances are in units of the box side and
    ``speed`` is box sides per time unit.
    """
    width = bounds[:, 1] - bounds[:, 0]
    dist = jnp.sqrt(jnp.sum(((x - x_prev) / width) ** 2))
    return dwell + dist / speed


def check_points(
    X: ArrayLike | list | tuple,
    bounds: ArrayLike | list | tuple | None = None,
    *,
    dim: int | None = None,
    name: str = "X",
) -> np.ndarray:
    """Validate points on the host: shape ``(q, d)``, finite, inside ``bounds``.

    A small tolerance (``1e-6`` of each coordinate's range, at least float32 rounding) lets grid
    points that went through float32 pass. Returns ``X`` as a float NumPy array.

    Raises:
        ValueError: wrong shape or dimension, NaN/inf, or a coordinate outside its bounds (the
            message names the first offending row, coordinate, value and range).
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must have shape (q, d), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if bounds is not None:
        bounds = np.asarray(bounds, dtype=np.float64)
        dim = bounds.shape[0] if dim is None else dim
    if dim is not None and X.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} coordinates per point, got shape {X.shape}")
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{name}[{r}, {c}] is {X[r, c]}: points must be finite")
    if bounds is not None:
        lo, hi = bounds[:, 0], bounds[:, 1]
        tol = np.maximum(1e-6 * (hi - lo), 4 * np.finfo(np.float32).eps * np.abs(bounds).max(1))
        out = (X < lo - tol) | (X > hi + tol)
        if out.any():
            r, c = np.argwhere(out)[0]
            raise ValueError(
                f"{name}[{r}, {c}] = {X[r, c]:.6g} is outside the bounds "
                f"[{lo[c]:.6g}, {hi[c]:.6g}] of coordinate {c} (out-of-range coordinate)"
            )
    return X


class Instrument(abc.ABC):
    """Host-side instrument (abstract base): ``dim`` coordinates per point, ``measure`` a batch.

    ``measure(X)`` takes a float array ``(q, d)`` and returns ``(q,)`` values, one per row, in
    order. It may block (hardware), raise (a failed measurement), and keep state. An instrument
    may also give ``bounds`` ``(d, 2)``: the adapters then refuse points outside them.
    """

    dim: int
    bounds: np.ndarray | None = None

    @abc.abstractmethod
    def measure(self, X: np.ndarray) -> np.ndarray:
        """Measure the rows of ``X``; ``(q,)`` values."""


class InstrumentError(RuntimeError):
    """A (simulated) instrument failure: the measurement did not happen."""


class InstrumentUnavailable(InstrumentError):
    """A transient outage (lost connection, server restarting): nothing was measured and the
    request may be repeated. The host runner waits it out instead of counting a failure."""


@jit
def _measure_rows(sim: Simulator, key: PRNGKeyArray, start, X):
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(start + jnp.arange(X.shape[0]))
    return jax.vmap(sim.measure)(keys, X)


class SimulatorInstrument(Instrument):
    """A :class:`Simulator` behind the host :class:`Instrument` protocol.

    Determinism: the ``n``-th point this instrument measures (counting from ``start``, over all
    successful calls, rows in order) uses the key ``jax.random.fold_in(jax.random.key(seed), n)``,
    so ``measure`` returns exactly ``sim.measure(fold_in(key(seed), n), x)``. A failed call
    consumes no measurement number, so retrying it gives what the call would have given.
    A resumed campaign passes ``start`` = number of points already measured.

    Args:
        sim: the simulator.
        seed: integer seed of the measurement noise.
        start: measurement number of the first point (for resuming).
        fail_prob: probability that a call raises :class:`InstrumentError` (deterministic given
            ``seed`` and the call number).
        fail_calls: call numbers (0-based, counting failed calls too) that raise.
        delay: seconds every call sleeps, to mimic a slow instrument.
        record: keep ``history``, the list of ``(X, y)`` of every successful call.

    Attributes:
        counter: measurement number of the next point. calls: number of calls so far.
        history: ``[(X, y), ...]`` (copies) when ``record``.
    """

    def __init__(
        self,
        sim: Simulator,
        seed: int = 0,
        *,
        start: int = 0,
        fail_prob: float = 0.0,
        fail_calls: Iterable[int] = (),
        delay: float = 0.0,
        record: bool = True,
    ):
        if not isinstance(sim, Simulator):
            raise TypeError(f"sim must be a Simulator, got {type(sim).__name__}")
        if not 0.0 <= fail_prob <= 1.0:
            raise ValueError(f"fail_prob must be in [0, 1], got {fail_prob}")
        if delay < 0 or start < 0:
            raise ValueError(f"delay and start must be >= 0, got {delay}, {start}")
        self.sim = sim
        self.seed = int(seed)
        self.dim = sim.dim
        self.bounds = np.asarray(sim.bounds)
        self.fail_prob = float(fail_prob)
        self.fail_calls = frozenset(int(c) for c in fail_calls)
        self.delay = float(delay)
        self.record = record
        self.counter = int(start)
        self.calls = 0
        self.history: list[tuple[np.ndarray, np.ndarray]] = []
        self._key = jax.random.key(self.seed)
        self._lock = threading.Lock()

    def _fails(self, call: int) -> bool:
        if call in self.fail_calls:
            return True
        if self.fail_prob > 0.0:
            return np.random.default_rng([self.seed, call]).random() < self.fail_prob
        return False

    def measure(self, X: np.ndarray) -> np.ndarray:
        """Measure the rows of ``X`` ``(q, d)``; returns ``(q,)`` (the simulator's dtype)."""
        X = check_points(X, self.bounds, name="X")
        with self._lock:
            call = self.calls
            self.calls += 1
            if self.delay:
                time.sleep(self.delay)
            if self._fails(call):
                raise InstrumentError(f"simulated instrument failure on call {call}")
            if X.shape[0] == 0:
                return np.zeros((0,), np.asarray(self.sim.candidates).dtype)
            Xj = jnp.asarray(X, self.sim.candidates.dtype)
            start = np.asarray(self.counter, np.int32)  # an array, so traced: no recompile per call
            y = np.asarray(_measure_rows(self.sim, self._key, start, Xj))
            self.counter += X.shape[0]
            if self.record:
                self.history.append((X.copy(), y.copy()))
        return y

    def truth(self, X: np.ndarray) -> np.ndarray:
        """Noise-free values (scoring only; a real instrument has no such method)."""
        X = check_points(X, self.bounds, name="X")
        return np.asarray(self.sim.truth(jnp.asarray(X, self.sim.candidates.dtype)))

    def __repr__(self) -> str:
        return (
            f"SimulatorInstrument({self.sim.name}, seed={self.seed}, counter={self.counter}, "
            f"calls={self.calls})"
        )


def draw_hidden_law(key, laws, prior_ranges: dict, law=None, dtype=None):
    """``(law, params)`` of a hidden-truth simulator (host-side): the law uniform over ``laws``
    unless given, every parameter uniform over its ``prior_ranges`` entry; one key, one draw."""
    if law is not None and law not in laws:
        raise ValueError(f"unknown law {law!r}; choose one of {tuple(laws)}")
    dtype = dtype or jnp.result_type(float)
    k_law, k_par = jax.random.split(key)
    if law is None:
        law = laws[int(jax.random.randint(k_law, (), 0, len(laws)))]
    lo, hi = (jnp.asarray(v, dtype) for v in zip(*prior_ranges.values(), strict=True))
    u = jax.random.uniform(k_par, lo.shape, dtype, lo, hi)
    return law, dict(zip(prior_ranges, u, strict=True))
