r"""Selectors: how ``q`` points are chosen from the scores, one family for every runner.

* :class:`Argmax`: the best candidate (``q = 1``) or the ``q`` best (top-q, no interaction);
* :class:`Exclusion`: non-maximum suppression (GPim's batch update, :func:`nms`): take the argmax,
  forbid every candidate within ``radius`` of it (scalar or per dimension, default the
  surrogate's lengthscale: :math:`\sum_k ((x_k - x^*_k)/r_k)^2 \le 1`), repeat;
* :class:`Believer`: sequential greedy picks with fantasies (:mod:`jaxscope.decide.fantasy`, the
  one fantasy engine the agent's pending points use too);
* :class:`JointMC`: joint qEI / qUCB by Monte Carlo (:mod:`jaxscope.decide.joint`).

A selector is a value in the campaign config. For ``q = 1`` every selector takes the argmax of
the decision's scores. ``room(q)`` is how many fantasised points its belief must have space for.

Example:
    >>> config = make_config(C, q=4, selector=Believer())
    >>> idx, vals, ok = nms(scores, Xc, q=4, radius=lengthscale)
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from ..gp import Predictive
from ..kernels import as_points
from .fantasy import check_liar, fantasy_batch
from .joint import joint_greedy, joint_values
from .surrogate import Belief
from .units import to_utility


def _scaled_within(Xc, x, radius):
    r = jnp.broadcast_to(jnp.asarray(radius, Xc.dtype), (Xc.shape[1],))
    return jnp.sum(((Xc - x) / r) ** 2, axis=1) <= 1.0


def nms(
    scores: Float[Array, " m"],
    Xc: Float[Array, "m d"],
    q: int,
    radius: ArrayLike,
    *,
    mask: Bool[Array, " m"] | None = None,
) -> tuple[Int[Array, " q"], Float[Array, " q"], Bool[Array, " q"]]:
    """Greedy non-maximum suppression: ``q`` argmaxes at least ``radius`` apart.

    Returns:
        ``(indices, values, valid)``; ``valid[k]`` is ``False`` when nothing allowed was left at
        pick ``k`` (its index then repeats an earlier, invalid pick and must be ignored).
    """
    Xc = as_points(Xc, "Xc")
    s0 = scores if mask is None else jnp.where(mask, scores, -jnp.inf)

    def body(s, _):
        i = jnp.argmax(s)
        v = s[i]
        s = jnp.where(_scaled_within(Xc, Xc[i], radius), -jnp.inf, s).at[i].set(-jnp.inf)
        return s, (i, v, v > -jnp.inf)

    _, (idx, vals, ok) = jax.lax.scan(body, s0, length=q)
    return idx, vals, ok


class SelectContext(NamedTuple):
    """What a selector may use: candidates, the decision's predictive (original units), the
    belief and the policy's scoring function ``score(belief, pred, best, key, allowed)``, the
    incumbent (utility), the sign, the allowed mask, a PRNG key, the joint draws of a re-scored
    predictive and the surrogate's length scale (a thunk: only non-maximum suppression asks for
    it)."""

    candidates: Float[Array, "m d"]
    pred: Predictive
    belief: Belief
    score: Callable[..., Float[Array, " m"]]
    best: Float[Array, ""]
    sign: float
    allowed: Bool[Array, " m"]
    key: PRNGKeyArray
    num_draws: int
    length_scale: Callable[[], Array]


class Selector(eqx.Module):
    """Abstract selector: ``select(q, scores, ctx) -> (indices (q,), values (q,))``."""

    def room(self, q: int) -> int:
        """Fantasised points the belief must have room for."""
        del q
        return 0

    @property
    def fantasises(self) -> bool:
        """Whether the selector adds fantasies to the belief (then it is made cheap to update)."""
        return False

    def fantasy_liar(self) -> str | float:
        """The value fantasised for pending points (:mod:`jaxscope.decide.fantasy`)."""
        return "mean"

    def select(self, q: int, scores: Float[Array, " m"], ctx: SelectContext):
        if q == 1:
            i = jnp.argmax(scores).astype(jnp.int32)
            return i[None], scores[i][None]
        return self.select_batch(q, scores, ctx)

    @abc.abstractmethod
    def select_batch(self, q: int, scores: Float[Array, " m"], ctx: SelectContext):
        """The ``q > 1`` case."""


class Argmax(Selector):
    """The ``q`` highest scores (for ``q = 1`` the argmax)."""

    def select_batch(self, q, scores, ctx):
        vals, idx = jax.lax.top_k(scores, q)
        return idx.astype(jnp.int32), vals


class Exclusion(Selector):
    """Non-maximum suppression within ``radius`` (default: the surrogate's lengthscale)."""

    radius: Any = None

    def select_batch(self, q, scores, ctx):
        r = ctx.length_scale() if self.radius is None else self.radius
        idx, vals, _ = nms(scores, ctx.candidates, q, r)
        return idx.astype(jnp.int32), vals


class Believer(Selector):
    """Kriging believer (``liar="mean"``) or constant liar: see :mod:`jaxscope.decide.fantasy`."""

    liar: str | float = eqx.field(static=True, default="mean")

    def __check_init__(self):
        check_liar(self.liar)

    def room(self, q: int) -> int:
        return q if q > 1 else 0

    @property
    def fantasises(self) -> bool:
        return True

    def fantasy_liar(self) -> str | float:
        return self.liar

    def select_batch(self, q, scores, ctx):
        return fantasy_batch(
            ctx.belief,
            ctx.candidates,
            q,
            ctx.score,
            sign=ctx.sign,
            best=ctx.best,
            allowed=ctx.allowed,
            key=ctx.key,
            liar=self.liar,
            num_draws=ctx.num_draws,
            first=(scores, ctx.pred),
        )


class JointMC(Selector):
    """Greedy joint qEI (``kind="qei"``) or qUCB over the ``subset`` best candidates by the
    decision's scores, with ``num_draws`` common joint draws."""

    kind: str = eqx.field(static=True, default="qei")
    num_draws: int = eqx.field(static=True, default=256)
    subset: int = eqx.field(static=True, default=64)
    beta: float = 4.0

    def __check_init__(self):
        if self.kind not in ("qei", "qucb"):
            raise ValueError(f"unknown joint rule {self.kind!r}; use 'qei' or 'qucb'")

    def select_batch(self, q, scores, ctx):
        C = ctx.candidates
        subset = min(self.subset, C.shape[0])
        if q > subset:
            raise ValueError(f"q = {q} must not exceed the joint subset {subset}")
        top_vals, top = jax.lax.top_k(scores, subset)
        f_u = ctx.sign * ctx.belief.draws(ctx.key, C[top], self.num_draws)
        mean_u = jnp.mean(to_utility(ctx.pred, ctx.sign).mean[:, top], axis=0)
        g, floor = joint_values(self.kind, f_u, mean_u, ctx.best, jnp.asarray(self.beta))
        return joint_greedy(g, top, top_vals > -jnp.inf, q, floor=floor)


SELECTORS = {"argmax": Argmax, "exclusion": Exclusion, "believer": Believer}


def selector_by_name(
    name: str, *, radius=None, joint_draws: int = 256, joint_subset: int = 64
) -> Selector:
    """A selector by its old batch-rule name: ``"argmax"``, ``"exclusion"``, ``"believer"``,
    ``"qei"``, ``"qucb"``."""
    if name == "exclusion":
        return Exclusion(radius)
    if name in ("qei", "qucb"):
        return JointMC(kind=name, num_draws=joint_draws, subset=joint_subset)
    if name in SELECTORS:
        return SELECTORS[name]()
    raise ValueError(
        f"unknown batch rule {name!r}; use one of {sorted([*SELECTORS, 'qei', 'qucb'])}"
    )
