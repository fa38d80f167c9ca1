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


def shifted_windows(h: jnp.ndarray, size: int = 3) -> jnp.ndarray:
    """``(H, W, c)`` → ``(H, W, size·size·c)``: every pixel's ``size × size`` neighbourhood
    (zero padding, 'SAME'), as ``size²`` shifted copies of the image — the im2col of a
    stride-1 convolution, by slicing only."""
    H, W = h.shape[:2]
    lo = (size - 1) // 2
    hp = jnp.pad(h, ((lo, size - 1 - lo), (lo, size - 1 - lo), (0, 0)))
    return jnp.concatenate(
        [hp[i : i + H, j : j + W] for i in range(size) for j in range(size)], axis=-1
    )


class CNN(nn.Module):
    """A small convolutional extractor for 2-D patches ``(h, w)`` or ``(h, w, c)``.

    ``channels`` 3×3 convolutions ('SAME', stride 1), each followed by ``activation`` and 2×2
    average pooling, then a dense layer of ``dense`` units and a linear map to ``latent``
    features.

    Each convolution is written as its im2col: :func:`shifted_windows` and one dense layer on
    the channel axis (the same function class as ``nn.Conv``; weights ``(9·c_in, c_out)``).
    The reason is XLA:CPU: inside a loop body — the ``lax.scan`` of Adam steps that trains the
    network, under jit — it leaves the weight-gradient convolution in a non-canonical layout
    and runs it about 14× slower than the same step compiled alone (measured: 120 ms against
    8.6 ms a step for 200 16-px patches); slices and matrix products have no such path.
    """

    channels: Sequence[int] = (8, 16)
    dense: int = 32
    latent: int = 2
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        act = _activation(self.activation)
        h = x[..., None] if x.ndim == 2 else x
        for c in self.channels:
            h = act(nn.Dense(c)(shifted_windows(h)))
            if min(h.shape[:2]) >= 2:
                h = nn.avg_pool(h[None], (2, 2), strides=(2, 2))[0]  # linen pools a batch
        h = act(nn.Dense(self.dense)(jnp.reshape(h, (-1,))))
        return nn.Dense(self.latent)(h)
