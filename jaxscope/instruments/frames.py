r"""Coordinate frames of a 2-D scan: normalised ``[-1, 1]``, pixel, metre; two pixel origins.

A scan of ``H × W`` pixels covers a field of view of ``size_m = (height, width)`` metres between
the centres of its outermost pixels, centred at ``center_m`` (metres). Three frames name a point:

* ``"pixel"``: ``(row, col)`` (the order of the twins' candidates and of ``image[row, col]``),
  pixel centres at integers, ``0 … H-1`` and ``0 … W-1``. With ``origin="top-left"`` (images,
  most vendor files) row 0 is the top row; with ``origin="bottom-left"`` (plots with ``y`` up,
  some controllers) row 0 is the bottom row.
* ``"normalized"``: ``(x, y)`` in ``[-1, 1]²``, ``x`` to the right, ``y`` up; ``-1``/``+1`` at
  the outermost pixel centres (what many scan controllers take as their input).
* ``"metre"``: ``(x, y)`` in metres, ``x`` to the right, ``y`` up.

The maps are affine, so a round trip is exact up to rounding:

.. math:: x_n = \frac{2\,c}{W-1} - 1, \qquad
          y_n = \begin{cases} 1 - \frac{2\,r}{H-1} & \text{top-left} \\
                              \frac{2\,r}{H-1} - 1 & \text{bottom-left} \end{cases},
          \qquad (x_m, y_m) = c_m + \tfrac12 (w\,x_n,\ h\,y_n).

For a box of any dimension (the plain simulators), :func:`box_to_normalized` and
:func:`normalized_to_box` map each coordinate's ``[lo, hi]`` affinely onto ``[-1, 1]``.

Example:
    >>> f = ScanFrame(pixels=(5, 9), size_m=(4e-6, 8e-6))
    >>> f.convert([[0.0, 0.0]], "pixel", "normalized")     # top-left pixel
    array([[-1.,  1.]])
    >>> f.convert([[0.0, 0.0]], "normalized", "metre")    # the centre of the field
    array([[0., 0.]])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from jaxtyping import Array, Float, Real

# accepted inputs: NumPy or JAX arrays of the documented shape, or nested lists
Points2 = Real[np.ndarray, "n 2"] | Real[Array, "n 2"] | Sequence
PointsD = Real[np.ndarray, "n d"] | Real[Array, "n d"] | Sequence
BoxLike = Real[np.ndarray, "d 2"] | Real[Array, "d 2"] | Sequence
FRAMES = ("normalized", "pixel", "metre")
ORIGINS = ("top-left", "bottom-left")


@dataclasses.dataclass(frozen=True)
class ScanFrame:
    """The frame of a 2-D scan (see the module docstring).

    Attributes:
        pixels: ``(H, W)``, each >= 2.
        size_m: ``(height, width)`` in metres between the outermost pixel centres (> 0).
        center_m: ``(x, y)`` of the field's centre in metres.
        origin: ``"top-left"`` or ``"bottom-left"`` (where pixel row 0 is).
    """

    pixels: tuple[int, int]
    size_m: tuple[float, float] = (1.0, 1.0)
    center_m: tuple[float, float] = (0.0, 0.0)
    origin: str = "top-left"

    def __post_init__(self):
        H, W = (int(p) for p in self.pixels)
        if len(self.pixels) != 2 or H < 2 or W < 2:
            raise ValueError(f"pixels must be (H, W) with H, W >= 2, got {self.pixels}")
        size = tuple(float(s) for s in self.size_m)
        if len(size) != 2 or not all(np.isfinite(s) and s > 0 for s in size):
            raise ValueError(f"size_m must be two finite lengths > 0, got {self.size_m}")
        center = tuple(float(c) for c in self.center_m)
        if len(center) != 2 or not all(np.isfinite(c) for c in center):
            raise ValueError(f"center_m must be two finite numbers, got {self.center_m}")
        if self.origin not in ORIGINS:
            raise ValueError(f"unknown origin {self.origin!r}; choose one of {ORIGINS}")
        object.__setattr__(self, "pixels", (H, W))
        object.__setattr__(self, "size_m", size)
        object.__setattr__(self, "center_m", center)

    # --- each frame to and from normalised coordinates -------------------------------------------
    def _pixel_to_normalized(self, P: np.ndarray) -> np.ndarray:
        H, W = self.pixels
        x = 2.0 * P[:, 1] / (W - 1) - 1.0
        y = 2.0 * P[:, 0] / (H - 1) - 1.0
        return np.stack([x, -y if self.origin == "top-left" else y], 1)

    def _normalized_to_pixel(self, N: np.ndarray) -> np.ndarray:
        H, W = self.pixels
        y = -N[:, 1] if self.origin == "top-left" else N[:, 1]
        return np.stack([(y + 1.0) * (H - 1) / 2.0, (N[:, 0] + 1.0) * (W - 1) / 2.0], 1)

    def _metre_to_normalized(self, M: np.ndarray) -> np.ndarray:
        (h, w), (cx, cy) = self.size_m, self.center_m
        return np.stack([2.0 * (M[:, 0] - cx) / w, 2.0 * (M[:, 1] - cy) / h], 1)

    def _normalized_to_metre(self, N: np.ndarray) -> np.ndarray:
        (h, w), (cx, cy) = self.size_m, self.center_m
        return np.stack([cx + 0.5 * w * N[:, 0], cy + 0.5 * h * N[:, 1]], 1)

    def convert(self, points: Points2, src: str, dst: str) -> Float[np.ndarray, "n 2"]:
        """Points ``(n, 2)`` from frame ``src`` to frame ``dst`` (float64).

        Raises:
            ValueError: an unknown frame name, a shape other than ``(n, 2)``, NaN/inf.
        """
        for f in (src, dst):
            if f not in FRAMES:
                raise ValueError(f"unknown frame {f!r}; choose one of {FRAMES}")
        P = np.asarray(points, dtype=np.float64)
        if P.ndim != 2 or P.shape[1] != 2:
            raise ValueError(f"points must have shape (n, 2), got {P.shape}")
        if not np.isfinite(P).all():
            raise ValueError("points must be finite (got NaN or inf)")
        to_n = {
            "normalized": lambda a: a,
            "pixel": self._pixel_to_normalized,
            "metre": self._metre_to_normalized,
        }
        from_n = {
            "normalized": lambda a: a,
            "pixel": self._normalized_to_pixel,
            "metre": self._normalized_to_metre,
        }
        return from_n[dst](to_n[src](P))

    def bounds(self, frame: str) -> Float[np.ndarray, "2 2"]:
        """``[[lo, hi], [lo, hi]]`` of the scan field in ``frame``, per coordinate of it."""
        corners = self.convert([[-1.0, -1.0], [1.0, 1.0]], "normalized", frame)
        return np.stack([corners.min(0), corners.max(0)], 1)

    def to_dict(self) -> dict:
        """JSON-able description (the network wire and ``describe()``)."""
        return dataclasses.asdict(self) | {"pixels": list(self.pixels)}

    @classmethod
    def from_dict(cls, d: dict) -> ScanFrame:
        return cls(tuple(d["pixels"]), tuple(d["size_m"]), tuple(d["center_m"]), d["origin"])


def _box(bounds: BoxLike, X: PointsD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    B = np.asarray(bounds, np.float64)
    X = np.asarray(X, np.float64)
    if B.ndim != 2 or B.shape[1] != 2 or not (B[:, 1] > B[:, 0]).all():
        raise ValueError(f"bounds must be (d, 2) with hi > lo, got {B.tolist()}")
    if X.ndim != 2 or X.shape[1] != B.shape[0]:
        raise ValueError(f"points must have shape (n, {B.shape[0]}), got {X.shape}")
    return X, B[:, 0], B[:, 1]


def box_to_normalized(X: PointsD, bounds: BoxLike) -> Float[np.ndarray, "n d"]:
    r"""Each coordinate from ``[lo, hi]`` to ``[-1, 1]``: :math:`x_n = 2(x - lo)/(hi - lo) - 1`.

    Example:
        >>> box_to_normalized([[0.0, 5.0]], [[0.0, 1.0], [0.0, 10.0]])
        array([[-1.,  0.]])
    """
    X, lo, hi = _box(bounds, X)
    return 2.0 * (X - lo) / (hi - lo) - 1.0


def normalized_to_box(N: PointsD, bounds: BoxLike) -> Float[np.ndarray, "n d"]:
    r"""The inverse of :func:`box_to_normalized`: :math:`x = lo + (x_n + 1)(hi - lo)/2`."""
    N, lo, hi = _box(bounds, N)
    return lo + (N + 1.0) * (hi - lo) / 2.0
