r"""Penalties, exclusion masks and the final argmax over a candidate set.

Masks are boolean arrays over the ``m`` candidates, ``True`` = allowed. Penalties are
non-negative arrays subtracted from the acquisition score (on whatever scale the score lives:
for ``logei`` a penalty of 1 divides EI by ``e``); ``+inf`` excludes a candidate. :func:`combine`
turns a score, penalties and masks into the final score (``-inf`` where excluded) and
:func:`select` takes its argmax.

* measured points / masked regions: :func:`exclude_points`, :func:`exclude_measured`,
  :func:`box_mask` (borders of a box), :func:`grid_border_mask` (borders of an image grid);
* a recent-points memory (GPim's ``dscale``/``gamma``/``memory``): :class:`RecentPoints` with the
  pure pair :func:`memory_init` / :func:`memory_update` (optax style: state in, state out) and
  :func:`memory_mask`, which forbids a candidate closer than :math:`d\,\gamma^{a}` to the point
  chosen :math:`a` steps ago (:math:`a = 0` the latest), for the last ``k`` points;
* :func:`delta_penalty` (``+inf`` exactly at recent points) and
  :func:`inverse_distance_penalty`
  :math:`\lambda \sum_a \frac{1}{(1 + \lVert x - p_a\rVert/\ell)(1 + a)}`;
* :func:`travel_cost` of moving the probe from its position: :math:`\rho\,\lVert (x - x_0)/s
  \rVert_p`.

Example:
    >>> mem = memory_update(memory_init(5, 2), x_last)
    >>> allowed = exclude_measured(Xc, obs) & memory_mask(mem, Xc, dscale=0.1, gamma=0.8)
    >>> score = combine(logei, [travel_cost(Xc, x_last, rate=0.5)], mask=allowed)
    >>> i, value = select(score)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from ..gp import Observations, map_chunks
from ..kernels import as_points


# --- exclusion masks ----------------------------------------------------------------------------
def _near_any(Xc, P, valid, radius):
    """``(m,)``: candidate within ``radius`` (scalar or per-dimension) of any valid row of ``P``.

    ``radius = 0`` means exact coincidence.
    """
    r = jnp.broadcast_to(jnp.asarray(radius, Xc.dtype), (Xc.shape[1],))
    r_safe = jnp.where(r > 0, r, 1.0)
    diff = Xc[:, None, :] - P[None, :, :]
    equal = jnp.all(diff == 0, axis=-1)
    within = (jnp.sum((diff / r_safe) ** 2, axis=-1) <= 1.0) & jnp.all(r > 0)
    return jnp.any((equal | within) & valid[None, :], axis=1)


def exclude_points(
    Xc: Float[Array, "m d"],
    points: Float[Array, "k d"],
    valid: Bool[Array, " k"] | None = None,
    *,
    radius: ArrayLike = 0.0,
    chunk_size: int | None = None,
) -> Bool[Array, " m"]:
    """Mask forbidding candidates within ``radius`` of any valid point (``0``: exact matches).

    ``radius`` may be per dimension (e.g. ARD lengthscales): then the test is
    ``Σ ((x - p)/r)² ≤ 1``. ``chunk_size`` bounds memory to O(chunk · k).
    """
    Xc = as_points(Xc, "Xc")
    points = as_points(points, "points").astype(Xc.dtype)
    if points.shape[1] != Xc.shape[1]:
        raise ValueError(f"points have {points.shape[1]} dimensions, candidates {Xc.shape[1]}")
    valid = jnp.ones(points.shape[0], bool) if valid is None else jnp.asarray(valid, bool)
    fn = lambda X: _near_any(X, points, valid, radius)
    near = fn(Xc) if chunk_size is None else map_chunks(fn, Xc, chunk_size)
    return ~near


def exclude_measured(
    Xc: Float[Array, "m d"],
    obs: Observations,
    *,
    radius: ArrayLike = 0.0,
    chunk_size: int | None = None,
) -> Bool[Array, " m"]:
    """Mask forbidding the candidates already measured in ``obs`` (or within ``radius`` of them)."""
    return exclude_points(Xc, obs.X, obs.mask, radius=radius, chunk_size=chunk_size)


def box_mask(
    Xc: Float[Array, "m d"],
    lower: ArrayLike | Sequence[float],
    upper: ArrayLike | Sequence[float],
    *,
    border: ArrayLike | Sequence[float] = 0.0,
) -> Bool[Array, " m"]:
    """Allowed: candidates inside ``[lower + border, upper - border]`` in every dimension."""
    lo = jnp.asarray(lower, Xc.dtype) + jnp.asarray(border, Xc.dtype)
    hi = jnp.asarray(upper, Xc.dtype) - jnp.asarray(border, Xc.dtype)
    return jnp.all((Xc >= lo) & (Xc <= hi), axis=1)


def grid_border_mask(shape: Sequence[int], width: int) -> Bool[Array, " m"]:
    """Row-major ``(prod(shape),)`` mask of an image grid without a ``width``-pixel border."""
    if width < 0 or any(2 * width >= n for n in shape):
        raise ValueError(f"border width {width} leaves nothing of a grid of shape {tuple(shape)}")
    m = np.zeros(tuple(shape), bool)
    m[tuple(slice(width, n - width) for n in shape)] = True
    return jnp.asarray(m.reshape(-1))


# --- recent-points memory -----------------------------------------------------------------------
class RecentPoints(NamedTuple):
    """The last ``k`` chosen points, newest first (``points[a]`` was chosen ``a`` steps ago)."""

    points: Float[Array, "k d"]
    valid: Bool[Array, " k"]


def memory_init(k: int, dim: int, dtype=None) -> RecentPoints:
    """An empty memory of the last ``k`` points in ``dim`` dimensions."""
    if k < 1 or dim < 1:
        raise ValueError(f"memory size and dimension must be positive, got {k}, {dim}")
    dtype = dtype or jnp.result_type(float)
    return RecentPoints(jnp.zeros((k, dim), dtype), jnp.zeros((k,), bool))


def memory_update(mem: RecentPoints, x: Float[Array, " d"]) -> RecentPoints:
    """Push ``x`` as the newest point; the oldest falls out (fixed shapes, jittable)."""
    x = jnp.asarray(x, mem.points.dtype).reshape(1, -1)
    if x.shape[1] != mem.points.shape[1]:
        raise ValueError(f"x must have {mem.points.shape[1]} coordinates, got {x.shape[1]}")
    points = jnp.concatenate([x, mem.points[:-1]], axis=0)
    valid = jnp.concatenate([jnp.ones((1,), bool), mem.valid[:-1]])
    return RecentPoints(points, valid)


def _distances(Xc, P):
    d2 = jnp.sum((Xc[:, None, :] - P[None, :, :]) ** 2, axis=-1)
    return jnp.sqrt(d2)


def memory_mask(
    mem: RecentPoints,
    Xc: Float[Array, "m d"],
    *,
    dscale: ArrayLike,
    gamma: ArrayLike = 0.8,
) -> Bool[Array, " m"]:
    r"""Allowed: candidates at least :math:`d\,\gamma^{a}` from the point chosen ``a`` steps ago.

    With ``dscale = d`` the next point is no closer than ``d`` to the last one, ``γ d`` to the one
    before, ``γ² d`` to the one before that, ... over the ``k`` remembered points.
    """
    Xc = as_points(Xc, "Xc")
    age = jnp.arange(mem.points.shape[0], dtype=Xc.dtype)
    radius = jnp.asarray(dscale, Xc.dtype) * jnp.asarray(gamma, Xc.dtype) ** age
    close = (_distances(Xc, mem.points) < radius[None, :]) & mem.valid[None, :]
    return ~jnp.any(close, axis=1)


# --- soft penalties -----------------------------------------------------------------------------
def delta_penalty(
    Xc: Float[Array, "m d"],
    points: Float[Array, "k d"],
    valid: Bool[Array, " k"] | None = None,
) -> Float[Array, " m"]:
    """``+inf`` at candidates that coincide with a (valid) point, ``0`` elsewhere."""
    allowed = exclude_points(Xc, points, valid)
    return jnp.where(allowed, 0.0, jnp.inf).astype(Xc.dtype)


def inverse_distance_penalty(
    mem: RecentPoints,
    Xc: Float[Array, "m d"],
    *,
    factor: ArrayLike = 1.0,
    scale: ArrayLike = 1.0,
) -> Float[Array, " m"]:
    r"""Soft repulsion from recent points: :math:`\lambda\sum_a [\text{valid}_a]
    \,/\,\big((1 + \lVert x - p_a\rVert/\ell)(1 + a)\big)`, ``a`` = age (0 = latest)."""
    Xc = as_points(Xc, "Xc")
    age = jnp.arange(mem.points.shape[0], dtype=Xc.dtype)
    d = _distances(Xc, mem.points) / jnp.asarray(scale, Xc.dtype)
    terms = jnp.where(mem.valid[None, :], 1.0 / ((1.0 + d) * (1.0 + age[None, :])), 0.0)
    return jnp.asarray(factor, Xc.dtype) * jnp.sum(terms, axis=1)


def travel_cost(
    Xc: Float[Array, "m d"],
    position: Float[Array, " d"],
    *,
    rate: ArrayLike = 1.0,
    scale: ArrayLike = 1.0,
    ord: int | float = 2,
) -> Float[Array, " m"]:
    r"""Cost of moving the probe from ``position``: :math:`\rho\,\lVert (x - x_0)/s\rVert_p`.

    ``scale`` may be per axis (e.g. slow and fast scan axes); ``ord`` is the norm (``1`` for
    stages that move one axis at a time, ``inf`` for simultaneous axes).
    """
    Xc = as_points(Xc, "Xc")
    delta = (Xc - jnp.asarray(position, Xc.dtype)) / jnp.asarray(scale, Xc.dtype)
    return jnp.asarray(rate, Xc.dtype) * jnp.linalg.norm(delta, ord=ord, axis=1)


# --- final score and choice ---------------------------------------------------------------------
def combine(
    scores: Float[Array, " m"],
    penalties: Sequence[Float[Array, " m"]] = (),
    *,
    mask: Bool[Array, " m"] | None = None,
) -> Float[Array, " m"]:
    """``scores - Σ penalties``, and ``-inf`` wherever ``mask`` is ``False``.

    NaN scores are left as NaN (they signal a bug upstream and are never silently hidden).
    """
    out = scores
    for p in penalties:
        out = out - p
    if mask is not None:
        out = jnp.where(mask, out, -jnp.inf)
    return out


def select(
    scores: Float[Array, " m"],
    mask: Bool[Array, " m"] | None = None,
) -> tuple[Int[Array, ""], Float[Array, ""]]:
    """``(index, value)`` of the best allowed candidate; ``value == -inf`` means none is allowed."""
    s = scores if mask is None else jnp.where(mask, scores, -jnp.inf)
    i = jnp.argmax(s)
    return i, s[i]


def mark_measured(measured: Bool[Array, " m"], index: ArrayLike) -> Bool[Array, " m"]:
    """Set candidate ``index`` (or indices) as measured in a boolean mask (``True`` = measured)."""
    return measured.at[jnp.asarray(index)].set(True)


__all__ = [
    "exclude_points",
    "exclude_measured",
    "box_mask",
    "grid_border_mask",
    "RecentPoints",
    "memory_init",
    "memory_update",
    "memory_mask",
    "delta_penalty",
    "inverse_distance_penalty",
    "travel_cost",
    "combine",
    "select",
    "mark_measured",
]
