r"""Policies: acquisition rules plus penalties plus their state, as an ``init``/``update`` pair.

A :class:`Policy` is immutable (its rules and penalties); its :class:`PolicyState` lives in the
campaign state and changes with every step:

.. code-block:: text

    pstate = policy.init(candidates)                  # active rule 0, empty penalty memories
    scores = policy.scores(pstate, belief, pred, ctx) # utility scores of every candidate
    pstate = policy.update(pstate, x_chosen)          # penalty memories remember the points

``pstate.rule`` picks the active rule by ``lax.switch``, so switching rules between steps (a
human-in-the-loop hook, a strategy benchmark's ``vmap``) is a state change, not a recompile.

**Penalties** are one vocabulary: a :class:`Penalty` has ``init(candidates) -> state``,
``apply(scores, ctx, state) -> scores`` and ``update(state, x) -> state`` (optax style).
:class:`RecentPointsMemory` is GPim's recent-points memory (:func:`~jaxscope.decide.penalties.
memory_mask`), :class:`TravelCost` the probe's travel cost, :class:`InverseDistance` a soft
repulsion from recent points, and :class:`FunctionPenalty` wraps a stateless ``fn(scores,
ctx)``; a plain callable given as a penalty is wrapped so.

Everything a policy computes is in **utility** units (original units, larger is better:
:mod:`jaxscope.decide.units`); penalties are subtracted on the rule's own scale (for ``logei``
a penalty of 1 divides EI by ``e``).

Example:
    >>> policy = make_policy(["logei", "ucb"], penalties=[RecentPointsMemory(k=5, dscale=0.1)])
    >>> pstate = policy.init(C)
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..gp import Observations, Predictive
from . import penalties as P
from .acquisition import DEFAULT as DEFAULT_RULE
from .acquisition import get as get_rule
from .surrogate import Belief
from .units import to_utility


class PenaltyContext(NamedTuple):
    """What a penalty may look at: candidates, probe position, buffer, step, measured mask and
    the predictive (utility units)."""

    candidates: Float[Array, "m d"]
    position: Float[Array, " d"]
    obs: Observations
    step: Array
    measured: Bool[Array, " m"]
    pred: Predictive


class Penalty(eqx.Module):
    """Abstract penalty: ``init`` / ``apply`` / ``update`` (see the module docstring)."""

    def init(self, candidates: Float[Array, "m d"]) -> Any:
        del candidates
        return None

    @abc.abstractmethod
    def apply(self, scores: Float[Array, " m"], ctx: PenaltyContext, state: Any):
        """Scores after the penalty (``-inf`` excludes a candidate)."""

    def update(self, state: Any, x: Float[Array, "q d"]) -> Any:
        del x
        return state


class FunctionPenalty(Penalty):
    """A stateless penalty ``fn(scores, ctx) -> scores``."""

    fn: Callable = eqx.field(static=True)

    def apply(self, scores, ctx, state):
        return self.fn(scores, ctx)


class MemoryPenalty(Penalty):
    """A penalty whose state is the last ``k`` chosen points (newest first)."""

    k: int = eqx.field(static=True, default=5, kw_only=True)

    def init(self, candidates):
        return P.memory_init(self.k, candidates.shape[1], candidates.dtype)

    def update(self, state, x):
        for i in range(x.shape[0]):
            state = P.memory_update(state, x[i])
        return state


class RecentPointsMemory(MemoryPenalty):
    r"""GPim's memory: forbid candidates closer than :math:`d\,\gamma^{a}` to the point chosen
    ``a`` steps ago, for the last ``k`` points."""

    dscale: float = 0.1
    gamma: float = 0.8

    def apply(self, scores, ctx, state):
        ok = P.memory_mask(state, ctx.candidates, dscale=self.dscale, gamma=self.gamma)
        return jnp.where(ok, scores, -jnp.inf)


class InverseDistance(MemoryPenalty):
    r"""Soft repulsion :math:`\lambda\sum_a 1/((1 + \lVert x - p_a\rVert/\ell)(1 + a))` from the
    last ``k`` chosen points."""

    factor: float = 1.0
    scale: float = 1.0

    def apply(self, scores, ctx, state):
        pen = P.inverse_distance_penalty(
            state, ctx.candidates, factor=self.factor, scale=self.scale
        )
        return scores - pen


class TravelCost(Penalty):
    r"""Cost of moving the probe from its position, :math:`\rho\lVert (x - x_0)/s\rVert_p`."""

    rate: float = 1.0
    scale: Any = 1.0
    ord: int | float = eqx.field(static=True, default=2)

    def apply(self, scores, ctx, state):
        cost = P.travel_cost(
            ctx.candidates, ctx.position, rate=self.rate, scale=self.scale, ord=self.ord
        )
        return scores - cost


def as_penalty(p: Penalty | Callable) -> Penalty:
    """A :class:`Penalty` as is; a callable ``fn(scores, ctx)`` as a :class:`FunctionPenalty`."""
    if isinstance(p, Penalty):
        return p
    if callable(p):
        return FunctionPenalty(p)
    raise ValueError(f"a penalty must be a Penalty or a callable fn(scores, ctx), got {p!r}")


class PolicyState(eqx.Module):
    """The active rule (index into ``Policy.rules``) and each penalty's state."""

    rule: Int[Array, ""]
    penalties: tuple


def rule_requires(fn: Callable) -> tuple[str, ...]:
    """What a rule needs besides the predictive: ``"draws"`` (joint draws), ``"cache"`` (a GP
    predictive cache, one-step lookahead)."""
    return tuple(getattr(getattr(fn, "func", fn), "requires", ()))


class Policy(eqx.Module):
    """Acquisition rules (one active at a time), penalties and exclusions."""

    rules: tuple[Callable, ...] = eqx.field(static=True)
    penalties: tuple[Penalty, ...] = ()
    allow_repeats: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not self.rules:
            raise ValueError("a policy needs at least one acquisition rule")

    @property
    def needs_draws(self) -> bool:
        return any("draws" in rule_requires(f) for f in self.rules)

    def init(self, candidates: Float[Array, "m d"]) -> PolicyState:
        return PolicyState(
            rule=jnp.zeros((), jnp.int32),
            penalties=tuple(p.init(candidates) for p in self.penalties),
        )

    def update(self, state: PolicyState, x: Float[Array, "q d"]) -> PolicyState:
        """The state after the points ``x`` were chosen (and measured)."""
        pens = tuple(p.update(s, x) for p, s in zip(self.penalties, state.penalties, strict=True))
        return PolicyState(rule=state.rule, penalties=pens)

    def with_rule(self, rule: str | Callable) -> tuple[Policy, int]:
        """``(policy, index)`` of ``rule``: the index of an existing rule, or a policy with it
        appended (for a host runner's switch to a rule the campaign did not start with)."""
        fn = get_rule(rule)
        for i, f in enumerate(self.rules):
            if f is fn or getattr(f, "func", None) is fn:
                return self, i
        return dataclasses.replace(self, rules=self.rules + (fn,)), len(self.rules)

    def scores(
        self,
        state: PolicyState,
        belief: Belief,
        pred: Predictive,
        ctx: PenaltyContext,
        *,
        sign: float,
        best: Float[Array, ""],
        key: PRNGKeyArray,
        allowed: Bool[Array, " m"],
    ) -> Float[Array, " m"]:
        """Utility scores of every candidate: active rule, penalties, then exclusions.

        Args:
            belief: the surrogate's belief over the candidates (lookahead rules read its cache).
            pred: the predictive over the candidates in original units.
            ctx: penalty context (its ``pred`` is replaced by the utility predictive).
            sign: ``+1`` to maximise, ``-1`` to minimise. best: incumbent (utility).
            allowed: candidates that may be chosen (measured ones already removed).
        """
        pred_u = to_utility(pred, sign)

        def run(fn):
            def call():
                if "cache" in rule_requires(fn):
                    cache, scale = belief.lookahead()
                    return scale * fn(pred_u, best=best, key=key, cache=cache, maximize=sign > 0)
                return fn(pred_u, best=best, key=key)

            return call

        branches = [run(f) for f in self.rules]
        s = branches[0]() if len(branches) == 1 else jax.lax.switch(state.rule, branches)
        ctx = ctx._replace(pred=pred_u)
        for p, ps in zip(self.penalties, state.penalties, strict=True):
            s = p.apply(s, ctx, ps)
        return jnp.where(allowed, s, -jnp.inf)

    def allowed(
        self, measured: Bool[Array, " m"], mask: Bool[Array, " m"] | None
    ) -> Bool[Array, " m"]:
        """Candidates that may be chosen: not measured (unless repeats are allowed), in ``mask``."""
        ok = jnp.ones(measured.shape, bool) if self.allow_repeats else ~measured
        return ok if mask is None else ok & mask


def make_policy(
    acquisition: str | Callable | Sequence[str | Callable] = DEFAULT_RULE,
    acq_kwargs: dict | Sequence[dict | None] | None = None,
    *,
    penalties: Sequence[Penalty | Callable] = (),
    allow_repeats: bool = False,
) -> Policy:
    """A :class:`Policy` from rule names or callables (keyword arguments bound per rule).

    Raises:
        ValueError: for an unknown rule name or mismatched ``acq_kwargs``.
    """
    acqs = acquisition if isinstance(acquisition, list | tuple) else [acquisition]
    kws = acq_kwargs if isinstance(acq_kwargs, list | tuple) else [acq_kwargs] * len(acqs)
    if len(kws) != len(acqs):
        raise ValueError(f"{len(acqs)} acquisitions but {len(kws)} acq_kwargs dicts")
    rules = []
    for a, kw in zip(acqs, kws, strict=True):
        fn = get_rule(a)
        rules.append(functools.partial(fn, **kw) if kw else fn)
    return Policy(
        rules=tuple(rules),
        penalties=tuple(as_penalty(p) for p in penalties),
        allow_repeats=allow_repeats,
    )


#: penalty names of the command line and the quality benchmark (:func:`penalties_by_name`)
PENALTY_NAMES = ("none", "memory")


def penalties_by_name(name: str, candidates) -> tuple[Penalty, ...]:
    """The penalties a name stands for: ``"none"``, or ``"memory"`` (GPim's
    :class:`RecentPointsMemory` over the last 5 points, radius 0.1 × the candidate box's mean
    side).

    Raises:
        ValueError: for an unknown name.
    """
    if name == "none":
        return ()
    if name == "memory":
        C = jnp.asarray(candidates)
        span = float(jnp.mean(jnp.max(C, axis=0) - jnp.min(C, axis=0)))
        return (RecentPointsMemory(k=5, dscale=0.1 * span),)
    raise ValueError(f"unknown penalty {name!r}; use one of {PENALTY_NAMES}")
