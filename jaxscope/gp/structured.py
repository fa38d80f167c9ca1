r"""Structured models: a physics mean in physical units, with or without a GP residual.

:class:`StructuredFamily` is a :class:`~jaxscope.gp.ModelFamily` (so :func:`~jaxscope.gp.fit_nuts`,
:func:`~jaxscope.gp.fit_map`, :class:`~jaxscope.decide.NUTSGP` and :class:`~jaxscope.decide.MAPGP`
run it unchanged):

.. math::

    y(x) = f(x; \theta) + s\,g(x) + \varepsilon, \qquad g \sim \mathcal{GP}(0, k_\phi),
    \quad \varepsilon \sim \mathcal{N}(0, s^2\sigma^2)

with ``f`` a physics model (:class:`jaxscope.probmodels.ProbModel`: ``fn(x, params)`` and a numpyro
prior per parameter), kernel hyperparameters ``φ`` and noise ``σ²``. The physics priors act on
physical units (``x_c ~ U(0.3, 0.7)``, ``y0 ~ U(-10, 10)`` mean what they say); the residual and
noise priors act on *model units* ``z = (y - shift) / s``: a surrogate that standardises its
targets passes its scaler with :meth:`StructuredFamily.scaled`, and the physics mean is mapped
into model units inside (``(f - shift) / s``). ``kernel=None`` gives the model without a GP
(physics mean plus noise): a zero kernel, so the same posterior, predictive and fantasy code runs.

Leave-one-out: :func:`loo_log_densities` gives ``log p(y_i | y_{-i}, θ)`` in closed form from one
Cholesky factor (for the GP-free model these are the pointwise log-likelihoods), the input of
:func:`~jaxscope.gp.criteria.psis_loo` and :func:`~jaxscope.gp.criteria.waic`.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jaxtyping import Array, Float
from numpyro.distributions.transforms import biject_to

from .. import kernels as K
from .exact import GP, Posterior
from .linalg import triangular_inverse
from .model import ParametricMean, Params
from .observations import Observations, Standardizer

#: residual (kernel) and noise parameter names, reserved in a structured family
RESIDUAL_NAMES = ("lengthscale", "variance", "noise")


class PhysicsInModelUnits(eqx.Module):
    """``x, p -> (fn(x, p) - p["_shift"]) / p["_scale"]``: the physics mean in model units."""

    fn: Any = eqx.field(static=True)

    def __call__(self, x, p):
        return (self.fn(x, p) - p["_shift"]) / p["_scale"]


def residual_priors(
    candidates=None, *, gp: bool = True, lengthscale: float | None = None
) -> dict[str, dist.Distribution]:
    """Default priors of the residual GP and the noise (model units, standardised targets).

    Lengthscale ~ LogNormal(log(0.25·span), 0.75) (``span`` = the mean input range of
    ``candidates``, or 1); residual variance ~ LogNormal(log 0.1, 1) (the physics explains most
    of the signal); noise variance ~ LogNormal(log 0.01, 1.5). Without a GP only the noise.
    """
    priors = {"noise": dist.LogNormal(float(np.log(1e-2)), 1.5)}
    if gp:
        if lengthscale is None:
            span = 1.0
            if candidates is not None:
                C = np.asarray(candidates, float)
                C = C[:, None] if C.ndim == 1 else C
                span = float(np.mean(np.maximum(C.max(0) - C.min(0), 1e-6)))
            lengthscale = 0.25 * span
        priors["lengthscale"] = dist.LogNormal(float(np.log(lengthscale)), 0.75)
        priors["variance"] = dist.LogNormal(float(np.log(0.1)), 1.0)
    return priors


class StructuredFamily(eqx.Module):
    """Physics mean (physical units) + optional GP residual + noise (see the module docstring).

    Attributes:
        physics: anything with ``fn(x, params)`` (one point ``x`` of shape ``(d,)``) and
            ``priors`` (name -> numpyro distribution), e.g. a
            :class:`jaxscope.probmodels.ProbModel`.
        kernel: the residual's stationary kernel name, or ``None`` for no GP.
        residual: priors of ``"noise"`` (and ``"lengthscale"``, ``"variance"`` with a GP);
            default :func:`residual_priors`.
        shift, scale: the target scaling (model units ``z = (y - shift) / scale``); set by
            :meth:`scaled`.
        noise_floor: added to the noise variance.
    """

    physics: Any
    kernel: str | None = eqx.field(static=True, default="matern52")
    residual: dict[str, dist.Distribution] | None = None
    shift: Any = 0.0
    scale: Any = 1.0
    noise_floor: float = eqx.field(static=True, default=1e-6)
    jitter: float | None = eqx.field(static=True, default=None)

    def __post_init__(self):
        if self.residual is None:
            self.residual = residual_priors(gp=self.kernel is not None)
        self.shift = jnp.asarray(self.shift, jnp.result_type(float))
        self.scale = jnp.asarray(self.scale, jnp.result_type(float))

    def __check_init__(self):
        if self.kernel is not None:
            K.by_name(self.kernel)  # unknown kernel names fail here
        need = set(RESIDUAL_NAMES) if self.kernel is not None else {"noise"}
        if set(self.residual) != need:
            raise ValueError(
                f"residual priors must be exactly {sorted(need)}, got {sorted(self.residual)}"
            )
        clash = set(self.physics.priors) & set(RESIDUAL_NAMES)
        if clash:
            raise ValueError(
                f"physics parameter names {sorted(clash)} clash with the residual's "
                f"{list(RESIDUAL_NAMES)}: rename them"
            )

    @property
    def priors(self) -> dict[str, dist.Distribution]:
        return {**self.physics.priors, **self.residual}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.priors))

    @property
    def physics_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.physics.priors))

    def scaled(self, scaler: Standardizer) -> StructuredFamily:
        """The family for targets standardised by ``scaler`` (physics priors unchanged)."""
        return eqx.tree_at(lambda f: (f.shift, f.scale), self, (scaler.shift, scaler.scale))

    def residual_kernel(self, params: Params) -> K.Kernel:
        if self.kernel is None:  # no GP: a zero kernel (exact: the GP part vanishes)
            one = jnp.ones((), jnp.result_type(params["noise"]))
            return K.RBF(lengthscale=one, variance=0.0 * one)
        return K.by_name(self.kernel)(
            lengthscale=params["lengthscale"], variance=params["variance"]
        )

    def build(self, params: Params) -> GP:
        phys = {k: params[k] for k in self.physics_names}
        mean = ParametricMean(
            PhysicsInModelUnits(self.physics.fn),
            {**phys, "_shift": self.shift, "_scale": self.scale},
        )
        noise = params["noise"] + self.noise_floor
        return GP(kernel=self.residual_kernel(params), noise=noise, mean=mean, jitter=self.jitter)

    # --- the ModelFamily protocol (as GPModel's) -----------------------------------------------
    def constrain(self, u: Params) -> Params:
        pri = self.priors
        return {k: biject_to(pri[k].support)(u[k]) for k in self.names}

    def unconstrain(self, params: Params) -> Params:
        pri = self.priors
        return {k: biject_to(pri[k].support).inv(params[k]) for k in self.names}

    def log_prior(self, params: Params):
        pri = self.priors
        return sum(jnp.sum(pri[k].log_prob(params[k])) for k in self.names)

    def log_density_unconstrained(self, u: Params, obs: Observations):
        params = self.constrain(u)
        pri = self.priors
        ladj = sum(
            jnp.sum(biject_to(pri[k].support).log_abs_det_jacobian(u[k], params[k]))
            for k in self.names
        )
        return self.build(params).log_marginal_likelihood(obs) + self.log_prior(params) + ladj

    def log_posterior(self, params: Params, obs: Observations):
        return self.build(params).log_marginal_likelihood(obs) + self.log_prior(params)

    def init_params(self, dtype=None) -> Params:
        """Each prior's median where it has a closed form (LogNormal, HalfNormal, Uniform),
        else its mean."""
        dtype = dtype or jnp.result_type(float)
        return {k: jnp.asarray(prior_center(p), dtype) for k, p in self.priors.items()}


def prior_center(p: dist.Distribution):
    """A central value of a prior: the median of LogNormal / HalfNormal, else the mean (and the
    mid-point of a support with finite ends when the mean is not finite)."""
    if isinstance(p, dist.LogNormal):
        return jnp.exp(p.loc) * jnp.ones(p.batch_shape)
    if isinstance(p, dist.HalfNormal):
        return 0.6745 * p.scale * jnp.ones(p.batch_shape)
    return p.mean


def loo_log_densities(post: Posterior) -> Float[Array, " cap"]:
    r"""``log p(y_i | y_{-i}, θ)`` of every buffer row (model units; 0 on padding rows).

    From ``K̃⁻¹`` (one triangular inverse of the Cholesky factor): the leave-one-out predictive
    is ``N(y_i - α_i / [K̃⁻¹]_ii, 1 / [K̃⁻¹]_ii)`` with ``α = K̃⁻¹ (y - m)`` (Sundararajan &
    Keerthi 2001; Rasmussen & Williams eq. 5.12). For the GP-free model these are the pointwise
    log-likelihoods ``log N(y_i; f(x_i), σ²)``.
    """
    Linv = triangular_inverse(post.L)
    diag = jnp.sum(Linv * Linv, axis=0)
    alpha = Linv.T @ post.w
    ll = -0.5 * jnp.log(2 * jnp.pi) + 0.5 * jnp.log(diag) - 0.5 * alpha**2 / diag
    return jnp.where(post.obs.mask, ll, 0.0)
