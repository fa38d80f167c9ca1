r"""The deep-kernel GP family: a base kernel on learned features,
:math:`k(x, x') = k_\mathrm{base}(g_w(p(x)), g_w(p(x')))`.

``p`` looks a candidate's input up (its image patch, :class:`~jaxscope.images.Patches`; or the
identity for vector inputs), ``g_w`` is a Flax linen network (:mod:`jaxscope.dkl.networks`) with
weights ``w``, and :math:`k_\mathrm{base}` a stationary kernel whose lengthscale lives in
*feature* space (Wilson, Hu, Salakhutdinov, Xing, "Deep kernel learning", AISTATS 2016). The
family is a :class:`~jaxscope.gp.ModelFamily`: its parameters are the kernel hyperparameters
(``lengthscale``, ``variance``, ``noise``, with numpyro priors) and, unless the network is held,
``"net"``: the linen weights, a plain pytree without a constraint (an optional isotropic
Gaussian prior of scale ``weight_prior`` is weight decay). With ``weights`` given the network
is *held*: ``"net"`` is no parameter and NUTS samples the kernel hyperparameters alone (a
Bayesian GP head on a trained network).

Example:
    >>> fam = DeepKernelFamily(CNN(), patches=extract(image, 16))
    >>> params = fam.init_params(key=jax.random.key(0))      # weights + hyperparameters
    >>> gp = fam.build(params)                               # a jaxscope.gp.GP on coordinates
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from .. import kernels as K
from ..gp import GP, GPModel, Observations, Params
from ..images import Patches

NET = "net"


def default_priors() -> dict[str, dist.Distribution]:
    """Priors of the GP head on standardised targets: lengthscale and signal variance ~
    LogNormal(0, 1) (features are O(1) at initialisation), noise variance ~ LogNormal(-4, 1)
    above the family's floor of 1e-4 (the campaign GP's noise prior)."""
    return {
        "lengthscale": dist.LogNormal(0.0, 1.0),
        "variance": dist.LogNormal(0.0, 1.0),
        "noise": dist.LogNormal(-4.0, 1.0),
    }


class FeatureMap(eqx.Module):
    """``x -> g_w(p(x))``: a pytree (weights and patches traced, the network static)."""

    net: nn.Module = eqx.field(static=True)
    weights: Any
    patches: Patches | None = None

    def __call__(self, x):
        inp = x if self.patches is None else self.patches.lookup_or_zeros(x)
        return self.net.apply(self.weights, inp)


class DeepKernelFamily(eqx.Module):
    """A GP family on the features of a Flax network (see the module docstring).

    Attributes:
        net: a linen module mapping one input to a ``(latent,)`` vector.
        patches: candidates' windows (inputs are then pixel coordinates), or ``None`` (inputs
            are fed to the network as they are).
        base: the base kernel's name (``"rbf"``, ``"matern52"``, ...: :func:`kernels.by_name`).
        priors: kernel hyperparameter priors (:func:`default_priors`).
        weights: held network weights, or ``None`` (the weights are a parameter, ``"net"``).
        weight_prior: scale of an isotropic Gaussian prior on the weights (weight decay), or
            ``None`` for none.
        noise_floor: added to the noise variance.
        input_shape: the network's input shape when ``patches`` is ``None`` (for
            :meth:`init_weights`); default ``(d,)`` from the first data seen is not known here,
            so give it for vector inputs.
    """

    net: nn.Module = eqx.field(static=True)
    patches: Patches | None = None
    base: str = eqx.field(static=True, default="rbf")
    priors: dict = eqx.field(default_factory=default_priors)
    weights: Any = None
    weight_prior: float | None = eqx.field(static=True, default=None)
    noise_floor: float = eqx.field(static=True, default=1e-4)
    input_shape: tuple[int, ...] | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        K.by_name(self.base)  # unknown names fail here, with the list of known ones
        if self.patches is None and self.input_shape is None:
            raise ValueError("give input_shape (the network's input) when there are no patches")
        if NET in self.priors:
            raise ValueError(f"{NET!r} is the network's weights: not a hyperparameter name")

    # --- the ModelFamily protocol -----------------------------------------------------------
    @property
    def hyper_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.priors))

    @property
    def held(self) -> bool:
        return self.weights is not None

    @property
    def names(self) -> tuple[str, ...]:
        return self.hyper_names if self.held else (*self.hyper_names, NET)

    @property
    def head(self) -> GPModel:
        """The kernel hyperparameters' priors and bijections (the GP family's own code)."""
        return GPModel(kernel=K.by_name(self.base), priors=self.priors)

    def _weights(self, params: Params):
        return self.weights if self.held else params[NET]

    def features(self, params: Params, X):
        """``(n, latent)`` features of the rows of ``X``."""
        return jax.vmap(FeatureMap(self.net, self._weights(params), self.patches))(X)

    def build(self, params: Params) -> GP:
        unit = jnp.ones((), jnp.result_type(params["lengthscale"]))
        base = K.by_name(self.base)(
            lengthscale=params["lengthscale"], variance=params.get("variance", unit)
        )
        g = FeatureMap(self.net, self._weights(params), self.patches)
        noise = params["noise"] + self.noise_floor
        return GP(kernel=K.Transformed(base, g), noise=noise, mean=0.0)

    def constrain(self, u: Params) -> Params:
        out = self.head.constrain(u)
        return out if self.held else {**out, NET: u[NET]}

    def unconstrain(self, params: Params) -> Params:
        out = self.head.unconstrain(params)
        return out if self.held else {**out, NET: params[NET]}

    def log_prior(self, params: Params):
        lp = self.head.log_prior(params)
        if self.weight_prior is not None and not self.held:
            sq = sum(jnp.sum(w**2) for w in jax.tree_util.tree_leaves(params[NET]))
            lp = lp - 0.5 * sq / self.weight_prior**2
        return lp

    def log_posterior(self, params: Params, obs: Observations):
        return self.build(params).log_marginal_likelihood(obs) + self.log_prior(params)

    def log_density_unconstrained(self, u: Params, obs: Observations):
        params = self.constrain(u)
        return self.log_posterior(params, obs) + self.head.log_abs_det_jacobian(u, params)

    # --- starting points --------------------------------------------------------------------
    def init_hyper(self, dtype=None) -> Params:
        """Kernel hyperparameters at their priors' medians (:meth:`GPModel.init_params`)."""
        return self.head.init_params(dtype)

    def init_weights(self, key, dtype=None):
        """Fresh network weights (linen's initialisers, never zeros) from ``key``."""
        dtype = dtype or jnp.result_type(float)
        if self.patches is not None:
            x = jnp.zeros(self.patches.patches.shape[1:], dtype)
        else:
            x = jnp.zeros(self.input_shape, dtype)
        w = self.net.init(key, x)
        return jax.tree_util.tree_map(lambda a: a.astype(dtype), w)

    def init_params(self, dtype=None, *, key=None) -> Params:
        """Hyperparameters at their medians and (unless held) fresh weights from ``key``
        (default ``jax.random.key(0)``)."""
        p = self.init_hyper(dtype)
        if not self.held:
            p[NET] = self.init_weights(jax.random.key(0) if key is None else key, dtype)
        return p

    def hold(self, weights) -> DeepKernelFamily:
        """This family with the network held at ``weights`` (NUTS then samples the GP head)."""
        return eqx.tree_at(lambda f: f.weights, self, weights, is_leaf=lambda x: x is None)
