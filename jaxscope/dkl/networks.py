"""Feature extractors for deep kernel learning: Flax **linen** modules on *one* example.

Why linen (and not NNX), for the whole project (deep kernels here, the VAEs of
:mod:`jaxscope.vae`): a linen module is a stateless description and its weights are a plain
nested dict that ``init`` returns and ``apply`` consumes. That dict is an ordinary pytree, so
``vmap`` over ensemble members, ``grad`` in training, a ``lax.scan`` carry, ``eqx`` modules and
orbax checkpoints take it as it is, and the network enters the numerical core as the pure
function ``apply(weights, x)``. NNX modules are mutable objects: every crossing into
``jit``/``vmap``/``scan`` would need ``nnx.split``/``nnx.merge``, a second representation of the
same weights that the rest of the framework would have to know about.

Each network maps a single input (a feature vector, or a ``(h, w)`` / ``(h, w, c)`` patch) to
a ``(latent,)`` vector; batches are ``vmap``-ped by the kernel. Any user linen module with that
contract works in :class:`~jaxscope.dkl.DeepKernelFamily`.

Example:
    >>> net = MLP(hidden=(64, 32), latent=2)
    >>> w = net.init(jax.random.key(0), jnp.zeros(64))   # plain dict of arrays
    >>> net.apply(w, jnp.ones(64)).shape                  # (2,)
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu}


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; use one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Dense layers ``hidden`` with ``activation``, then a linear map to ``latent`` features.

    The input is flattened first, so a patch works as well as a vector (gpax's ``viDKL``
    default is ``hidden=(64, 32)``, ``latent=2``)."""

    hidden: Sequence[int] = (64, 32)
    latent: int = 2
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x):
        act = _activation(self.activation)
        h = jnp.reshape(x, (-1,))
        for width in self.hidden:
            h = act(nn.Dense(width)(h))
        return nn.Dense(self.latent)(h)


class CNN(nn.Module):
    """A small convolutional extractor for 2-D patches ``(h, w)`` or ``(h, w, c)``.

    ``channels`` 3×3 convolutions, each followed by ``activation`` and 2×2 average pooling, then
    a dense layer of ``dense`` units and a linear map to ``latent`` features."""

    channels: Sequence[int] = (8, 16)
    dense: int = 32
    latent: int = 2
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        act = _activation(self.activation)
        h = x[..., None] if x.ndim == 2 else x
        h = h[None]  # one example: linen convolutions take a batch axis
        for c in self.channels:
            h = act(nn.Conv(c, (3, 3))(h))
            if min(h.shape[1:3]) >= 2:
                h = nn.avg_pool(h, (2, 2), strides=(2, 2))
        h = act(nn.Dense(self.dense)(jnp.reshape(h, (-1,))))
        return nn.Dense(self.latent)(h)
