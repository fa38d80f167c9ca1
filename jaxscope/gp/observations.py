"""Fixed-capacity, masked observation buffer.

Observations live in arrays of a fixed capacity ``(X, y, mask)`` so that adding a measurement never
changes a shape: a campaign of 500 steps compiles once. Rows beyond ``count`` are padding; every
likelihood and prediction in jaxscope treats them as absent (they contribute exactly nothing).

Example:
    >>> obs = Observations.empty(capacity=100, dim=2)
    >>> obs = obs.add(jnp.array([0.1, 0.2]), 1.5)
    >>> int(obs.count)
    1
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int


def _is_concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def _check_finite(name: str, value) -> None:
    """Raise a ValueError naming the first non-finite entry, e.g. ``X[3, 1] is nan``."""
    arr = np.asarray(value)
    bad = np.argwhere(~np.isfinite(arr))
    if len(bad):
        idx = tuple(int(i) for i in bad[0])
        where = f"{name}[{', '.join(map(str, idx))}]" if idx else name
        raise ValueError(f"{where} is {arr[idx]} (NaN or inf): refusing the observation")


def _check_size(capacity: int, dim: int) -> None:
    if capacity < 1 or dim < 1:
        raise ValueError(f"capacity and dim must be positive, got {capacity}, {dim}")


class Observations(eqx.Module):
    """Padded buffer of ``capacity`` observations; the first ``count`` rows are real."""

    X: Float[Array, "cap d"]
    y: Float[Array, " cap"]
    mask: Bool[Array, " cap"]
    count: Int[Array, ""]

    @property
    def capacity(self) -> int:
        return self.X.shape[0]

    @property
    def dim(self) -> int:
        return self.X.shape[1]

    @classmethod
    def empty(cls, capacity: int, dim: int, dtype=None) -> Observations:
        """An empty buffer; ``dtype`` defaults to JAX's default float type."""
        _check_size(capacity, dim)
        dtype = dtype or jnp.result_type(float)
        # host-side NumPy, then one transfer each (``device_put``; ``jnp.asarray`` would compile)
        return cls(
            X=jax.device_put(np.zeros((capacity, dim), dtype)),
            y=jax.device_put(np.zeros((capacity,), dtype)),
            mask=jax.device_put(np.zeros((capacity,), bool)),
            count=jax.device_put(np.zeros((), np.int32)),
        )

    @classmethod
    def from_arrays(
        cls, X: ArrayLike, y: ArrayLike, capacity: int | None = None, dtype=None
    ) -> Observations:
        """Buffer holding ``(X, y)`` with room for ``capacity`` points (default: exactly n)."""
        X = np.asarray(X)
        X = X[:, None] if X.ndim == 1 else X
        y = np.asarray(y)
        if X.ndim != 2:
            raise ValueError(f"X must have shape (n, d) or (n,), got {X.shape}")
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}")
        capacity = X.shape[0] if capacity is None else capacity
        _check_size(capacity, X.shape[1])
        if X.shape[0] > capacity:
            raise ValueError(f"{X.shape[0]} points do not fit in a buffer of capacity {capacity}")
        # padded on the host and transferred once: no eager JAX ops, so nothing compiles here
        dtype = np.dtype(dtype or jnp.result_type(float))
        n = X.shape[0]
        Xp = np.zeros((capacity, X.shape[1]), dtype)
        yp = np.zeros((capacity,), dtype)
        with np.errstate(over="ignore"):  # an overflowing value becomes inf: refused just below
            Xp[:n], yp[:n] = X, y
        _check_finite("X", Xp[:n])  # after the cast, so values too large for dtype are refused
        _check_finite("y", yp[:n])
        mask = np.arange(capacity) < n
        return cls(
            X=jax.device_put(Xp),
            y=jax.device_put(yp),
            mask=jax.device_put(mask),
            count=jax.device_put(np.int32(n)),
        )

    def add(self, x: ArrayLike, y: ArrayLike) -> Observations:
        """Return a new buffer with one more point ``(x, y)`` in slot ``count``.

        Raises a clear error on a wrong shape, on NaN/inf input, and on overflow (inside ``jit``
        the NaN and overflow checks are runtime errors raised by ``equinox.error_if``).
        """
        x = jnp.asarray(x, self.X.dtype).reshape(-1)
        y = jnp.asarray(y, self.y.dtype)
        if x.shape != (self.dim,):
            raise ValueError(f"x must have shape ({self.dim},), got {x.shape}")
        if y.shape != ():
            raise ValueError(f"y must be a scalar, got shape {y.shape}")
        if _is_concrete(x, y, self.count):
            _check_finite("x", x)
            _check_finite("y", y)
            if int(self.count) >= self.capacity:
                raise ValueError(f"observation buffer is full (capacity {self.capacity})")
        else:
            bad = ~(jnp.all(jnp.isfinite(x)) & jnp.isfinite(y))
            x = eqx.error_if(x, bad, "observation contains NaN or inf: refusing it")
            x = eqx.error_if(x, self.count >= self.capacity, "observation buffer is full")
        i = self.count
        return Observations(
            X=self.X.at[i].set(x),
            y=self.y.at[i].set(y),
            mask=self.mask.at[i].set(True),
            count=self.count + 1,
        )

    def extend(self, X: ArrayLike, y: ArrayLike) -> Observations:
        """Return a new buffer with the rows of ``(X, y)`` appended."""
        X = jnp.asarray(X, self.X.dtype)
        X = X[:, None] if X.ndim == 1 else X
        y = jnp.asarray(y, self.y.dtype)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"X must have shape (n, {self.dim}), got {X.shape}")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
        n = X.shape[0]
        if _is_concrete(X, y, self.count):
            _check_finite("X", X)
            _check_finite("y", y)
            if int(self.count) + n > self.capacity:
                raise ValueError(
                    f"adding {n} points to {int(self.count)} overflows capacity {self.capacity}"
                )
        else:
            bad = ~(jnp.all(jnp.isfinite(X)) & jnp.all(jnp.isfinite(y)))
            X = eqx.error_if(X, bad, "observations contain NaN or inf: refusing them")
            X = eqx.error_if(X, self.count + n > self.capacity, "observation buffer is full")
        start = (self.count, jnp.zeros((), self.count.dtype))
        return Observations(
            X=jax.lax.dynamic_update_slice(self.X, X, start),
            y=jax.lax.dynamic_update_slice(self.y, y, (self.count,)),
            mask=jax.lax.dynamic_update_slice(self.mask, jnp.ones((n,), bool), (self.count,)),
            count=self.count + n,
        )

    def padded(self, extra: int) -> Observations:
        """The same observations in a buffer with ``extra`` more (empty) rows."""
        if extra < 0:
            raise ValueError(f"extra rows must be >= 0, got {extra}")
        if extra == 0:
            return self
        z = lambda a: jnp.zeros((extra,) + a.shape[1:], a.dtype)
        return Observations(
            X=jnp.concatenate([self.X, z(self.X)]),
            y=jnp.concatenate([self.y, z(self.y)]),
            mask=jnp.concatenate([self.mask, z(self.mask)]),
            count=self.count,
        )

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The real (unpadded) points as NumPy arrays (host side)."""
        n = int(self.count)
        return np.asarray(self.X[:n]), np.asarray(self.y[:n])


class Standardizer(eqx.Module):
    """Explicit affine map of targets ``y -> (y - shift) / scale`` and back.

    jaxscope never rescales targets behind the user's back: a model fitted on standardised
    targets returns standardised predictions until :meth:`unscale` is applied.
    """

    shift: Float[Array, ""]
    scale: Float[Array, ""]

    @classmethod
    def fit(cls, obs: Observations) -> Standardizer:
        """Mean and standard deviation of the real targets in ``obs``."""
        n = jnp.maximum(obs.count, 1)
        mu = jnp.sum(jnp.where(obs.mask, obs.y, 0.0)) / n
        var = jnp.sum(jnp.where(obs.mask, (obs.y - mu) ** 2, 0.0)) / n
        return cls(shift=mu, scale=jnp.sqrt(jnp.maximum(var, 1e-12)))

    @classmethod
    def identity(cls, dtype) -> Standardizer:
        """The map that changes nothing (shift 0, scale 1)."""
        return cls(shift=jnp.zeros((), dtype), scale=jnp.ones((), dtype))

    def apply(self, obs: Observations) -> Observations:
        y = jnp.where(obs.mask, (obs.y - self.shift) / self.scale, 0.0)
        return eqx.tree_at(lambda o: o.y, obs, y)

    def unscale(self, mean: Array, var: Array | None = None):
        """Predictive mean (and variance) back in the original units."""
        m = mean * self.scale + self.shift
        return m if var is None else (m, var * self.scale**2)
