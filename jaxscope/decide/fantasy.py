r"""The fantasy engine: sequential greedy batches and pending points by believed observations.

One engine serves every runner: the compiled campaign's ``Believer`` selector, the agent's
pending points and batches, and the standalone :func:`kriging_believer`.

**Semantics (chosen once).** A fantasy observes, at a chosen (or pending) candidate, the value
the current belief expects there: the *mixture* mean over hyperparameter samples
(``liar="mean"``, the kriging believer), the incumbent (``"best"``, constant liar) or a given
number. The same value is added to the posterior of every hyperparameter sample, with the
hyperparameters held, by a rank-1 update (:meth:`~jaxscope.decide.surrogate.Belief.add`):

.. math:: \tilde y_j = \tfrac1S\textstyle\sum_s \mu_s(x_j), \qquad
          \text{each sample: } \sigma_s^2(x) \leftarrow \sigma_s^2(x) - v_{s,j}(x)^2 ,

so every later pick sees less uncertainty around points already chosen or being measured.
The incumbent becomes ``max(best, ỹ_j)`` (utility units). Equal to refitting with the believed
values appended to the data (hyperparameters held); tested so.

Example:
    >>> idx, vals = kriging_believer(post.cache(Xc), 4, "logei", best=incumbent(obs))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from ..gp import Predictive, PredictiveCache, Standardizer
from ..runtime.jit import jit
from .acquisition import DEFAULT as DEFAULT_RULE
from .acquisition import get
from .gp_surrogates import CachedGPBelief
from .surrogate import Belief
from .units import from_utility, sign_of, to_utility

LIARS = ("mean", "best")


def check_liar(liar: str | float) -> None:
    """``ValueError`` for an unknown liar name."""
    if isinstance(liar, str) and liar not in LIARS:
        raise ValueError(f"unknown liar {liar!r}; use 'mean', 'best' or a number")


def believed_value(pred_u, i, best_u, liar: str | float):
    """The fantasy value (utility units) at candidate ``i``: mixture mean, incumbent or a number
    (a number is given in utility units too)."""
    if liar == "mean":
        return jnp.mean(pred_u.mean[:, i])
    if liar == "best":
        return best_u
    return jnp.asarray(liar, pred_u.mean.dtype)


def absorb_pending(
    belief: Belief,
    candidates: Float[Array, "m d"],
    pending: Int[Array, " P"],
    on: Bool[Array, " P"],
    *,
    sign: float,
    best: Float[Array, ""],
    liar: str | float = "mean",
) -> tuple[Belief, Float[Array, ""]]:
    """Fantasise the pending candidates (those with ``on``) in order: ``(belief, incumbent)``."""

    arrays, static = eqx.partition(belief, eqx.is_array)  # a scan carries arrays only

    def body(carry, io):
        arrays, best = carry
        belief = eqx.combine(arrays, static)
        i, active = io
        pred_u = to_utility(belief.predictive(), sign)
        y = believed_value(pred_u, i, best, liar)
        new = eqx.filter(belief.add(candidates[i], from_utility(y, sign)), eqx.is_array)
        arrays = jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), new, arrays)
        return (arrays, jnp.where(active, jnp.maximum(best, y), best)), None

    (arrays, best), _ = jax.lax.scan(body, (arrays, best), (pending, on))
    return eqx.combine(arrays, static), best


def fantasy_batch(
    belief: Belief,
    candidates: Float[Array, "m d"],
    q: int,
    score: Callable[..., Float[Array, " m"]],
    *,
    sign: float,
    best: Float[Array, ""],
    allowed: Bool[Array, " m"],
    key: PRNGKeyArray,
    liar: str | float = "mean",
    num_draws: int = 0,
    first: tuple[Float[Array, " m"], Predictive] | None = None,
) -> tuple[Int[Array, " q"], Float[Array, " q"]]:
    """``q`` greedy picks, each followed by a fantasy at the chosen point.

    Args:
        score: ``score(belief, pred, best, key, allowed) -> (m,)`` utility scores with
            exclusions (``pred`` in original units), e.g. a policy's scores.
        first: ``(scores, predictive)`` of the first pick when the decision already computed
            them (then they are not computed again).
        num_draws: joint draws each re-scored predictive carries (Thompson-type rules).

    Returns:
        ``(indices, values)``: chosen candidates and their scores when chosen.
    """
    if q < 1:
        raise ValueError(f"q must be a positive number of picks, got {q}")
    keys = jax.random.split(key, q)

    def pick(belief, allowed, best, s, pred):
        i = jnp.argmax(s)
        y = believed_value(to_utility(pred, sign), i, best, liar)
        belief = belief.add(candidates[i], from_utility(y, sign))
        return belief, allowed.at[i].set(False), jnp.maximum(best, y), i, s[i]

    head_i, head_v = [], []
    if first is not None:  # the decision's own scores: the first pick costs no re-scoring
        belief, allowed, best, i, v = pick(belief, allowed, best, *first)
        head_i, head_v, keys = [i[None]], [v[None]], keys[1:]
    arrays, static = eqx.partition(belief, eqx.is_array)  # a scan carries arrays only

    def body(carry, k):
        arrays, allowed, best = carry
        belief = eqx.combine(arrays, static)
        pred = belief.predictive(key=jax.random.fold_in(k, 1), num_draws=num_draws)
        s = score(belief, pred, best, k, allowed)
        belief, allowed, best, i, v = pick(belief, allowed, best, s, pred)
        return (eqx.filter(belief, eqx.is_array), allowed, best), (i, v)

    _, (idx, vals) = jax.lax.scan(body, (arrays, allowed, best), keys)
    idx = jnp.concatenate(head_i + [idx.astype(jnp.int32)])
    return idx.astype(jnp.int32), jnp.concatenate(head_v + [vals])


def kriging_believer(
    cache: PredictiveCache,
    q: int,
    acquisition: str | Callable = DEFAULT_RULE,
    *,
    best: ArrayLike | None = None,
    maximize: bool = True,
    mask: Bool[Array, " m"] | None = None,
    liar: str | float = "mean",
    key: PRNGKeyArray | None = None,
    **acq_kw: Any,
) -> tuple[Int[Array, " q"], Float[Array, " q"]]:
    """Greedy batch with fantasised observations on a :class:`~jaxscope.gp.PredictiveCache`.

    The engine of :func:`fantasy_batch` on the cache's own units (no standardisation).

    Args:
        cache: predictive cache over the candidates (or a batch of caches, one per
            hyperparameter sample); it needs no free slots.
        q: batch size.
        acquisition: a rule name or callable (``fn(pred, *, best, key, **acq_kw)``).
        best: incumbent; updated with each believed value (improvement rules need it).
        mask: allowed candidates (chosen ones are excluded automatically).
        liar: ``"mean"`` (kriging believer), ``"best"`` (constant liar at the incumbent), or a
            number.
        key: split across the ``q`` picks and passed to the rule.

    Returns:
        ``(indices, values)``: the chosen candidates and their acquisition values when chosen.
    """
    fn = get(acquisition)
    check_liar(liar)
    if liar == "best" and best is None:
        raise ValueError("liar='best' needs `best` (the incumbent)")
    if cache.mean.ndim == 1:
        cache = jax.tree_util.tree_map(lambda a: a[None] if eqx.is_array(a) else a, cache)
    sign = sign_of(maximize)
    dtype = cache.Xc.dtype
    allowed = jnp.ones(cache.Xc.shape[1:2], bool) if mask is None else jnp.asarray(mask, bool)
    best_u = jnp.asarray(jnp.nan if best is None else sign * jnp.asarray(best), dtype)
    liar_u = liar if isinstance(liar, str) else sign * float(liar)
    return _kriging_believer(
        cache, q, fn, sign, best_u, best is None, allowed, liar_u,
        jax.random.key(0) if key is None else key, acq_kw,
    )  # fmt: skip


@jit
def _kriging_believer(cache, q, fn, sign, best_u, no_best, allowed, liar, key, acq_kw):
    belief = CachedGPBelief(cache=cache, scaler=Standardizer.identity(cache.Xc.dtype))

    def score(belief, pred, best, k, allowed):
        s = fn(to_utility(pred, sign), best=None if no_best else best, key=k, **acq_kw)
        return jnp.where(allowed, s, -jnp.inf)

    return fantasy_batch(
        belief, cache.Xc[0], q, score, sign=sign, best=best_u, allowed=allowed, key=key,
        liar=liar,
    )  # fmt: skip
