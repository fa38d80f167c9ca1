"""Starting values of a sparse scan's hyperparameters, read off its measured pixels.

MAP moves them from there, but a start near the answer saves the Adam steps (and, for the
structured solver, the conjugate-gradient iterations) that walking from a fixed guess costs.
Both take one standardised channel ``z`` ``(H, W)`` and its mask ``m`` (True where measured;
other pixels are not read).
"""

from __future__ import annotations

import numpy as np


def noise_start(z, m) -> float:
    """Starting noise variance (standardised units), in [1e-5, 1]: from measured runs of three
    neighbours along rows and columns, ``mean(second difference²) / 6`` (a locally linear
    signal cancels, so on smooth channels it overestimates the noise far less than neighbour
    differences do: 1.8e-4 vs 1.3e-3 on a PFM height channel whose MAP noise is below 1e-4);
    with fewer than 50 such runs, half the mean squared difference of measured neighbours
    (signal + noise); 0.05 with fewer than 20 of those. MAP moves it from there, but a start
    near the answer saves the many steps Adam needs to walk the noise by decades."""

    def runs(k):
        d = []
        for a, b in ((z, m), (z.T, m.T)):
            win = np.lib.stride_tricks.sliding_window_view
            za, ma = win(a, k, axis=1), win(b, k, axis=1).all(-1)
            coef = np.array([1.0, -1.0]) if k == 2 else np.array([1.0, -2.0, 1.0])
            d.append((za @ coef)[ma])
        return np.concatenate(d)

    d2 = runs(3)
    if len(d2) >= 50:
        guess = np.mean(d2**2) / 6.0
    else:
        d1 = runs(2)
        if len(d1) < 20:
            return 0.05
        guess = 0.5 * np.mean(d1**2)
    return float(np.clip(guess, 1e-5, 1.0))


def lengthscale_start(z, m, lo: float, hi: float) -> np.ndarray:
    """Starting lengthscales ``(rows, cols)`` in pixels: along each axis, the first lag at which
    the mean product of measured pairs falls to half its lag-1 value (lag 1, not 0, so noise
    does not count; a Matérn-3/2 correlation is 0.48 at one lengthscale, an RBF's 0.61),
    clipped to ``[lo, min(hi, side / 4)]``; ``lo`` where fewer than 30 pairs remain or the
    lag-1 product is not positive. A start near the answer saves Adam steps and CG iterations:
    on a 256² PFM height channel (MAP about 30 × 15 px) the fixed start of twice the
    measurement spacing (6 px) spent the first Adam steps at the iteration cap."""
    if np.ndim(z) != 2 or np.shape(m) != np.shape(z):
        raise ValueError(f"z and m must be one (H, W) image each, got {np.shape(z)}, {np.shape(m)}")
    if not 0 < lo <= hi:
        raise ValueError(f"need 0 < lo <= hi, got lo={lo!r}, hi={hi!r}")
    zz, mm = np.where(m, z, 0.0), np.asarray(m, np.float64)
    out = []
    for axis in (0, 1):
        a, b = np.swapaxes(zz, 0, axis), np.swapaxes(mm, 0, axis)
        top = max(lo, min(hi, z.shape[axis] / 4))
        guess, c1 = top, None
        for lag in range(1, int(top) + 1):
            w = b[:-lag] * b[lag:]
            if w.sum() < 30:
                guess = lo
                break
            c = float(np.sum(a[:-lag] * a[lag:] * w) / w.sum())
            if c1 is None:
                c1 = c
                if c <= 0:
                    guess = lo
                    break
            elif c <= 0.5 * c1:
                guess = lag
                break
        out.append(float(np.clip(guess, lo, top)))
    return np.asarray(out)
