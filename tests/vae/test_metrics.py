"""jaxscope.vae.metrics against independent answers: brute force over permutations, the pairwise
form of the circular correlation, a classifier whose held-out accuracy is known exactly, and
SciPy's k-means on separated blobs. NumPy only: the file runs in about a second."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jaxscope.vae.metrics import (
    angle_recovery,
    best_permutation_accuracy,
    kmeans,
    kmeans_accuracy,
    logistic_accuracy,
)


def test_best_permutation_accuracy_hand_examples():
    assert best_permutation_accuracy([0, 0, 1, 1], [1, 1, 1, 0]) == 0.75
    assert best_permutation_accuracy([0, 0, 1, 1, 2], [2, 2, 0, 0, 1]) == 1.0
    # more clusters than classes: the extra clusters count as wrong
    assert best_permutation_accuracy([0, 0, 1, 1], [0, 1, 2, 3]) == 0.5
    # fewer clusters than classes: at most one class per cluster
    assert best_permutation_accuracy([0, 1, 2, 3], [0, 0, 0, 0]) == 0.25


def test_best_permutation_accuracy_equals_brute_force():
    rng = np.random.default_rng(0)
    for k in (3, 4, 5):
        t = rng.integers(0, k, 60)
        p = np.where(rng.random(60) < 0.6, (t + 2) % k, rng.integers(0, k, 60))
        brute = max(np.mean(np.asarray(perm)[p] == t) for perm in itertools.permutations(range(k)))
        assert best_permutation_accuracy(t, p) == pytest.approx(brute, abs=1e-12)


def _pairwise_rho(a, b):
    """Fisher–Lee in its pairwise form: Σ_{i<j} sin(aᵢ−aⱼ)sin(bᵢ−bⱼ)/√(Σ sin² Σ sin²)."""
    i, j = np.triu_indices(len(a), 1)
    sa, sb = np.sin(a[i] - a[j]), np.sin(b[i] - b[j])
    return np.sum(sa * sb) / np.sqrt(np.sum(sa**2) * np.sum(sb**2))


def test_angle_recovery_reflection_symmetry_and_pairwise_form():
    rng = np.random.default_rng(1)
    theta = rng.uniform(0, 2 * np.pi, 200)
    assert angle_recovery(1.3 - theta, theta) == pytest.approx(1.0, abs=1e-9)
    # a learned angle off by a multiple of 2π/4: recovered with symmetry 4 only
    phi = theta + (np.pi / 2) * rng.integers(0, 4, 200)
    assert angle_recovery(phi, theta, symmetry=4) == pytest.approx(1.0, abs=1e-9)
    assert angle_recovery(phi, theta, symmetry=1) < 0.5
    noisy = -theta + 0.25 * rng.standard_normal(200)
    expect = abs(_pairwise_rho(3 * noisy, 3 * theta))
    assert 0.2 < expect < 0.95
    assert angle_recovery(noisy, theta, symmetry=3) == pytest.approx(expect, abs=1e-9)
    # unrelated angles: near 0
    assert angle_recovery(rng.uniform(0, 2 * np.pi, 200), theta) < 0.2


def _blobs(rng, n_per=50, k=4, spread=0.3):
    centres = np.array([[0, 0], [6, 0], [0, 6], [6, 6], [3, 12]])[:k] * np.array([1.0, 20.0])
    y = np.repeat(np.arange(k), n_per)
    z = centres[y] + spread * rng.standard_normal((k * n_per, 2)) * np.array([1.0, 20.0])
    perm = rng.permutation(len(y))
    return z[perm], y[perm]


def test_kmeans_recovers_separated_blobs_like_scipy():
    from scipy.cluster.vq import kmeans2

    rng = np.random.default_rng(2)
    z, y = _blobs(rng)
    # differently scaled axes: standardising first is what makes the blobs separable
    assert kmeans_accuracy(z, (y + 1) % 4) == 1.0
    zs = (z - z.mean(0)) / z.std(0)
    c, mu = kmeans(zs, 4, seed=3)
    _, c_scipy = kmeans2(zs, 4, minit="++", seed=3)
    assert best_permutation_accuracy(c_scipy, c) == 1.0
    inertia = ((zs - mu[c]) ** 2).sum()
    assert inertia == pytest.approx(
        sum(((zs[c == j] - zs[c == j].mean(0)) ** 2).sum() for j in range(4))
    )


def test_logistic_accuracy_known_answer_with_flipped_labels():
    rng = np.random.default_rng(4)
    n = 400
    side = rng.integers(0, 2, n)
    x = np.where(side == 1, 1.0, -1.0) * (1.0 + rng.random(n))  # a gap (-1, 1) between classes
    flip = rng.random(n) < 0.1
    y = np.where(flip, 1 - side, side)
    # any boundary in the gap scores exactly the unflipped share of the held-out half
    te = np.random.default_rng(0).permutation(n)[n // 2 :]
    acc = logistic_accuracy(x, y, train_fraction=0.5, seed=0)
    assert acc == pytest.approx(np.mean(~flip[te]), abs=1e-12)
    assert acc < 1.0
    # random labels: near chance
    assert logistic_accuracy(rng.standard_normal((n, 2)), rng.integers(0, 2, n)) < 0.65


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: best_permutation_accuracy([0, 1], [0, 1, 1]), "differ in length"),
        (lambda: best_permutation_accuracy([0, -1], [0, 1]), ">= 0"),
        (lambda: best_permutation_accuracy([0.5, 1], [0, 1]), "integer labels"),
        (lambda: best_permutation_accuracy(np.zeros((2, 2), int), [0, 1]), "1-D"),
        (lambda: angle_recovery([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], symmetry=0), "symmetry"),
        (lambda: kmeans_accuracy(np.full((4, 2), np.nan), [0, 1, 0, 1]), "NaN"),
        (lambda: kmeans(np.zeros((3, 2)), 5), "k must be"),
        (
            lambda: logistic_accuracy(np.zeros((4, 2)), [0, 1, 0, 1], train_fraction=1.0),
            "train_fraction",
        ),
        (lambda: logistic_accuracy(np.zeros((4, 2)), [0, 1, 0]), "differ in length"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
