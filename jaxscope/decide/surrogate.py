r"""The surrogate protocol: anything a campaign can learn from, in the shape of optax/blackjax.

A :class:`Surrogate` is an immutable module (its settings) plus pure functions of an explicit
state pytree:

.. code-block:: text

    state = surrogate.init(key, obs)              # before the first decision
    state = surrogate.update(state, obs, key)     # after new data: refit or rank-1 condition
    pred  = surrogate.predictive(state, X)        # per-sample mean/var (joint draws on request)
    state = surrogate.condition(state, X, y)      # fantasies: add points, hyperparameters held

``obs`` is the campaign's buffer in the instrument's original units and :class:`Predictive`
moments come back in those units; a surrogate that standardises does so inside (its scaler is
part of its state). Shapes never change between calls, so a campaign of any length compiles once.

A :class:`Belief` is the surrogate's posterior over a fixed candidate set that can absorb
fantasised observations: the one fantasy engine (:mod:`jaxscope.decide.select`) works on it,
whatever the model. The generic :class:`FantasyBelief` re-predicts after :meth:`Surrogate.
condition`; GP surrogates return cached beliefs that update in O(N·M) per fantasy
(:mod:`jaxscope.decide.gp_surrogates`).

Example (a user surrogate; see ``tests/decide/test_surrogate.py`` for a complete one):
    >>> class MySurrogate(Surrogate):
    ...     def init(self, key, obs): ...
    ...     def update(self, state, obs, key): ...
    ...     def predictive(self, state, X, *, key=None, num_draws=0): ...
    ...     def condition(self, state, X, y): ...
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..gp import Observations, Predictive


class Belief(eqx.Module):
    """A surrogate's predictive over fixed candidates that fantasised points can update."""

    @abc.abstractmethod
    def predictive(self, key: PRNGKeyArray | None = None, num_draws: int = 0) -> Predictive:
        """Per-sample moments over the candidates (original units), draws on request."""

    @abc.abstractmethod
    def add(self, x: Float[Array, " d"], y: Float[Array, ""]) -> Belief:
        """The belief after observing ``y`` (original units) at ``x``, hyperparameters held."""

    @abc.abstractmethod
    def draws(self, key: PRNGKeyArray, X: Float[Array, "k d"], num_draws: int) -> Array:
        """``(num_draws, k)`` joint draws of ``f`` at ``X`` (original units, mixture over
        hyperparameter samples)."""

    def cached(self) -> Belief:
        """A belief whose :meth:`add` is cheap (GPs: materialise ``L⁻¹K(X, C)``); default self."""
        return self

    def lookahead(self) -> tuple[Any, Array]:
        """``(PredictiveCache over the candidates in model units, model-unit scale)`` for
        one-step lookahead rules (knowledge gradient)."""
        raise ValueError(
            f"{type(self).__name__} has no predictive cache: one-step lookahead rules "
            "(knowledge gradient) need a GP surrogate"
        )


class Surrogate(eqx.Module):
    """Abstract surrogate (see the module docstring for the protocol)."""

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray, obs: Observations) -> Any:
        """The state before the first decision, given the seed measurements."""

    @abc.abstractmethod
    def update(self, state: Any, obs: Observations, key: PRNGKeyArray) -> Any:
        """The state after the buffer grew to ``obs`` (same capacity; refit or condition)."""

    @abc.abstractmethod
    def predictive(
        self,
        state: Any,
        X: Float[Array, "m d"],
        *,
        key: PRNGKeyArray | None = None,
        num_draws: int = 0,
    ) -> Predictive:
        """Per-sample predictive of ``f`` at ``X`` in original units (``num_draws`` joint draws
        with ``key``)."""

    @abc.abstractmethod
    def condition(self, state: Any, X: Float[Array, "k d"], y: Float[Array, " k"]) -> Any:
        """The state with ``(X, y)`` (original units) added, hyperparameters held (fantasies).

        Fantasies may exceed the buffer's capacity; a surrogate with a fixed-capacity buffer
        makes room itself."""

    def belief(self, state: Any, candidates: Float[Array, "m d"], room: int = 0) -> Belief:
        """The belief over ``candidates``, with room for ``room`` fantasised points."""
        del room
        return FantasyBelief(surrogate=self, state=state, candidates=candidates)

    def length_scale(self, state: Any) -> Array:
        """A length in input space (the exclusion radius of non-maximum suppression)."""
        raise ValueError(
            f"{type(self).__name__} has no input-space lengthscale: give the exclusion "
            "selector an explicit radius"
        )

    def summary(self, state: Any) -> dict:
        """Point values worth recording with a decision (e.g. hyperparameters); default none."""
        del state
        return {}


class FantasyBelief(Belief):
    """Generic belief: predictive from :meth:`Surrogate.predictive`, fantasies by
    :meth:`Surrogate.condition` (each pick re-predicts over the candidates)."""

    surrogate: Surrogate
    state: Any
    candidates: Float[Array, "m d"]

    def predictive(self, key=None, num_draws: int = 0) -> Predictive:
        return self.surrogate.predictive(self.state, self.candidates, key=key, num_draws=num_draws)

    def add(self, x, y) -> FantasyBelief:
        X = jnp.reshape(x, (1, -1)).astype(self.candidates.dtype)
        state = self.surrogate.condition(self.state, X, jnp.reshape(y, (1,)).astype(X.dtype))
        return FantasyBelief(surrogate=self.surrogate, state=state, candidates=self.candidates)

    def draws(self, key, X, num_draws: int):
        pred = self.surrogate.predictive(self.state, X, key=key, num_draws=num_draws)
        if pred.draws is None:
            raise ValueError(f"{type(self.surrogate).__name__}.predictive returned no draws")
        return pred.draws
