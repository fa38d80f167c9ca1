r"""Atom finding: column coordinates from the U-Net's probability maps, a classical peak
finder as the baseline, and precision / recall of found positions against the truth.

* :func:`find_atoms`: the ensemble's mean softmax (:func:`jaxscope.vae.unet.segment`); the
  column probability :math:`p_\mathrm{col} = p_\mathrm{atom} + p_\mathrm{dopant} +
  p_\mathrm{dark}` thresholded, connected components (4-connectivity,
  ``scipy.ndimage.label`` on the host), each blob's centre of mass weighted by
  :math:`p_\mathrm{col}`, its class the argmax of its summed class probabilities and its
  uncertainty the blob's mean of the column classes' summed ensemble variances;
  vacancy sites the same way from :math:`p_\mathrm{vacancy}`.
* :func:`peak_finder`: Gaussian smoothing, local maxima in a ``(2·min_distance + 1)²``
  window above ``lo + threshold·(hi - lo)`` (``lo``, ``hi``: the 1st and 99.9th percentiles
  of the smoothed image), refined to sub-pixel by a parabola through the log-intensities of
  each maximum and its neighbours (exact for a sampled Gaussian). :func:`tune_peak_finder`
  picks its ``sigma`` and ``threshold`` by F1 on training images, so the baseline is fair.
* :func:`match_points`: a one-to-one matching of found to true positions within ``radius``
  that maximises the number of matches (then minimises their total distance): the Hungarian
  algorithm (``scipy.optimize.linear_sum_assignment``) on the distances, pairs farther than
  ``radius`` costing more than any set of allowed ones; or greedy, nearest pairs first.
  Precision = matches / found, recall = matches / true.

Example:
    >>> found = find_atoms(UNet(), fit.params, image)
    >>> m = match_points(found.positions, present_atoms(data, 0), radius=1.0)
    >>> m.precision, m.recall
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
from scipy import ndimage, optimize, spatial

from .lattice import MASK_CLASSES
from .unet import UNet, segment

COLUMN_CLASSES = tuple(i for i, c in enumerate(MASK_CLASSES) if c not in ("background", "vacancy"))
VACANCY_CLASS = MASK_CLASSES.index("vacancy")


class FoundAtoms(NamedTuple):
    """Atoms found in one image (NumPy, host side).

    Attributes:
        positions: ``(m, 2)`` ``(row, col)`` column centres.
        classes: ``(m,)`` index into :data:`~jaxscope.vae.lattice.MASK_CLASSES`.
        uncertainty: ``(m,)`` the blob's mean of the column classes' summed ensemble
            variances (0 where the members agree).
        vacancies: ``(v, 2)`` vacancy sites.
        probability: ``(H, W, k)`` the ensemble's mean softmax; ``variance`` the same shape.
    """

    positions: np.ndarray
    classes: np.ndarray
    uncertainty: np.ndarray
    vacancies: np.ndarray
    probability: np.ndarray
    variance: np.ndarray


class Matching(NamedTuple):
    """Found ↔ true matching: ``pairs`` ``(k, 2)`` indices ``(found, true)``, ``distances``
    ``(k,)``, ``precision``, ``recall``, ``f1``, and the counts ``found``, ``true``."""

    pairs: np.ndarray
    distances: np.ndarray
    precision: float
    recall: float
    f1: float
    found: int
    true: int


def _points(x, name):
    x = np.asarray(x, np.float64).reshape(-1, 2) if np.size(x) == 0 else np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2); got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} holds NaN or inf")
    return x


def blobs(
    prob: np.ndarray, threshold: float = 0.5, min_size: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of ``prob > threshold`` (4-connectivity) with at least
    ``min_size`` pixels: ``(m, 2)`` probability-weighted centres of mass and the ``(H, W)``
    label image (0 background, blob ``k`` has label ``k + 1``)."""
    prob = np.asarray(prob, np.float64)
    lab, n = ndimage.label(prob > threshold)
    sizes = ndimage.sum_labels(np.ones_like(prob), lab, np.arange(1, n + 1))
    keep = np.flatnonzero(sizes >= min_size) + 1
    relabel = np.zeros(n + 1, np.int64)
    relabel[keep] = np.arange(1, len(keep) + 1)
    lab = relabel[lab]
    com = ndimage.center_of_mass(prob, lab, np.arange(1, len(keep) + 1))
    return np.asarray(com, np.float64).reshape(-1, 2), lab


def find_atoms(
    net: UNet, params: dict, image, *, threshold: float = 0.5, min_size: int = 2
) -> FoundAtoms:
    """Columns and vacancies in ``image`` ``(H, W)`` from the ensemble ``params`` (module
    docstring)."""
    image = np.asarray(image, np.float32)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, c); got {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError("image holds NaN or inf")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1); got {threshold}")
    pred = segment(net, params, image[None])
    mean, var = np.asarray(pred.mean[0]), np.asarray(pred.var[0])
    cols = list(COLUMN_CLASSES)
    p_col = mean[..., cols].sum(-1)
    pos, lab = blobs(p_col, threshold, min_size)
    idx = np.arange(1, len(pos) + 1)
    per_class = np.stack([ndimage.sum_labels(mean[..., c], lab, idx) for c in cols], -1)
    classes = np.asarray(cols)[per_class.argmax(-1)] if len(pos) else np.zeros(0, np.int64)
    unc = ndimage.mean(var[..., cols].sum(-1), lab, idx) if len(pos) else np.zeros(0)
    vac, _ = blobs(mean[..., VACANCY_CLASS], threshold, min_size)
    return FoundAtoms(pos, classes, np.asarray(unc, np.float64), vac, mean, var)


def peak_finder(
    image, *, sigma: float = 1.0, threshold: float = 0.25, min_distance: int = 2
) -> np.ndarray:
    """``(m, 2)`` sub-pixel column positions by smoothing + local maxima + threshold (module
    docstring)."""
    img = np.asarray(image, np.float64)
    if img.ndim != 2:
        raise ValueError(f"image must be (H, W); got {img.shape}")
    if sigma < 0 or not 0 <= threshold <= 1 or min_distance < 1:
        raise ValueError("need sigma >= 0, threshold in [0, 1], min_distance >= 1")
    s = ndimage.gaussian_filter(img, sigma) if sigma > 0 else img
    lo, hi = np.percentile(s, [1.0, 99.9])
    peaks = (s == ndimage.maximum_filter(s, 2 * min_distance + 1)) & (
        s > lo + threshold * (hi - lo)
    )
    i, j = np.nonzero(peaks)
    inner = (i > 0) & (i < img.shape[0] - 1) & (j > 0) & (j < img.shape[1] - 1)
    L = np.log(np.maximum(s - s.min(), 1e-9 * (hi - lo) + 1e-30))
    di, dj = np.zeros(len(i)), np.zeros(len(i))
    a, b, c = L[i[inner] - 1, j[inner]], L[i[inner], j[inner]], L[i[inner] + 1, j[inner]]
    di[inner] = 0.5 * (a - c) / np.minimum(a - 2 * b + c, -1e-12)
    a, c = L[i[inner], j[inner] - 1], L[i[inner], j[inner] + 1]
    dj[inner] = 0.5 * (a - c) / np.minimum(a - 2 * b + c, -1e-12)
    return np.stack([i + np.clip(di, -0.5, 0.5), j + np.clip(dj, -0.5, 0.5)], 1)


def match_points(found, true, radius: float = 1.0, method: str = "hungarian") -> Matching:
    """One-to-one matching of ``found`` to ``true`` positions within ``radius`` (module
    docstring); ``method`` is ``"hungarian"`` (most matches) or ``"greedy"``."""
    F, T = _points(found, "found"), _points(true, "true")
    if not radius > 0:
        raise ValueError(f"radius must be positive; got {radius}")
    if method not in ("hungarian", "greedy"):
        raise ValueError(f"unknown method {method!r}; use 'hungarian' or 'greedy'")
    pairs = np.zeros((0, 2), np.int64)
    if len(F) and len(T):
        tree, other = spatial.cKDTree(F), spatial.cKDTree(T)
        near = tree.sparse_distance_matrix(other, radius, output_type="ndarray")
        fi, ti, d = near["i"].astype(np.int64), near["j"].astype(np.int64), near["v"]
        if method == "greedy":
            used_f, used_t, out = set(), set(), []
            for k in np.argsort(d, kind="stable"):
                if fi[k] not in used_f and ti[k] not in used_t:
                    used_f.add(fi[k]), used_t.add(ti[k]), out.append((fi[k], ti[k]))
            pairs = np.asarray(out, np.int64).reshape(-1, 2)
        elif len(d):
            uf, fr = np.unique(fi, return_inverse=True)  # only points with a candidate
            ut, tr = np.unique(ti, return_inverse=True)
            big = 1.0 + radius * (len(uf) + len(ut))  # one forbidden pair costs more than all
            cost = np.full((len(uf), len(ut)), big)
            cost[fr, tr] = d
            r, c = optimize.linear_sum_assignment(cost)
            ok = cost[r, c] < big
            pairs = np.stack([uf[r[ok]], ut[c[ok]]], 1)
    dist = np.linalg.norm(F[pairs[:, 0]] - T[pairs[:, 1]], axis=1) if len(pairs) else np.zeros(0)
    k = len(pairs)
    prec = k / len(F) if len(F) else 1.0
    rec = k / len(T) if len(T) else 1.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return Matching(pairs, dist, float(prec), float(rec), float(f1), len(F), len(T))


def precision_recall(
    found_list, true_list, radius: float = 1.0, *, shape=None, border: float = 0.0
) -> dict[str, float]:
    """Pooled over images: ``{"precision", "recall", "f1", "found", "true", "matched"}``.

    With ``shape`` ``(H, W)`` and ``border > 0`` only points at least ``border`` pixels inside
    the image are counted (found ones for precision, true ones for recall), after matching
    all of them: a column cut by the image edge neither counts nor spoils a count (pass true
    sites slightly outside too, e.g. ``present_atoms(data, i, margin=border)``).
    """
    k = nf = nt = kf = kt = 0
    for f, t in zip(found_list, true_list, strict=True):
        m = match_points(f, t, radius)
        F, T = _points(f, "found"), _points(t, "true")
        if border > 0:
            if shape is None:
                raise ValueError("border needs the image shape")
            H, W = shape
            ok = lambda P: (
                (P.min(1) >= border) & (P[:, 0] <= H - 1 - border) & (P[:, 1] <= W - 1 - border)
            )
            inf, intr = ok(F), ok(T)
        else:
            inf, intr = np.ones(len(F), bool), np.ones(len(T), bool)
        nf, nt = nf + int(inf.sum()), nt + int(intr.sum())
        kf += int(inf[m.pairs[:, 0]].sum())
        kt += int(intr[m.pairs[:, 1]].sum())
        k += len(m.pairs)
    p, r = (kf / nf if nf else 1.0), (kt / nt if nt else 1.0)
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"precision": p, "recall": r, "f1": f1, "found": nf, "true": nt, "matched": kt}


def tune_peak_finder(
    images,
    true_list,
    *,
    sigmas=(0.5, 1.0, 1.5),
    thresholds=(0.05, 0.1, 0.15, 0.2, 0.3, 0.4),
    min_distance: int = 2,
    radius: float = 1.0,
) -> dict[str, float]:
    """The ``sigma`` and ``threshold`` of :func:`peak_finder` with the best pooled F1 on
    ``images`` (training data, not the held-out set): ``{"sigma", "threshold", "f1"}``."""
    best = {"f1": -1.0}
    for s, t in itertools.product(sigmas, thresholds):
        found = [peak_finder(im, sigma=s, threshold=t, min_distance=min_distance) for im in images]
        f1 = precision_recall(found, true_list, radius)["f1"]
        if f1 > best["f1"]:
            best = {"sigma": float(s), "threshold": float(t), "f1": f1}
    return best
