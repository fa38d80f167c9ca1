"""Reference interpolators for the reconstruction benchmarks (SciPy, host-side).

Each takes ``(image, mask, values)``: ``image`` is the ``(H, W)`` ground truth or None (only its
shape is used, and ``image[mask]`` when ``values`` is None), ``mask`` the ``(H, W)`` bool of
measured pixels and ``values`` the measurements at ``mask`` (row-major order, as ``image[mask]``).
They return ``(prediction, seconds)``: the full ``(H, W)`` prediction and its wall-clock time.
Coordinates are pixel indices ``(row, col)``. The first call in a process also pays SciPy's
one-off set-up (up to a few hundred ms here): warm up before timing.

* :func:`linear` / :func:`cubic`: ``scipy.interpolate.griddata`` (Delaunay), NaNs outside the
  measured points' convex hull filled by ``method="nearest"``.
* :func:`thin_plate`: ``scipy.interpolate.RBFInterpolator`` with the thin-plate-spline kernel on
  the 50 nearest measurements, evaluated on every pixel.

``python benchmarks/_interp.py`` reconstructs a smooth 64×64 function from 30 % of its pixels.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.interpolate import RBFInterpolator, griddata


def _inputs(image, mask, values):
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    if image is not None and np.shape(image) != mask.shape:
        raise ValueError(f"image shape {np.shape(image)} does not match mask {mask.shape}")
    if values is None:
        if image is None:
            raise ValueError("give values (at mask) or image")
        values = np.asarray(image)[mask]
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.shape[0] != mask.sum():
        raise ValueError(f"{values.shape[0]} values for {int(mask.sum())} measured pixels")
    if values.shape[0] < 3:
        raise ValueError(f"only {values.shape[0]} measured pixels: at least 3 are needed")
    points = np.argwhere(mask).astype(np.float64)
    H, W = mask.shape
    grid = np.stack(np.meshgrid(np.arange(H), np.arange(W), indexing="ij"), -1).reshape(-1, 2)
    return points, values, grid.astype(np.float64), mask.shape


def _griddata(image, mask, values, method):
    points, values, grid, shape = _inputs(image, mask, values)
    t0 = time.perf_counter()
    pred = griddata(points, values, grid, method=method)
    bad = ~np.isfinite(pred)
    if bad.any():
        pred[bad] = griddata(points, values, grid[bad], method="nearest")
    return pred.reshape(shape), time.perf_counter() - t0


def linear(image, mask, values=None):
    """Piecewise-linear (Delaunay) interpolation, nearest-neighbour outside the hull."""
    return _griddata(image, mask, values, "linear")


def cubic(image, mask, values=None):
    """Clough-Tocher cubic interpolation, nearest-neighbour outside the hull."""
    return _griddata(image, mask, values, "cubic")


def thin_plate(image, mask, values=None, neighbors=50):
    """Thin-plate-spline RBF on the ``neighbors`` nearest measurements of each pixel."""
    points, values, grid, shape = _inputs(image, mask, values)
    t0 = time.perf_counter()
    rbf = RBFInterpolator(points, values, kernel="thin_plate_spline", neighbors=neighbors)
    pred = rbf(grid)
    return pred.reshape(shape), time.perf_counter() - t0


def rmse_unmeasured(pred, truth, mask):
    """Root-mean-square error over the unmeasured pixels (``~mask``)."""
    pred, truth, mask = np.asarray(pred), np.asarray(truth), np.asarray(mask, dtype=bool)
    if pred.shape != truth.shape or truth.shape != mask.shape:
        raise ValueError(
            f"shapes differ: pred {pred.shape}, truth {truth.shape}, mask {mask.shape}"
        )
    if mask.all():
        raise ValueError("every pixel is measured: no unmeasured pixels to score")
    return float(np.sqrt(np.mean((pred[~mask] - truth[~mask]) ** 2)))


if __name__ == "__main__":
    H = W = 64
    r, c = np.meshgrid(np.linspace(0, 1, H), np.linspace(0, 1, W), indexing="ij")
    truth = np.sin(2 * np.pi * r) * np.cos(3 * np.pi * c) + 0.5 * r * c
    mask = np.random.default_rng(0).random((H, W)) < 0.3
    print(f"smooth {H}x{W}, {mask.mean():.0%} measured; signal std {truth.std():.3f}")
    print(
        f"{'mean':>10s}  rmse {rmse_unmeasured(np.full_like(truth, truth[mask].mean()), truth, mask):.4f}"
    )
    for f in (linear, cubic, thin_plate):
        pred, sec = f(truth, mask)
        assert pred.shape == (H, W) and np.isfinite(pred).all()
        np.testing.assert_allclose(pred[mask], truth[mask], atol=1e-6)  # interpolates the data
        print(
            f"{f.__name__:>10s}  rmse {rmse_unmeasured(pred, truth, mask):.4f}  {sec * 1e3:.1f} ms"
        )
