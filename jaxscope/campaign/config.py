r"""Campaign configuration: a surrogate, a policy and a selector (values, not mode strings).

:class:`CampaignConfig` is the static description of a campaign: what it learns from
(:class:`~jaxscope.decide.Surrogate`), how it scores candidates
(:class:`~jaxscope.decide.Policy`), how it picks ``q`` of them
(:class:`~jaxscope.decide.Selector`). Its static fields are part of the compiled program's
identity; the surrogate's priors and a policy's numbers are traced.

:func:`make_config` is the convenience layer the command line and notebooks use: it builds those
values from names (``mode="map" | "nuts" | "fixed"`` picks :class:`~jaxscope.decide.MAPGP`,
:class:`~jaxscope.decide.NUTSGP` or :class:`~jaxscope.decide.HeldGP` over the default GP
family, ``"grid"`` the structured :class:`~jaxscope.decide.GridGP` of a full candidate grid,
for sparse scans of whole images; ``batch=`` picks a selector) and checks every option.
Passing ``surrogate=``, ``policy=`` or ``selector=`` values directly is the same thing without
the names.

Example:
    >>> config = make_config(sim.candidates, acquisition="ucb", acq_kwargs={"beta": 4.0})
    >>> config = make_config(sim.candidates, surrogate=NUTSGP(GPModel(...)), q=4,
    ...                      selector=Believer())
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import ArrayLike

from ..decide import (
    MAPGP,
    NUTSGP,
    Exclusion,
    GridGP,
    HeldGP,
    Penalty,
    Policy,
    Selector,
    Surrogate,
    make_policy,
    selector_by_name,
)
from ..decide import acquisition as acquisition_rules
from ..gp import GPModel, ModelFamily

MODES = ("map", "nuts", "fixed", "grid")
BATCH_RULES = ("exclusion", "argmax", "believer", "qei", "qucb")

# options passed to the surrogate a mode builds
_SURROGATE_OPTIONS = {
    "map": ("map_steps", "map_tol", "refit_from", "standardize", "chunk_size", "draw_method",
            "draw_features"),
    "nuts": ("num_warmup", "num_samples", "standardize", "chunk_size", "draw_method",
             "draw_features"),
    "fixed": ("map_steps", "map_tol", "standardize", "chunk_size", "draw_method",
              "draw_features"),
    "grid": ("refit_steps", "init_steps", "grid_samples", "settings"),
}  # fmt: skip
_SELECTOR_OPTIONS = ("batch", "exclusion_radius", "joint_draws", "joint_subset")


class CampaignConfig(eqx.Module):
    """Static description of a campaign (build it with :func:`make_config`).

    Attributes:
        surrogate: what the campaign learns from.
        policy: acquisition rule(s) (``state.policy.rule`` picks one), penalties, exclusions.
        selector: how ``q`` points are chosen per step.
        q: points per step.
        num_draws: joint posterior draws over the candidates in each decision's predictive
            (Thompson-type rules need them; set automatically).
        track_rmse: record the predictive-mean RMSE against the problem's truth each step.
    """

    surrogate: Surrogate
    policy: Policy
    selector: Selector = Exclusion()
    q: int = eqx.field(static=True, default=1)
    num_draws: int = eqx.field(static=True, default=0)
    track_rmse: bool = eqx.field(static=True, default=True)

    @property
    def acquisitions(self) -> tuple[Callable, ...]:
        """The policy's rules (``state.policy.rule`` indexes them)."""
        return self.policy.rules


def make_surrogate(
    mode: str, candidates: ArrayLike, model: ModelFamily | None = None, kernel: str = "rbf",
    **options: Any,
) -> Surrogate:  # fmt: skip
    """The GP surrogate of a mode name over ``model`` (default: the campaign's GP family)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    unknown = set(options) - set(_SURROGATE_OPTIONS[mode])
    if unknown:
        raise ValueError(f"option(s) {sorted(unknown)} do not apply to mode {mode!r}")
    if mode == "grid":  # the structured GP of a full candidate grid (sparse scans of images)
        if model is not None:
            raise ValueError("mode 'grid' builds its own product-kernel GP: drop model=")
        if "grid_samples" in options:
            options["num_samples"] = options.pop("grid_samples")
        return GridGP.for_candidates(candidates, kernel=kernel, **options)
    model = GPModel.for_candidates(candidates, kernel) if model is None else model
    if mode == "map":
        return MAPGP(model, **options)
    if mode == "nuts":
        return NUTSGP(model, **options)
    return HeldGP(model, jnp.asarray(candidates), **options)


def make_config(
    candidates: ArrayLike | None = None,
    *,
    surrogate: Surrogate | None = None,
    policy: Policy | None = None,
    selector: Selector | None = None,
    model: ModelFamily | None = None,
    kernel: str = "rbf",
    mode: str = "map",
    acquisition: str | Callable | Sequence[str | Callable] = acquisition_rules.DEFAULT,
    acq_kwargs: dict | Sequence[dict | None] | None = None,
    penalties: Sequence[Penalty | Callable] = (),
    allow_repeats: bool = False,
    q: int = 1,
    num_draws: int = 0,
    track_rmse: bool = True,
    **options: Any,
) -> CampaignConfig:
    """Build a :class:`CampaignConfig`, checking every option.

    Args:
        candidates: the candidate set (the default model's priors, the held surrogate's cache).
        surrogate: a :class:`~jaxscope.decide.Surrogate`; default: the GP surrogate of ``mode``
            over ``model`` (default :meth:`GPModel.for_candidates` with ``kernel``).
        policy: a :class:`~jaxscope.decide.Policy`; default from ``acquisition`` (a rule name,
            a callable ``fn(pred, *, best, key) -> (m,)``, or a sequence of these),
            ``acq_kwargs`` (one dict per rule), ``penalties`` and ``allow_repeats``.
        selector: a :class:`~jaxscope.decide.Selector`; default from ``batch`` (``"exclusion"``,
            ``"argmax"``, ``"believer"``, ``"qei"``, ``"qucb"``) with ``exclusion_radius``,
            ``joint_draws``, ``joint_subset``.
        q: points per step.
        **options: the mode's surrogate options (``map_steps``, ``map_tol``, ``num_warmup``,
            ``num_samples``, ``standardize``, ``chunk_size``, ``draw_method``,
            ``draw_features``) and the selector options above.
    """
    if q < 1:
        raise ValueError(f"q must be a positive number of points per step, got {q}")
    known = set(_SELECTOR_OPTIONS).union(*_SURROGATE_OPTIONS.values())
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown campaign option(s) {sorted(unknown)}; known: {sorted(known)}")
    sel_opts = {k: options.pop(k) for k in _SELECTOR_OPTIONS if k in options}
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    if surrogate is None:
        if candidates is None:
            raise ValueError("give either a surrogate or the candidates to build the default one")
        options = {k: v for k, v in options.items() if k in _SURROGATE_OPTIONS[mode]}
        surrogate = make_surrogate(mode, candidates, model, kernel, **options)
    elif not isinstance(surrogate, Surrogate):
        raise ValueError(f"surrogate must be a jaxscope.decide.Surrogate, got {surrogate!r}")
    if policy is None:
        policy = make_policy(
            acquisition, acq_kwargs, penalties=penalties, allow_repeats=allow_repeats
        )
    if selector is None:
        batch = sel_opts.get("batch", "exclusion")
        if batch not in BATCH_RULES:
            raise ValueError(f"unknown batch rule {batch!r}; use one of {BATCH_RULES}")
        selector = selector_by_name(
            batch,
            radius=sel_opts.get("exclusion_radius"),
            joint_draws=sel_opts.get("joint_draws", 256),
            joint_subset=sel_opts.get("joint_subset", 64),
        )
    if policy.needs_draws:
        num_draws = max(num_draws, 1)
    return CampaignConfig(
        surrogate=surrogate,
        policy=policy,
        selector=selector,
        q=q,
        num_draws=num_draws,
        track_rmse=track_rmse,
    )
