"""Dot-product kernels (non-stationary)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from .base import Kernel


class Linear(Kernel):
    r"""Linear: :math:`\sigma_b^2 + \sigma^2 (x - c)\cdot(x' - c)`."""

    variance: Any = 1.0
    bias: Any = 0.0
    center: Any = 0.0

    def evaluate(self, x1, x2):
        return self.bias + self.variance * jnp.sum((x1 - self.center) * (x2 - self.center))

    def matrix(self, X1, X2):
        return self.bias + self.variance * (X1 - self.center) @ (X2 - self.center).T


class Polynomial(Kernel):
    r"""Polynomial: :math:`(\sigma_b^2 + \sigma^2\, x\cdot x')^{p}` with integer degree ``p``."""

    degree: int = 2
    variance: Any = 1.0
    bias: Any = 1.0

    def evaluate(self, x1, x2):
        return (self.bias + self.variance * jnp.sum(x1 * x2)) ** self.degree

    def matrix(self, X1, X2):
        return (self.bias + self.variance * X1 @ X2.T) ** self.degree
