"""``ProbModel``: named parameters with numpyro priors and a pure mean function ``f(x, params)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.distributions as dist


class ProbModel(eqx.Module):
    """A parametric model of a measurement: ``f(x, params)`` with a prior on each parameter.

    Used as the mean of a structured GP (pass ``mean=model.fn`` and merge ``model.priors`` into a
    :class:`jaxscope.GPModel`) or on its own.
    """

    fn: Callable[[Any, dict], Any] = eqx.field(static=True)
    priors: dict[str, dist.Distribution]

    def __call__(self, X, params):
        """Evaluate the model at each row of ``X``."""
        return jax.vmap(lambda x: self.fn(x, params))(jnp.atleast_2d(X))

    def log_prior(self, params):
        return sum(jnp.sum(self.priors[k].log_prob(params[k])) for k in sorted(self.priors))
