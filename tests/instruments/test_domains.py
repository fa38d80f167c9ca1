"""Domain writing: the laws, the radius estimator on rendered images, noise, hidden draw."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_allclose, count_compilations

from jaxscope.instruments import PROBLEMS, DomainWriting, make_simulator
from jaxscope.instruments.domains import (
    LAW_PARAMS,
    LAWS,
    PRIOR_RANGES,
    domain_radius,
    render_domain,
)

NUC = {"r_c": 20.0, "r_0": 30.0, "V_c": 3.5, "kappa": 0.08}
POW = {"r_max": 200.0, "alpha": 1.2, "gamma": 0.1}
# one program each for every radius and key batch (radius traced)
clean_images = jax.jit(
    jax.vmap(lambda k, r: render_domain(k, r, wobble=0.0, image_noise=0.0), in_axes=(0, None))
)
# every simulator test measures 400 points through this one program (per law)
measure_all = eqx.filter_jit(lambda s, k, X: s.measure_batch(k, X))


def reference_radius(law: str, V: np.ndarray, logtau: np.ndarray, p: dict) -> np.ndarray:
    """The laws in NumPy: nucleation counts time from 1 µs, the power law is k V^α τ^γ."""
    if law == "nucleation":
        r = np.zeros_like(V)
        on = V > p["V_c"]
        grown = p["r_c"] + p["r_0"] * np.cbrt((V[on] / p["V_c"]) ** 2 - 1)
        r[on] = grown * (1 + p["kappa"] * np.log10(10 ** logtau[on] / 1e-6))
        return r
    k = p["r_max"] / (10.0 ** p["alpha"] * 0.1 ** p["gamma"])
    return k * V ** p["alpha"] * (10.0**logtau) ** p["gamma"]


@pytest.mark.parametrize("law", LAWS)
def test_truth_matches_reference(law, dtype):
    sim = DomainWriting(law, **NUC, **POW, dtype=dtype)
    C = np.asarray(sim.candidates, np.float64)
    assert sim.candidates.shape == (400, 2) and sim.candidates.dtype == dtype
    # V-major 20 × 20 grid over [1, 10] V × [-6, -1]
    np.testing.assert_allclose(C[::20, 0], np.linspace(1, 10, 20), rtol=1e-6)
    np.testing.assert_allclose(C[:20, 1], np.linspace(-6, -1, 20), rtol=1e-6)
    t = sim.truth(sim.candidates)
    assert t.dtype == dtype and t.shape == (400,)
    p = NUC if law == "nucleation" else POW
    assert_allclose(t, reference_radius(law, C[:, 0], C[:, 1], p), scale=20)
    assert sim.law == law and LAWS[sim.law_index] == law and set(sim.params) == set(p)
    if law == "nucleation":  # no domain at or below the threshold bias
        assert np.all(np.asarray(t)[C[:, 0] <= NUC["V_c"]] == 0.0)
        assert np.all(np.asarray(t)[C[:, 0] > NUC["V_c"]] > NUC["r_c"])
    np.testing.assert_allclose(sim.optimum, np.max(np.asarray(t)), rtol=1e-6)


def test_gradients_are_finite_below_the_threshold():
    sim = DomainWriting("nucleation", **NUC)
    g = jax.vmap(jax.grad(sim.value))(sim.candidates)
    assert np.all(np.isfinite(g))
    below = np.asarray(sim.candidates[:, 0]) < NUC["V_c"]
    np.testing.assert_array_equal(g[below], 0.0)


@pytest.mark.parametrize("r", [2.5, 5.0, 8.3, 13.0, 20.0, 27.5])
def test_estimator_recovers_the_rendered_radius(r):
    """Noise-free discs (any sub-pixel centre): sqrt(area / π) within 1 px, in fact ~0.3 px."""
    keys = jax.random.split(jax.random.key(0), 16)
    imgs = clean_images(keys, r)
    assert imgs.shape == (16, 64, 64)
    est = np.sqrt(np.sum(np.asarray(imgs) > 0, axis=(1, 2)) / np.pi)
    np.testing.assert_allclose(jax.jit(jax.vmap(domain_radius))(imgs), est, rtol=1e-6)
    assert np.all(np.abs(est - r) < 1.0), est
    assert np.all(np.abs(est - r) < 0.35), est
    # the thresholded area is the number of pixel centres inside the disc, counted in NumPy
    i = np.arange(64)
    rho = np.hypot(i[:, None] - 31.5, i[None, :] - 31.5)
    img = np.asarray(imgs[0])
    # the centre moved by under half a pixel per axis: at most the band it sweeps changes
    assert abs(np.sum(img > 0) - np.sum(rho < r)) <= 2 * np.pi * r * 0.71 + 4
    # images are ±1 far from the wall
    assert float(img[32, 32]) > 0.99 and float(img[0, 0]) < -0.99


def test_no_domain_reads_zero_through_image_noise():
    """Below the threshold bias the image is noise on a -1 background: nothing crosses 0."""
    sim = DomainWriting("nucleation", **NUC)
    X = jnp.broadcast_to(jnp.array([2.0, -2.0]), (400, 2))
    est = np.asarray(measure_all(sim, jax.random.key(1), X))
    assert float(sim.truth(X[:1])[0]) == 0.0
    assert est.mean() < 0.1 * 10.0  # under a tenth of a pixel on average


def test_measurement_noise_is_nearly_unbiased():
    sim = DomainWriting("power_law", **POW)
    X = sim.candidates[jnp.array([399, 259, 290, 339])]
    truth = np.asarray(sim.truth(X))
    assert np.all(truth > 60)
    # 100 repeats of each point, every row its own key
    y = np.asarray(measure_all(sim, jax.random.key(2), jnp.repeat(X, 100, axis=0)))
    y = y.reshape(4, 100).T
    mean, sd = y.mean(0), y.std(0)
    # wall wobble of 4 % plus sub-pixel quantisation; no bias beyond a few tenths of a pixel
    np.testing.assert_allclose(sd / truth, 0.04, atol=0.012)
    assert np.all(np.abs(mean - truth) < 0.3 * 10 + 3 * sd / np.sqrt(100)), (mean, truth)


def test_measure_is_deterministic_jittable_and_compiles_once():
    sim = DomainWriting.draw(jax.random.key(4), law="power_law")
    key, X = jax.random.key(0), sim.candidates
    y = measure_all(sim, key, X)
    assert y.shape == (400,) and y.dtype == sim.candidates.dtype
    np.testing.assert_array_equal(y, measure_all(sim, key, X))
    y1 = measure_all(sim, jax.random.key(1), X)
    assert np.mean(np.asarray(y1) != np.asarray(y)) > 0.9
    # row i is measure(fold_in(key, i), x_i): the radius of that key's phase image, in nm
    i = 377
    img = sim.image(jax.random.fold_in(key, i), X[i])
    assert img.shape == (64, 64)
    np.testing.assert_allclose(y[i], domain_radius(img) * 10.0, rtol=1e-6)
    np.testing.assert_allclose(y[i], sim.measure(jax.random.fold_in(key, i), X[i]), rtol=1e-6)
    other = DomainWriting.draw(jax.random.key(6), law=sim.law)
    with count_compilations() as log:
        measure_all(other, key, X)  # other parameters, same law: the same program
    assert len(log) == 0


def test_hidden_law_draw():
    key = jax.random.key(9)
    a, b = DomainWriting.draw(key), make_simulator("domain_writing", key=key)
    assert a.law == b.law and a.params == b.params
    np.testing.assert_array_equal(
        measure_all(a, key, a.candidates), measure_all(b, key, b.candidates)
    )
    sims = [DomainWriting.draw(jax.random.key(s)) for s in range(20)]
    assert {s.law for s in sims} == set(LAWS)
    for s in sims:
        assert LAWS[s.law_index] == s.law and set(s.params) == set(LAW_PARAMS[s.law])
        for name, v in s.params.items():
            lo, hi = PRIOR_RANGES[name]
            assert lo <= v <= hi
        # the default priors keep every domain inside the 640 nm field of view
        assert float(s.optimum) < 300.0
    with pytest.raises(ValueError, match="unknown law"):
        DomainWriting("creep")
    assert "domain_writing" in PROBLEMS
