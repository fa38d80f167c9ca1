"""The state of a VAE training run and its default optimiser (shared by the trainer and the
checkpoints).

Example:
    >>> res = TrainResult(params, adam(1e-3).init(params), 0, 0, key, {})
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import optax


class TrainResult(NamedTuple):
    """Everything a run needs to continue: weights, optimiser state, optimiser step, epochs
    done, the run's base key, and the per-epoch loss history."""

    params: dict
    opt_state: object
    step: int
    epoch: int
    key: jax.Array
    history: dict


@functools.lru_cache(maxsize=32)
def adam(lr: float) -> optax.GradientTransformation:
    """``optax.adam(lr)``, one object per rate (a static ``jit`` argument: the same rate
    reuses the compiled epoch)."""
    return optax.adam(lr)
