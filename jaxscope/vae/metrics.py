r"""Scores of a learned representation against known labels: angle recovery, unsupervised class
accuracy under the best matching of clusters to classes, and class separation of latents.

All functions take host arrays (NumPy or JAX), return Python floats, and are deterministic
given their ``seed``; they are evaluation helpers (benchmarks, notebooks, the ``jaxscope vae``
command), not part of any compiled training step.

* :func:`angle_recovery` — ``|ρ|`` of :func:`~jaxscope.vae.distributions.circular_correlation`
  between ``n·φ̂`` and ``n·θ`` (a learned angle may run either way, and an object with
  ``n``-fold symmetry has its angle only modulo ``2π/n``).
* :func:`best_permutation_accuracy` — the fraction of samples whose cluster, mapped to a class
  by the one-to-one assignment that maximises the matches (Hungarian algorithm on the
  contingency table), is their class.
* :func:`kmeans_accuracy` — k-means (k-means++ starts, several restarts) on standardised
  latents, scored by :func:`best_permutation_accuracy`.
* :func:`logistic_accuracy` — held-out accuracy of a multinomial logistic regression (L2
  penalty, L-BFGS) trained on one part of the latents.

Example:
    >>> best_permutation_accuracy([0, 0, 1, 1, 2], [2, 2, 0, 0, 1])   # 1.0
    >>> angle_recovery(phi_hat, theta, symmetry=4)                      # in [0, 1]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .distributions import circular_correlation


def _labels(name: str, y: ArrayLike) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of labels; got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{name} must hold integer labels; got dtype {a.dtype}")
        a = a.astype(np.int64)
    if a.min() < 0:
        raise ValueError(f"{name} must be >= 0; got {a.min()}")
    return a


def _features(name: str, z: ArrayLike) -> np.ndarray:
    a = np.asarray(z, np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"{name} must be (n, d) latents; got shape {np.shape(z)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds NaN or inf")
    return a


def _latents_and_labels(z: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(z, labels)`` of the same length."""
    y = _labels("labels", labels)
    x = _features("z", z)
    if len(x) != len(y):
        raise ValueError(f"z and labels differ in length: {len(x)} vs {len(y)}")
    return x, y


def angle_recovery(learned: ArrayLike, true: ArrayLike, symmetry: int = 1) -> float:
    r"""``|ρ(n·φ̂, n·θ)|``: the absolute circular correlation of learned and true angles.

    .. math:: \mathrm{score} = \left|\frac{\det S_{ab}}{\sqrt{\det S_{aa}\det S_{bb}}}\right|,
              \quad a_i = n\hat φ_i,\; b_i = nθ_i

    (Fisher–Lee, :func:`~jaxscope.vae.distributions.circular_correlation`). The absolute
    value: a learned angle may run either way (``φ̂ = c − θ`` is as good as ``c + θ``).

    Args:
        learned: ``(n,)`` learned angles (radians).
        true: ``(n,)`` true angles (radians).
        symmetry: ``n``, the rotational order of the object (4 for a square lattice site).

    Returns:
        A float in ``[0, 1]``; 1 when ``φ̂ = ±θ + c`` modulo ``2π/n``.

    Example:
        >>> angle_recovery(1.0 - theta, theta)    # 1.0
    """
    if not isinstance(symmetry, int | np.integer) or symmetry < 1:
        raise ValueError(f"symmetry must be a positive int; got {symmetry!r}")
    return abs(circular_correlation(learned, true, symmetry=int(symmetry)))


def best_permutation_accuracy(true: ArrayLike, predicted: ArrayLike) -> float:
    r"""Unsupervised class accuracy: clusters matched one-to-one to classes to maximise hits.

    .. math:: \mathrm{acc} = \max_{π} \frac1n \sum_i [\,π(\hat c_i) = c_i\,]

    over injective maps ``π`` from cluster ids to class ids (when there are more clusters
    than classes the extra clusters count as wrong), found by the Hungarian algorithm on the
    contingency table ``N_{kc} = #\{i: \hat c_i = k, c_i = c\}``.

    Args:
        true: ``(n,)`` non-negative integer classes.
        predicted: ``(n,)`` non-negative integer cluster ids.

    Returns:
        The accuracy in ``[0, 1]``.

    Example:
        >>> best_permutation_accuracy([0, 0, 1, 1], [1, 1, 1, 0])   # 0.75
    """
    from scipy.optimize import linear_sum_assignment

    t, p = _labels("true", true), _labels("predicted", predicted)
    if t.shape != p.shape:
        raise ValueError(f"true and predicted differ in length: {t.shape} vs {p.shape}")
    table = np.zeros((p.max() + 1, t.max() + 1), np.int64)
    np.add.at(table, (p, t), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / t.size)


def _standardise(z: np.ndarray) -> np.ndarray:
    sd = z.std(0)
    return (z - z.mean(0)) / np.where(sd > 0, sd, 1.0)


def kmeans(z: ArrayLike, k: int, *, seed: int = 0, restarts: int = 10, iters: int = 100):
    r"""Lloyd's k-means with k-means++ starts; the restart with the least inertia wins.

    Minimises ``Σᵢ ‖zᵢ − μ_{cᵢ}‖²``. Returns ``(assignments (n,), centres (k, d))``.

    Example:
        >>> c, mu = kmeans(z, 4, seed=0)
    """
    x = _features("z", z)
    if not isinstance(k, int | np.integer) or not 1 <= k <= len(x):
        raise ValueError(f"k must be an int in [1, n = {len(x)}]; got {k!r}")
    rng = np.random.default_rng(seed)
    best = (np.inf, None, None)
    for _ in range(max(1, restarts)):
        mu = x[[rng.integers(len(x))]]
        for _ in range(1, k):  # k-means++: next centre with probability ∝ squared distance
            d2 = ((x[:, None] - mu[None]) ** 2).sum(-1).min(1)
            pr = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1.0 / len(x))
            mu = np.vstack([mu, x[rng.choice(len(x), p=pr)]])
        for _ in range(iters):
            c = ((x[:, None] - mu[None]) ** 2).sum(-1).argmin(1)
            new = np.array([x[c == j].mean(0) if np.any(c == j) else mu[j] for j in range(k)])
            if np.allclose(new, mu):
                break
            mu = new
        c = ((x[:, None] - mu[None]) ** 2).sum(-1).argmin(1)
        inertia = ((x - mu[c]) ** 2).sum()
        if inertia < best[0]:
            best = (inertia, c, mu)
    return best[1], best[2]


def kmeans_accuracy(z: ArrayLike, labels: ArrayLike, *, seed: int = 0, restarts: int = 10):
    """:func:`best_permutation_accuracy` of k-means clusters (``k`` = number of classes) of the
    standardised latents ``z``.

    Example:
        >>> kmeans_accuracy(enc.z, P.label)
    """
    x, y = _latents_and_labels(z, labels)
    k = len(np.unique(y))
    c, _ = kmeans(_standardise(x), k, seed=seed, restarts=restarts)
    return best_permutation_accuracy(y, c)


def logistic_accuracy(
    z: ArrayLike, labels: ArrayLike, *, train_fraction: float = 0.5, l2: float = 1e-3, seed: int = 0
) -> float:
    r"""Held-out accuracy of multinomial logistic regression on the latents ``z``.

    A random ``train_fraction`` of the samples fits ``W, b`` minimising
    ``mean_i −log softmax(W zᵢ + b)_{yᵢ} + l2·‖W‖²`` (standardised ``z``, L-BFGS); the rest
    is scored.

    Example:
        >>> logistic_accuracy(enc.z, P.label)
    """
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    x, y = _latents_and_labels(z, labels)
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1); got {train_fraction}")
    perm = np.random.default_rng(seed).permutation(len(y))
    m = int(round(train_fraction * len(y)))
    if m < 1 or m >= len(y):
        raise ValueError(f"{len(y)} samples leave no training or no test set")
    tr, te = perm[:m], perm[m:]
    mu, sd = x[tr].mean(0), x[tr].std(0)
    x = (x - mu) / np.where(sd > 0, sd, 1.0)
    k, d = int(y.max()) + 1, x.shape[1]
    onehot = np.eye(k)[y[tr]]

    def f(w):
        W, b = w[: d * k].reshape(d, k), w[d * k :]
        logp = log_softmax(x[tr] @ W + b, axis=1)
        g = (np.exp(logp) - onehot) / m
        val = -np.sum(onehot * logp) / m + l2 * np.sum(W**2)
        return val, np.concatenate([(x[tr].T @ g + 2 * l2 * W).ravel(), g.sum(0)])

    w = minimize(f, np.zeros(d * k + k), jac=True, method="L-BFGS-B").x
    pred = (x[te] @ w[: d * k].reshape(d, k) + w[d * k :]).argmax(1)
    return float(np.mean(pred == y[te]))
