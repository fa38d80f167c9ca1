r"""Maximise an acquisition over a continuous box, inside ``jit``: multi-start projected ascent.

``R`` starting points (uniform in the box, plus optional user points such as the best grid
candidates) are optimised in parallel (``vmap``) by Adam on the negated objective in unit-cube
coordinates :math:`u = (x - \ell)/(h - \ell)`, projecting back onto :math:`[0, 1]^d` after every
step (projected gradient ascent), all in one ``lax.scan``; the best end point wins. The learning
rate is therefore a fraction of the box width in every dimension.

Example:
    >>> fn = point_acquisition(gp.condition(obs), "ucb", beta=4.0)
    >>> res = jax.jit(lambda k: maximize_box(fn, bounds, k))(jax.random.key(0))
    >>> res.x, res.value
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from ..gp import Posterior, from_posterior
from .acquisition import DEFAULT as DEFAULT_RULE
from .acquisition import get


class BoxResult(NamedTuple):
    """Best point and value, and every start's end point and value."""

    x: Float[Array, " d"]
    value: Float[Array, ""]
    X: Float[Array, "r d"]
    values: Float[Array, " r"]


def point_acquisition(
    post: Posterior, acquisition: str | Callable = DEFAULT_RULE, **kw: Any
) -> Callable[[Array], Array]:
    """``x (d,) -> scalar`` acquisition value at one point (differentiable in ``x``).

    ``post`` may be a batch of posteriors (hyperparameter samples); ``kw`` go to the rule
    (``best=``, ``beta=``, ``maximize=``, ...).
    """
    fn = get(acquisition)

    def value(x):
        return fn(from_posterior(post, x[None, :]), **kw)[0]

    return value


def maximize_box(
    fn: Callable[[Array], Array],
    bounds: Float[Array, "d 2"],
    key: PRNGKeyArray,
    *,
    num_starts: int = 16,
    num_steps: int = 100,
    learning_rate: float = 0.02,
    init: Float[Array, "k d"] | None = None,
) -> BoxResult:
    """Maximise ``fn`` over the box ``bounds[:, 0] ≤ x ≤ bounds[:, 1]`` from many starts.

    Args:
        fn: ``x (d,) -> scalar``, differentiable (e.g. :func:`point_acquisition`).
        bounds: ``(d, 2)`` lower and upper bounds.
        key: PRNG key for the random starts.
        num_starts: random starts (uniform in the box).
        num_steps: Adam steps per start.
        learning_rate: Adam step size as a fraction of the box width.
        init: optional extra starting points (e.g. the top grid candidates), clipped to the box.

    Returns:
        A :class:`BoxResult`; ``x`` is inside the box (exactly on a face when the maximum is
        on the boundary). Non-finite values at an end point never win.
    """
    bounds = jnp.asarray(bounds)
    if bounds.ndim != 2 or bounds.shape[1] != 2:
        raise ValueError(f"bounds must have shape (d, 2), got {bounds.shape}")
    lo, hi = bounds[:, 0], bounds[:, 1]
    width = hi - lo
    d = bounds.shape[0]
    u0 = jax.random.uniform(key, (num_starts, d), bounds.dtype)
    if init is not None:
        ui = jnp.clip((jnp.asarray(init, bounds.dtype) - lo) / width, 0.0, 1.0)
        u0 = jnp.concatenate([ui.reshape(-1, d), u0], axis=0)
    to_x = lambda u: lo + u * width
    loss = lambda u: -fn(to_x(u))
    opt = optax.adam(learning_rate)

    def step(carry, _):
        u, state = carry
        g = jax.vmap(jax.grad(loss))(u)
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        upd, state = opt.update(g, state, u)
        u = jnp.clip(optax.apply_updates(u, upd), 0.0, 1.0)
        return (u, state), None

    (u, _), _ = jax.lax.scan(step, (u0, opt.init(u0)), length=num_steps)
    X = to_x(u)
    values = jax.vmap(fn)(X)
    ranked = jnp.where(jnp.isfinite(values), values, -jnp.inf)
    i = jnp.argmax(ranked)
    return BoxResult(X[i], values[i], X, values)


__all__ = ["BoxResult", "point_acquisition", "maximize_box"]
