"""Regular grids of candidate points: image pixel centres and unit-cube lattices.

Example:
    >>> grid_points(4).shape, unit_grid(5, 3).shape
    ((16, 2), (125, 3))
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float


def check_grid_size(size: int) -> None:
    """``ValueError`` unless ``size`` is an integer of at least 4 pixels per side."""
    if not isinstance(size, int) or size < 4:
        raise ValueError(f"size must be an integer >= 4, got {size!r}")


def grid_points(size: int, dtype=None) -> Float[Array, "n 2"]:
    """Pixel-centre coordinates of a ``size × size`` image in ``[0, 1]²``, row-major.

    Row ``r * size + c`` of the result is ``((r + 0.5) / size, (c + 0.5) / size)``, the centre
    of pixel ``image[r, c]``, so ``image.ravel()`` lines up with ``grid_points(size)``.
    """
    check_grid_size(size)
    dtype = dtype or jnp.result_type(float)
    t = (jnp.arange(size, dtype=dtype) + 0.5) / size
    rr, cc = jnp.meshgrid(t, t, indexing="ij")
    return jnp.stack([rr.ravel(), cc.ravel()], axis=1)


def unit_grid(size: int, dim: int = 2, dtype=None) -> Float[Array, "m d"]:
    """``size**dim`` points of a regular grid on the unit cube, corners included (row-major)."""
    if size < 2 or dim < 1:
        raise ValueError(f"need size >= 2 and dim >= 1, got size={size}, dim={dim}")
    dtype = dtype or jnp.result_type(float)
    t = jnp.linspace(0.0, 1.0, size, dtype=dtype)
    mesh = jnp.meshgrid(*([t] * dim), indexing="ij")
    return jnp.stack([g.ravel() for g in mesh], axis=1)
