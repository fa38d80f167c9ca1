r"""Units and sign: the one place where a campaign converts between its three conventions.

* **original** units: what the instrument measures and the observation buffer stores;
* **model** units: what a surrogate fits, :math:`z = (y - c)/s` (a
  :class:`~jaxscope.gp.Standardizer`, kept in the surrogate's state);
* **utility**: original units with the problem's sign applied, :math:`u = \pm y`, so that larger
  is always better. Acquisition rules, penalties, selectors, incumbents and fantasised values
  all live here.

Surrogates return predictives in original units (:func:`model_to_original`); the policy turns
them into utility (:func:`to_utility`) once; a fantasy value chosen in utility goes back to
original units with :func:`from_utility` and into model units with
:func:`original_to_model`.

Example:
    >>> pred_u = to_utility(pred, sign=-1.0)       # minimisation problem
    >>> best_u = incumbent_utility(obs, sign=-1.0)  # -min(y)
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ..gp import Observations, Predictive, Standardizer


def model_to_original(pred: Predictive, scaler: Standardizer) -> Predictive:
    """A predictive in model units (standardised) back in original units."""
    draws = None if pred.draws is None else values_to_original(pred.draws, scaler)
    return Predictive(
        mean=values_to_original(pred.mean, scaler), var=pred.var * scaler.scale**2, draws=draws
    )


def values_to_original(z: ArrayLike, scaler: Standardizer) -> Array:
    """Values (means, function draws) in model units back in original units."""
    return jnp.asarray(z) * scaler.scale + scaler.shift


def original_to_model(y: ArrayLike, scaler: Standardizer) -> Array:
    """Values in original units to model units."""
    return (jnp.asarray(y) - scaler.shift) / scaler.scale


def to_utility(pred: Predictive, sign: float) -> Predictive:
    """A predictive in original units as utility (``sign = -1`` for minimisation problems)."""
    if sign == 1.0:
        return pred
    draws = None if pred.draws is None else sign * pred.draws
    return Predictive(mean=sign * pred.mean, var=pred.var, draws=draws)


def from_utility(u: ArrayLike, sign: float) -> Array:
    """Utility values back in original units."""
    return sign * jnp.asarray(u)


def incumbent_utility(obs: Observations, sign: float) -> Float[Array, ""]:
    """Best observed value as utility, ``max(sign · y)`` over the real rows (``-inf`` if none)."""
    return jnp.max(jnp.where(obs.mask, sign * obs.y, -jnp.inf))


def sign_of(maximize: bool) -> float:
    """``+1`` when larger is better, ``-1`` when smaller is."""
    return 1.0 if maximize else -1.0


def problem_sign(problem) -> float:
    """``+1`` for a maximisation problem, ``-1`` for a minimisation one (``problem.maximize``)."""
    return sign_of(problem.maximize)
