"""GP families: hyperparameter priors plus a pure builder from parameters to a :class:`GP`.

A :class:`GPModel` names its hyperparameters, gives each a numpyro prior, and builds a GP from a
dict of constrained values. Inference (MAP, NUTS) works on unconstrained values through
``numpyro.distributions.transforms.biject_to(prior.support)``, the one place where bijections are
applied. Any kernel works, including one a user writes as a function of two points.

Example (a user-defined kernel):
    >>> def matern32_ard(x1, x2, p):
    ...     r = jnp.sqrt(jnp.sum(((x1 - x2) / p["ls"]) ** 2) + 1e-12)
    ...     return p["var"] * (1 + jnp.sqrt(3) * r) * jnp.exp(-jnp.sqrt(3) * r)
    >>> model = GPModel(
    ...     kernel=lambda p: FunctionKernel(matern32_ard, {"ls": p["ls"], "var": p["var"]}),
    ...     priors={"ls": dist.LogNormal(jnp.zeros(2), 1.0), "var": dist.LogNormal(0.0, 1.0),
    ...             "noise": dist.LogNormal(-4.0, 1.0)},
    ... )
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions.transforms import biject_to

from .. import kernels as K
from .exact import GP
from .observations import Observations

Params = dict[str, Any]


@runtime_checkable
class ModelFamily(Protocol):
    """What MAP and NUTS need of a model family (a :class:`GPModel`, or a user's own class).

    Named parameters with priors; ``build(params)`` gives something with
    ``log_marginal_likelihood(obs)`` and ``condition(obs)`` (a :class:`~jaxscope.gp.GP`);
    constrained ↔ unconstrained maps; the log posterior (MAP objective) and the NUTS target.
    Runtime type checks test this protocol, never the class, so a user's family is accepted.
    """

    priors: dict

    @property
    def names(self) -> tuple[str, ...]: ...

    def build(self, params: Params) -> Any: ...

    def constrain(self, u: Params) -> Params: ...

    def unconstrain(self, params: Params) -> Params: ...

    def log_posterior(self, params: Params, obs: Observations) -> Any: ...

    def log_density_unconstrained(self, u: Params, obs: Observations) -> Any: ...

    def init_params(self, dtype=None) -> Params: ...


#: the campaign family's priors (:meth:`GPModel.for_candidates`)
DEFAULT_PRIORS = "dim_scaled"


class ParametricMean(eqx.Module):
    """A GP mean ``x -> fn(x, params)``: a pytree (``params`` traced, ``fn`` static).

    A closure over ``params`` would not be a JAX type, so a GP holding it could not be
    ``vmap``-ped over hyperparameter samples; this module can.
    """

    fn: Callable[[Any, Params], Any] = eqx.field(static=True)
    params: Params

    def __call__(self, x):
        return self.fn(x, self.params)


class GPModel(eqx.Module):
    """A family of GPs indexed by named hyperparameters with priors.

    Attributes:
        kernel: ``params -> Kernel``.
        priors: ``name -> numpyro Distribution``. ``"noise"`` (noise variance) is looked up here;
            if absent, ``fixed_noise`` is used (noiseless data: keep it small, not zero).
        mean: ``(x, params) -> scalar`` mean function, or ``None``; a prior named ``"mean"``
            with no mean function gives a constant mean.
        jitter: diagonal jitter of the Gram matrix (default by dtype).
        noise_floor: added to the ``"noise"`` parameter: the GP's noise variance never falls
            below it, whatever MAP or NUTS find (BoTorch's defaults use 1e-4 on standardised
            targets).
        start: where :meth:`init_params` starts a fit: each prior's ``"median"`` or its
            ``"mode"`` (for LogNormal priors; others use their median or mean either way).
    """

    kernel: Callable[[Params], K.Kernel] = eqx.field(static=True)
    priors: dict[str, dist.Distribution]
    mean: Callable[[Any, Params], Any] | None = eqx.field(static=True, default=None)
    fixed_noise: Any = 1e-6
    jitter: float | None = eqx.field(static=True, default=None)
    noise_floor: float = eqx.field(static=True, default=0.0)
    start: str = eqx.field(static=True, default="median")

    def __check_init__(self):
        if self.start not in ("median", "mode"):
            raise ValueError(f"unknown start {self.start!r}; use 'median' or 'mode'")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.priors))

    def build(self, params: Params) -> GP:
        """The GP at hyperparameters ``params`` (constrained values)."""
        noise = params["noise"] + self.noise_floor if "noise" in self.priors else self.fixed_noise
        if self.mean is not None:
            mean = ParametricMean(self.mean, params)
        elif "mean" in self.priors:
            mean = params["mean"]
        else:
            mean = 0.0
        return GP(kernel=self.kernel(params), noise=noise, mean=mean, jitter=self.jitter)

    # --- constrained <-> unconstrained -------------------------------------------------------
    def constrain(self, u: Params) -> Params:
        return {k: biject_to(self.priors[k].support)(u[k]) for k in self.names}

    def unconstrain(self, params: Params) -> Params:
        return {k: biject_to(self.priors[k].support).inv(params[k]) for k in self.names}

    def log_prior(self, params: Params):
        return sum(jnp.sum(self.priors[k].log_prob(params[k])) for k in self.names)

    def log_abs_det_jacobian(self, u: Params, params: Params):
        """``log|dθ/du|`` of the constraining maps at ``u`` (``params = constrain(u)``)."""
        return sum(
            jnp.sum(biject_to(self.priors[k].support).log_abs_det_jacobian(u[k], params[k]))
            for k in self.names
        )

    def log_density_unconstrained(self, u: Params, obs: Observations):
        """``log p(y|θ) + log p(θ) + log|dθ/du|`` (the NUTS target on unconstrained space)."""
        params = self.constrain(u)
        ladj = self.log_abs_det_jacobian(u, params)
        return self.build(params).log_marginal_likelihood(obs) + self.log_prior(params) + ladj

    def log_posterior(self, params: Params, obs: Observations):
        """``log p(y|θ) + log p(θ)`` on constrained values (the MAP objective)."""
        return self.build(params).log_marginal_likelihood(obs) + self.log_prior(params)

    def init_params(self, dtype=None) -> Params:
        """A starting point: each prior's median (or mode, see ``start``) where defined, else
        its mean."""
        dtype = dtype or jnp.result_type(float)
        out = {}
        for k in self.names:
            p = self.priors[k]
            if isinstance(p, dist.LogNormal):
                shift = p.scale**2 if self.start == "mode" else 0.0
                v = jnp.exp(p.loc - shift) * jnp.ones(p.batch_shape)
            elif isinstance(p, dist.HalfNormal):
                v = 0.6745 * p.scale * jnp.ones(p.batch_shape)
            else:
                v = p.mean
            out[k] = jnp.asarray(v, dtype)
        return out

    @classmethod
    def default(
        cls,
        X,
        y,
        kernel: str = "rbf",
        *,
        ard: bool = False,
        constant_mean: bool = True,
        noise: bool = True,
        jitter: float | None = None,
    ) -> GPModel:
        """A stationary-kernel family with priors scaled to the data.

        Lengthscale ~ LogNormal(log(0.2 · input range), 1) per dimension (ARD) or shared;
        signal variance ~ LogNormal(log var(y), 1); noise variance ~
        LogNormal(log((0.05 · y range)²), 2); constant mean ~ Normal(mean(y), 2·sd(y)).

        ``X`` and ``y`` may be arrays or an :class:`Observations` buffer's real rows.
        """
        X = np.asarray(X, float)
        X = X[:, None] if X.ndim == 1 else X
        y = np.asarray(y, float)
        if X.shape[0] < 2 or y.shape != (X.shape[0],):
            raise ValueError(
                f"need at least two points with y of shape (n,); got {X.shape}, {y.shape}"
            )
        cls_ = K.by_name(kernel)
        xr = np.maximum(X.max(0) - X.min(0), 1e-6)
        yr = max(float(y.max() - y.min()), 1e-6)
        ys = max(float(y.std()), 1e-3 * yr)
        ls_loc = np.log(0.2 * xr) if ard else np.log(0.2 * float(np.mean(xr)))
        # Data-dependent numbers are arrays (traced by jit) and the kernel builder compares equal
        # across calls, so a model rebuilt from new data of the same capacity reuses the compiled
        # MAP/NUTS programs instead of recompiling.
        a = jnp.asarray
        priors = {
            "lengthscale": dist.LogNormal(a(ls_loc), 1.0),
            "variance": dist.LogNormal(a(np.log(ys**2)), 1.0),
        }
        if noise:
            priors["noise"] = dist.LogNormal(a(np.log((0.05 * yr) ** 2)), 2.0)
        if constant_mean:
            priors["mean"] = dist.Normal(a(y.mean()), a(2.0 * ys))
        return cls(
            kernel=_StationaryBuilder(cls_),
            priors=priors,
            fixed_noise=a(1e-6 * ys**2),
            jitter=jitter,
        )

    @classmethod
    def for_candidates(
        cls,
        candidates,
        kernel: str = "rbf",
        *,
        noise: bool = True,
        jitter: float | None = None,
        priors: str = DEFAULT_PRIORS,
    ) -> GPModel:
        r"""A stationary family for *standardised* targets over the box spanned by
        ``candidates`` (the campaign default).

        ``priors="dim_scaled"`` (the default; BoTorch's current defaults, after Hvarfner et al.
        2024): one lengthscale per input dimension ~ LogNormal(√2 + ½ log d + log range_k, √3),
        unit signal variance, noise variance ~ LogNormal(-4, 1) above a floor of 1e-4
        (``noise_floor``); fits start at the priors' modes (as BoTorch's do). Chosen by
        ``benchmarks/quality.py``: with these priors MAP no longer interpolates the noise, and
        campaigns find as much as BoTorch's loop on every simulated problem.
        ``priors="wide"`` (the default before issue 8): lengthscale ~ LogNormal(log(0.2·range),
        1) (shared), variance ~ LogNormal(0, 1), noise variance ~ LogNormal(log 1e-2, 2) (or a
        fixed 1e-6 with ``noise=False``), fits start at the medians. Zero mean in both. The
        priors depend only on the candidate set, never on measured data, so they are fixed for
        a whole compiled campaign; equal candidate boxes give equal (equally hashed) families.
        """
        C = np.asarray(candidates, float)
        C = C[:, None] if C.ndim == 1 else C
        ranges = np.maximum(C.max(0) - C.min(0), 1e-6)
        span = float(np.mean(ranges))
        if priors == "wide":
            prior = {
                "lengthscale": dist.LogNormal(float(np.log(0.2 * span)), 1.0),
                "variance": dist.LogNormal(0.0, 1.0),
            }
            if noise:
                prior["noise"] = dist.LogNormal(float(np.log(1e-2)), 2.0)
            floor, start = 0.0, "median"
        elif priors == "dim_scaled":
            d = C.shape[1]
            loc = np.sqrt(2.0) + 0.5 * np.log(d) + np.log(ranges)
            prior = {"lengthscale": dist.LogNormal(jnp.asarray(loc), float(np.sqrt(3.0)))}
            if noise:
                prior["noise"] = dist.LogNormal(-4.0, 1.0)
            floor, start = 1e-4, "mode"
        else:
            raise ValueError(f"unknown priors {priors!r}; use 'wide' or 'dim_scaled'")
        return cls(
            kernel=_StationaryBuilder(K.by_name(kernel)),
            priors=prior,
            jitter=jitter,
            noise_floor=floor,
            start=start,
        )


class _StationaryBuilder(eqx.Module):
    """``params -> cls(lengthscale, variance)``; equal (and equally hashed) for equal ``cls``."""

    cls: type = eqx.field(static=True)

    def __call__(self, p: Params) -> K.Kernel:
        # unit variance as an array, not a Python float: a float leaf would become a traced
        # scalar inside a scan's carry and lose the sample axis the other leaves have
        unit = jnp.ones((), jnp.result_type(p["lengthscale"]))
        return self.cls(lengthscale=p["lengthscale"], variance=p.get("variance", unit))


def stack_params(params: Params) -> Params:
    """Flatten leading (chain, sample) axes of a samples dict into one sample axis."""
    return jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:]), params)
