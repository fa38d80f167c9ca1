"""Ising surrogate: a coth-type response to a cubic function of the couplings ``(J1, J2)``.

A phenomenological structured mean for observables of the J1–J2 lattice Ising model explored by
active learning (cf. Ziatdinov, Ghosh, Kalinin, Mach. Learn.: Sci. Technol. 3, 015003 (2022)):

    f(J1, J2) = A / tanh((g(J1) + g(J2)) / w),   g(J) = c0 + c1 J + c2 J² + c3 J³.

``1/tanh`` diverges at 0; ``|tanh|`` is clamped below at ``eps`` (sign kept), so values and
gradients stay finite.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro.distributions as dist

from .base import ProbModel, resolve_priors
from .guards import clamped_reciprocal


def ising_tanh(w: float = 1.0, eps: float = 1e-6, **priors: dist.Distribution) -> ProbModel:
    r"""``f(J1, J2) = A / tanh((g(J1) + g(J2)) / w)`` with a cubic ``g`` shared by both couplings.

    Input ``x = (J1, J2)``, default priors scaled for ``J ∈ [-1, 1]``: ``A ~ LogNormal(0, 1)``,
    ``c0 ~ Normal(1, 0.5)``, ``c1, c2, c3 ~ Normal(0, 0.5)``.

    Args:
        w: fixed temperature-like scale. It is not a parameter: ``(c, w)`` and
            ``(λc, λw)`` give the same ``f``, so only ``c / w`` is identifiable.
        eps: lower clamp of ``|tanh(·)|``.
    """
    if not w > 0 or not eps > 0:
        raise ValueError(f"ising_tanh: w and eps must be > 0, got w={w}, eps={eps}")
    defaults = {
        "A": dist.LogNormal(0.0, 1.0),
        "c0": dist.Normal(1.0, 0.5),
        "c1": dist.Normal(0.0, 0.5),
        "c2": dist.Normal(0.0, 0.5),
        "c3": dist.Normal(0.0, 0.5),
    }

    def fn(x, p):
        g = p["c0"] + p["c1"] * x + p["c2"] * x**2 + p["c3"] * x**3  # (2,)
        return p["A"] * clamped_reciprocal(jnp.tanh(jnp.sum(g) / w), eps)

    pri = resolve_priors(defaults, priors, "ising_tanh")
    return ProbModel(fn, pri, dim=2, domain=((-1.0, 1.0), (-1.0, 1.0)), name="ising_tanh")
