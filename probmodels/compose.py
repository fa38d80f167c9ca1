"""Composition of models: sums and a two-sided piecewise model at a sampled breakpoint.

Parameter names of the parts are prefixed (``"{prefix}_{name}"``) so two copies of a model can
be combined without clashes; the composite is an ordinary :class:`ProbModel`.

Example:
    >>> m = sum_of(gaussian_peaks(1), power_law(offset=False), prefixes=("peak", "bg"))
    >>> m.names   # ('bg_a', 'bg_b', 'peak_A', 'peak_c', 'peak_sigma', 'peak_x0')
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpyro.distributions as dist

from .base import ProbModel


def _prefixed(models: Sequence[ProbModel], prefixes: Sequence[str]) -> dict[str, dist.Distribution]:
    if len(prefixes) != len(models):
        raise ValueError(f"{len(prefixes)} prefixes for {len(models)} models")
    if len(set(prefixes)) != len(prefixes) or not all(prefixes):
        raise ValueError(f"prefixes must be distinct and non-empty, got {tuple(prefixes)}")
    dims = {m.dim for m in models}
    if len(dims) != 1:
        raise ValueError(f"cannot combine models of different input dims {sorted(dims)}")
    pairs = zip(prefixes, models, strict=True)
    return {f"{pre}_{k}": v for pre, m in pairs for k, v in m.priors.items()}


def _common_domain(models: Sequence[ProbModel]):
    domains = {m.domain for m in models}
    return domains.pop() if len(domains) == 1 else None


def sum_of(*models: ProbModel, prefixes: Sequence[str] | None = None) -> ProbModel:
    r"""``f(x) = Σ_i f_i(x, θ_i)``, parameters renamed ``"{prefixes[i]}_{name}"``.

    Args:
        *models: models of the same input dimension (at least one).
        prefixes: one distinct prefix per model; default ``("m0", "m1", ...)``.

    Raises:
        ValueError: no models, input dims differ, or prefixes are not distinct / one per model.
    """
    if not models:
        raise ValueError("sum_of needs at least one model")
    prefixes = tuple(f"m{i}" for i in range(len(models))) if prefixes is None else tuple(prefixes)
    priors = _prefixed(models, prefixes)
    parts = tuple((m.fn, pre, tuple(m.priors)) for m, pre in zip(models, prefixes, strict=True))

    def fn(x, p):
        return sum(f(x, {k: p[f"{pre}_{k}"] for k in ks}) for f, pre, ks in parts)

    name = "sum_of(" + ", ".join(m.name or "?" for m in models) + ")"
    return ProbModel(fn, priors, dim=models[0].dim, domain=_common_domain(models), name=name)


def piecewise(
    m_left: ProbModel,
    m_right: ProbModel,
    breakpoint_prior: dist.Distribution,
    *,
    column: int = 0,
    prefixes: tuple[str, str] = ("left", "right"),
) -> ProbModel:
    r"""``f(x) = f_L(x, θ_L)`` for ``x[column] < t``, ``f_R(x, θ_R)`` for ``x[column] ≥ t``.

    The breakpoint ``t ~ breakpoint_prior`` is a parameter named ``"t"``; the parts' parameters
    are renamed ``"left_{name}"`` / ``"right_{name}"``. Continuity at ``t`` is not imposed. Both
    parts are evaluated everywhere (``jnp.where``), so each must be finite on the whole domain.

    Raises:
        ValueError: input dims differ, ``column`` is out of range, or prefixes clash.
    """
    priors = _prefixed((m_left, m_right), prefixes)
    if not 0 <= column < m_left.dim:
        raise ValueError(f"column {column} out of range for input dim {m_left.dim}")
    if not isinstance(breakpoint_prior, dist.Distribution):
        raise TypeError("breakpoint_prior must be a numpyro Distribution")
    priors["t"] = breakpoint_prior
    (lf, lk), (rf, rk) = ((m.fn, tuple(m.priors)) for m in (m_left, m_right))
    lp, rp = prefixes

    def fn(x, p):
        left = lf(x, {k: p[f"{lp}_{k}"] for k in lk})
        right = rf(x, {k: p[f"{rp}_{k}"] for k in rk})
        return jnp.where(x[column] < p["t"], left, right)

    name = f"piecewise({m_left.name or '?'}, {m_right.name or '?'})"
    return ProbModel(
        fn, priors, dim=m_left.dim, domain=_common_domain((m_left, m_right)), name=name
    )
