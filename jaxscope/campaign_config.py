r"""Campaign configuration: the static description of a campaign and its default GP family.

:class:`CampaignConfig` holds the model family, the model mode (``"map"``, ``"nuts"``,
``"fixed"``), the acquisition rule(s), penalties and the batch rule; every field except the model's
priors is static, so a config is part of the compiled program's identity. Build it with
:func:`make_config`, which checks every option and resolves acquisition names.

Example:
    >>> config = make_config(sim.candidates, acquisition="ucb", acq_kwargs={"beta": 4.0},
    ...                      mode="map", q=1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import numpy as np
import numpyro.distributions as dist
from jaxtyping import ArrayLike

from . import kernels as K
from ._campaign_parts import BATCH_RULES, resolve_acquisition
from .model import GPModel

MODES = ("map", "nuts", "fixed")


class CampaignConfig(eqx.Module):
    """Static description of a campaign (build it with :func:`make_config`).

    Attributes:
        model: GP family for the standardised targets (:func:`default_model`).
        mode: ``"map"`` (refit every step, warm start), ``"nuts"`` (NUTS every step) or
            ``"fixed"`` (hyperparameters held, rank-1 ``PredictiveCache`` updates).
        acquisitions: rules ``fn(pred, *, best, key) -> (m,)``; the state's ``policy`` picks one.
        penalties: ``fn(scores, ctx) -> scores`` hooks (ctx: ``PenaltyContext``).
        q, batch: points per step and the batch rule: ``"exclusion"`` (non-maximum suppression
            within ``exclusion_radius``, default the lengthscale), ``"believer"`` (kriging
            believer with rank-1 fantasies), ``"qei"`` / ``"qucb"`` (joint Monte Carlo over
            ``joint_draws`` draws on the ``joint_subset`` best candidates).
        allow_repeats: let a candidate be measured again.
        chunk_size: candidates per chunk of the predictive pass.
        map_steps, map_tol: L-BFGS iteration cap and gradient tolerance of the MAP refit.
        num_warmup, num_samples: NUTS settings (``"nuts"`` mode).
        standardize: standardise targets for the model (explicitly; kept in the state).
        track_rmse: record the predictive-mean RMSE against ``problem.truth`` each step.
        num_draws, draw_method, draw_features: joint posterior draws for Thompson-type rules
            (``"auto"``, ``"exact"`` or ``"pathwise"`` with ``draw_features`` random features).
    """

    model: GPModel
    mode: str = eqx.field(static=True, default="map")
    acquisitions: tuple[Callable, ...] = eqx.field(static=True, default=())
    penalties: tuple[Callable, ...] = eqx.field(static=True, default=())
    q: int = eqx.field(static=True, default=1)
    batch: str = eqx.field(static=True, default="exclusion")
    exclusion_radius: float | None = eqx.field(static=True, default=None)
    allow_repeats: bool = eqx.field(static=True, default=False)
    chunk_size: int | None = eqx.field(static=True, default=4096)
    map_steps: int = eqx.field(static=True, default=100)
    map_tol: float = eqx.field(static=True, default=1e-4)
    num_warmup: int = eqx.field(static=True, default=200)
    num_samples: int = eqx.field(static=True, default=200)
    standardize: bool = eqx.field(static=True, default=True)
    track_rmse: bool = eqx.field(static=True, default=True)
    num_draws: int = eqx.field(static=True, default=0)
    joint_draws: int = eqx.field(static=True, default=256)
    joint_subset: int = eqx.field(static=True, default=64)
    draw_method: str = eqx.field(static=True, default="auto")
    draw_features: int = eqx.field(static=True, default=2048)


def default_model(candidates: ArrayLike, kernel: str = "rbf", *, noise: bool = True) -> GPModel:
    """A GP family for standardised targets over the box spanned by ``candidates``.

    lengthscale ~ LogNormal(log(0.2·range), 1) (shared), variance ~ LogNormal(0, 1),
    noise variance ~ LogNormal(log 1e-2, 2) (or a fixed 1e-6 with ``noise=False``); zero mean.
    The priors depend only on the candidate set, never on measured data, so they are fixed for
    the whole compiled campaign.
    """
    C = np.asarray(candidates, float)
    C = C[:, None] if C.ndim == 1 else C
    span = float(np.mean(np.maximum(C.max(0) - C.min(0), 1e-6)))
    cls = K.by_name(kernel)
    priors = {
        "lengthscale": dist.LogNormal(float(np.log(0.2 * span)), 1.0),
        "variance": dist.LogNormal(0.0, 1.0),
    }
    if noise:
        priors["noise"] = dist.LogNormal(float(np.log(1e-2)), 2.0)
    return GPModel(
        kernel=lambda p: cls(lengthscale=p["lengthscale"], variance=p["variance"]),
        priors=priors,
    )


def make_config(
    candidates: ArrayLike | None = None,
    *,
    model: GPModel | None = None,
    kernel: str = "rbf",
    mode: str = "map",
    acquisition: str | Callable | Sequence[str | Callable] = "logei",
    acq_kwargs: dict | Sequence[dict | None] | None = None,
    penalties: Sequence[Callable] = (),
    q: int = 1,
    **options: Any,
) -> CampaignConfig:
    """Build a :class:`CampaignConfig`, checking every option.

    Args:
        candidates: the candidate set (used for the default model's priors).
        model: a :class:`GPModel` for standardised targets; default :func:`default_model`.
        mode: ``"map"``, ``"nuts"`` or ``"fixed"``.
        acquisition: a name known to :func:`jaxscope.acquisition.get`, a callable
            ``fn(pred, *, best, key) -> (m,)`` scores (higher is better), or a sequence of these
            (the state's ``policy`` picks one).
        acq_kwargs: keyword arguments bound to the acquisition(s) (one dict per acquisition).
        penalties: callables ``fn(scores, ctx) -> scores`` applied in order (see
            :class:`jaxscope._campaign_parts.PenaltyContext`).
        q: points per step.
        **options: any other :class:`CampaignConfig` field (``batch``, ``exclusion_radius``,
            ``chunk_size``, ``map_steps``, ``num_warmup``, ``num_samples``, ...).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    if q < 1:
        raise ValueError(f"q must be a positive number of points per step, got {q}")
    if options.get("batch", "exclusion") not in BATCH_RULES:
        raise ValueError(f"unknown batch rule {options['batch']!r}; use one of {BATCH_RULES}")
    fields = set(CampaignConfig.__dataclass_fields__) - {
        "model",
        "mode",
        "acquisitions",
        "penalties",
        "q",
    }
    unknown = set(options) - fields
    if unknown:
        raise ValueError(f"unknown campaign option(s) {sorted(unknown)}; known: {sorted(fields)}")
    if model is None:
        if candidates is None:
            raise ValueError("give either a model or the candidates to build the default model")
        model = default_model(candidates, kernel)
    acqs = acquisition if isinstance(acquisition, list | tuple) else [acquisition]
    kws = acq_kwargs if isinstance(acq_kwargs, list | tuple) else [acq_kwargs] * len(acqs)
    if len(kws) != len(acqs):
        raise ValueError(f"{len(acqs)} acquisitions but {len(kws)} acq_kwargs dicts")
    resolved = [resolve_acquisition(a, kw) for a, kw in zip(acqs, kws, strict=True)]
    fns = tuple(fn for fn, _ in resolved)
    if any(needs for _, needs in resolved):
        options.setdefault("num_draws", 1)
    return CampaignConfig(
        model=model, mode=mode, acquisitions=fns, penalties=tuple(penalties), q=q, **options
    )
