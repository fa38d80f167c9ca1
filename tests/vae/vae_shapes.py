"""A tiny generator of rotated and shifted synthetic shapes for the VAE model tests.

Each class is a motif of Gaussian blobs with no rotational symmetry, so its angle is defined
on the whole circle; a sample is the motif rotated by ``angle`` (counter-clockwise on screen)
and shifted by ``shift`` pixels ``(row, col)``, rendered analytically (no interpolation).
"""

from __future__ import annotations

import numpy as np

# (x, y, amplitude) of each blob, in grid units (x along columns, y down the rows, [-1, 1])
MOTIFS = (
    ((0.45, 0.0, 1.0), (-0.35, 0.0, 0.5)),  # an uneven dumbbell
    ((0.0, 0.0, 0.9), (0.0, -0.5, 0.9), (0.45, 0.0, 0.9)),  # an L
    ((0.5, 0.3, 1.0), (-0.5, 0.3, 1.0), (0.0, -0.5, 0.6), (0.0, 0.0, 0.4)),  # a face
)


def shapes(n, size=28, *, classes=(0,), max_angle=np.pi, max_shift=0.0, sigma=0.16, seed=0):
    """``(images (n, size, size) in [0, 1], label, angle, shift (n, 2) pixels (row, col))``."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, len(classes), n)
    angle = rng.uniform(-max_angle, max_angle, n)
    shift = rng.uniform(-max_shift, max_shift, (n, 2))
    c = (np.arange(size) - (size - 1) / 2) * 2 / (size - 1)
    yy, xx = np.meshgrid(c, c, indexing="ij")
    px = 2 / (size - 1)
    out = np.zeros((n, size, size), np.float32)
    for k in range(n):
        ca, sa = np.cos(angle[k]), np.sin(angle[k])
        tx, ty = shift[k, 1] * px, shift[k, 0] * px
        for bx, by, amp in MOTIFS[classes[label[k]]]:
            # on-screen counter-clockwise turn of (bx, by) with y pointing down
            x0 = ca * bx + sa * by + tx
            y0 = -sa * bx + ca * by + ty
            out[k] += amp * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))
    return np.clip(out, 0, 1), label, angle, shift
