"""jaxscope.vae densities, grids and models against independent references: Monte Carlo and
closed forms, SciPy quadrature of the projected normal, exact Gumbel-max sums, ``numpy.rot90``
/ ``numpy.roll`` / ``scipy.ndimage.rotate`` of decoded images, the pairwise circular
correlation; and clear errors for bad input. No training here (see test_trainer.py)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.ndimage
import scipy.stats

from jaxscope.vae import (
    CVAE,
    JVAE,
    RVAE,
    SSVAE,
    VAE,
    VED,
    circular_correlation,
    decode,
    encode,
    grids,
)
from jaxscope.vae.distributions import (
    bernoulli_nll,
    categorical_kl,
    gaussian_kl,
    gaussian_nll,
    gumbel_softmax,
    projected_normal_logpdf,
)
from jaxscope.vae.objectives import loss

SMALL = {"encoder_hidden": (16, 16), "decoder_hidden": (16, 16)}

# --- densities and divergences -----------------------------------------------------------------


def test_gaussian_kl_matches_monte_carlo():
    rng = np.random.default_rng(0)
    loc, scale = np.array([0.7, -1.2, 0.1]), np.array([0.5, 1.3, 0.2])
    z = loc + scale * rng.standard_normal((400_000, 3))
    mc = np.mean(
        np.sum(scipy.stats.norm.logpdf(z, loc, scale) - scipy.stats.norm.logpdf(z), axis=1)
    )
    got = float(gaussian_kl(jnp.asarray(loc), jnp.asarray(scale)))
    assert abs(got - mc) < 0.02
    assert float(gaussian_kl(jnp.zeros(3), jnp.ones(3))) == 0.0


@pytest.mark.parametrize(
    "mean,sigma", [((1.5, -0.4), 0.6), ((0.05, 0.02), 1.0), ((-4.0, 3.0), 0.5)]
)
def test_projected_normal_density_matches_radial_quadrature(mean, sigma):
    m = np.asarray(mean)

    def pdf2(v):  # the 2-D Gaussian, written out
        return np.exp(-np.sum((v - m) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)

    top = np.linalg.norm(m) + 12 * sigma
    thetas = np.array([-2.5, -0.3, 0.0, 1.1, 3.0, np.arctan2(m[1], m[0])])
    got = np.exp(np.asarray(projected_normal_logpdf(jnp.asarray(thetas), jnp.asarray(m), sigma)))
    for th, g in zip(thetas, got, strict=True):
        u = np.array([np.cos(th), np.sin(th)])
        ref, _ = scipy.integrate.quad(lambda r, u=u: r * pdf2(r * u), 0, top, limit=200)
        assert g == pytest.approx(ref, rel=1e-4, abs=1e-10)
    # a density on the circle (periodic trapezoid rule: spectrally accurate), and its KL to the
    # uniform is bounded by the KL of the 2-D Gaussian that the objective charges
    t = np.linspace(-np.pi, np.pi, 20_001)[:-1]
    lp = projected_normal_logpdf(jnp.asarray(t), jnp.asarray(m), sigma)
    f = np.exp(np.asarray(lp, np.float64))
    dt = 2 * np.pi / len(t)
    assert np.sum(f) * dt == pytest.approx(1.0, abs=1e-4)
    kl_angle = np.sum(f * np.log(2 * np.pi * f + 1e-300)) * dt
    kl_2d = float(gaussian_kl(jnp.asarray(m), jnp.full(2, sigma)))
    assert 0.0 <= kl_angle <= kl_2d


def test_categorical_kl_matches_scipy_entropy():
    logits = np.array([[0.3, -1.0, 2.0], [0.0, 0.0, 0.0]])
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ref = [scipy.stats.entropy(pi, np.full(3, 1 / 3)) for pi in p]
    np.testing.assert_allclose(categorical_kl(jnp.asarray(logits)), ref, rtol=1e-5, atol=1e-7)


def test_gumbel_softmax_expectations_match_the_exact_sum():
    logits = jnp.array([0.5, -0.7, 1.2, 0.0])
    p = np.asarray(jax.nn.softmax(logits))
    f = np.array([3.0, -1.0, 0.5, 2.0])  # any function of the class
    exact = float(p @ f)
    keys = jax.random.split(jax.random.key(0), 40_000)
    hard = jax.vmap(lambda k: gumbel_softmax(k, logits, 1.0))(keys)
    freq = np.bincount(np.asarray(hard.argmax(1)), minlength=4) / len(keys)
    np.testing.assert_allclose(freq, p, atol=0.01)  # Gumbel-max: exact class samples
    cold = jax.vmap(lambda k: gumbel_softmax(k, logits, 0.05))(keys)
    assert float(jnp.mean(cold @ f)) == pytest.approx(exact, abs=0.05)
    warm = jax.vmap(lambda k: gumbel_softmax(k, logits, 0.67))(keys)
    assert float(jnp.max(jnp.abs(warm.sum(1) - 1))) < 1e-5


def test_likelihoods_match_scipy():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(3, 7))
    logits = rng.normal(size=(3, 7))
    q = 1 / (1 + np.exp(-logits))
    ref = -np.sum(x * np.log(q) + (1 - x) * np.log1p(-q), 1)
    np.testing.assert_allclose(bernoulli_nll(jnp.asarray(x), jnp.asarray(logits)), ref, rtol=1e-5)
    ref = -np.sum(scipy.stats.norm.logpdf(x, logits, 0.3), 1)
    np.testing.assert_allclose(
        gaussian_nll(jnp.asarray(x), jnp.asarray(logits), 0.3), ref, rtol=1e-5
    )


def test_circular_correlation_known_answers_and_pairwise_form():
    rng = np.random.default_rng(2)
    a = rng.uniform(-np.pi, np.pi, 400)
    b = a + 0.4 * rng.standard_normal(400) + 2.0
    da, db = np.sin(a[:, None] - a[None]), np.sin(b[:, None] - b[None])
    pairwise = np.sum(da * db) / np.sqrt(np.sum(da**2) * np.sum(db**2))
    assert circular_correlation(a, b) == pytest.approx(pairwise, rel=1e-9)
    assert circular_correlation(a, a + 1.0) == pytest.approx(1.0)
    assert circular_correlation(a, 0.5 - a) == pytest.approx(-1.0)
    assert abs(circular_correlation(a, rng.uniform(-np.pi, np.pi, 400))) < 0.15
    assert circular_correlation(a, a + np.pi / 3, symmetry=6) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="NaN"):
        circular_correlation(np.array([0.0, np.nan, 1.0]), np.arange(3.0))


# --- coordinate grids ---------------------------------------------------------------------------


def test_transform_inverse_and_rotation_composition():
    g = grids.grid((9, 12))
    t = jnp.array([0.1, -0.2])
    gp = grids.transform(g, 0.7, t, 1.3)
    np.testing.assert_allclose(grids.inverse_transform(gp, 0.7, t, 1.3), g, atol=1e-6)
    zero = jnp.zeros(2)
    back = grids.transform(grids.transform(g, 0.4, zero, 1.0), -0.4, zero, 1.0)
    np.testing.assert_allclose(back, g, atol=1e-6)
    # isotropic: the longer side spans [-1, 1], one pixel is the same step on both axes
    assert float(g[:, 0].max()) == pytest.approx(1.0) and float(g[:, 1].max()) < 1.0
    np.testing.assert_allclose(np.diff(np.unique(g[:, 1])), grids.pixel_size((9, 12)), rtol=1e-5)


@pytest.fixture(scope="module")
def rvae_2d():
    # the plain coordinate decoder: smooth enough for scipy's interpolated rotation below (the
    # Fourier-feature default is checked against rot90 and a NumPy forward in test_fourier.py)
    m = RVAE((15, 15), latent_dim=2, invariances=("r", "t"), fourier=0)
    return m, m.init(jax.random.key(3))


def test_decoded_rotation_is_rot90_and_scipy_rotate(rvae_2d):
    m, p = rvae_2d
    z = np.array([[0.8, -0.5]], np.float32)
    up = decode(m, p, z)[0, ..., 0]
    quarter = decode(m, p, z, angle=np.pi / 2)[0, ..., 0]
    # a quarter turn maps the grid onto itself: exact, counter-clockwise like numpy.rot90
    np.testing.assert_allclose(quarter, np.rot90(up), atol=2e-6)
    # 30 degrees: scipy's interpolated rotation of the upright image, away from the borders
    turned = decode(m, p, z, angle=np.deg2rad(30.0))[0, ..., 0]
    ref = scipy.ndimage.rotate(up, 30.0, reshape=False, order=3, mode="nearest")
    inner = (slice(4, 11), slice(4, 11))
    err = np.abs(turned[inner] - ref[inner]).max()
    assert err < 0.05 * np.ptp(up)
    assert np.abs(turned[inner] - up[inner]).max() > 5 * err  # the check can fail


def test_decoded_shift_is_a_roll_and_align_undoes_a_pose(rvae_2d):
    m, p = rvae_2d
    z = np.array([[0.3, 1.1]], np.float32)
    up = decode(m, p, z)[0, ..., 0]
    moved = decode(m, p, z, shift=(2.0, -1.0))[0, ..., 0]  # 2 rows down, 1 column left
    np.testing.assert_allclose(moved[2:, :-1], up[:-2, 1:], atol=2e-6)
    img = decode(m, p, z, angle=np.pi / 2, shift=(1.0, 0.0))[..., :]
    pose = (jnp.array([np.pi / 2]), grids.pixels_to_grid(jnp.array([[1.0, 0.0]]), (15, 15)))
    back = np.asarray(grids.align(jnp.asarray(img), *pose, jnp.ones(1)))[0, ..., 0]
    np.testing.assert_allclose(back[1:-1, 1:-1], up[1:-1, 1:-1], atol=1e-5)  # edges: outside


def test_circular_moment_turns_with_the_image():
    rng = np.random.default_rng(4)
    img = rng.uniform(size=(1, 12, 12, 1)).astype(np.float32)
    turned = jnp.asarray(np.rot90(img, 1, (1, 2)).copy())
    weights = jnp.asarray(rng.normal(size=(grids.RADIAL_BINS, 2)).astype(np.float32))
    for n, w in ((1, None), (3, None), (4, weights)):
        m0 = np.asarray(grids.circular_moment(jnp.asarray(img), n, w))[0]
        m1 = np.asarray(grids.circular_moment(turned, n, w))[0]
        a0, a1 = np.arctan2(m0[1], m0[0]), np.arctan2(m1[1], m1[0])
        assert np.angle(np.exp(1j * (a1 - a0 - n * np.pi / 2))) == pytest.approx(0.0, abs=1e-5)


def test_fitted_ring_weights_recover_lattice_angles():
    from jaxscope.vae.lattice import perovskite
    from jaxscope.vae.lattice_patches import lattice_patches
    from jaxscope.vae.metrics import angle_recovery

    P = lattice_patches(jax.random.key(0), perovskite(), 300, window=28, dose=300.0)
    x = jnp.asarray(P.patches)[..., None]
    truth = np.asarray(P.angle)

    def rho(w):
        M = np.asarray(grids.circular_moment(x, 4, w))
        return angle_recovery(np.arctan2(M[:, 1], M[:, 0]) / 4, truth, symmetry=4)

    fitted = grids.fit_ring_weights(x, 4)  # unsupervised: no angle label used
    assert rho(jnp.asarray(fitted)) >= 0.95 > rho(None)


def test_spectra_shift_is_a_roll():
    m = RVAE((40,), latent_dim=1, invariances=("t",), likelihood="gaussian")
    p = m.init(jax.random.key(5))
    z = np.array([[0.4]], np.float32)
    s0 = decode(m, p, z)[0, :, 0]
    s3 = decode(m, p, z, shift=3.0)[0, :, 0]
    np.testing.assert_allclose(s3[3:], s0[:-3], atol=2e-6)


# --- every family, every data kind ---------------------------------------------------------------

FAMILIES = [
    ("vae-image-2ch", lambda: VAE((10, 12, 2)), {}),
    ("rvae-rts", lambda: RVAE((12, 12), invariances=("r", "t", "s")), {}),
    ("rvae-spectrum-2ch", lambda: RVAE((20, 2), invariances="t", spectrum=True), {}),
    ("cvae", lambda: CVAE((12, 12), condition_dim=3, invariances=("r",)), {"condition": 1}),
    ("jrvae", lambda: JVAE((12, 12), discrete=(3, 2), invariances=("r", "t")), {}),
    ("ss-rvae", lambda: SSVAE((12, 12), num_classes=3, invariances=("r",)), {"labels": "class"}),
    ("ss-reg", lambda: SSVAE((30,), regression_dim=2), {"labels": "reg"}),
    ("im2spec", lambda: VED((12, 12), (25,)), {"targets": 1}),
    ("spec2im", lambda: VED((25,), (12, 12), likelihood="bernoulli"), {"targets": 1}),
]


@pytest.mark.parametrize("name,make,extra", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_every_family_builds_scores_and_decodes(name, make, extra):
    m = dataclasses.replace(make(), encoder_hidden=(16, 16), decoder_hidden=(16, 16))
    p = m.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    n = 6
    x = rng.uniform(size=(n, *m.shape)).astype(np.float32)
    batch = {"x": jnp.asarray(x)}
    if "condition" in extra:
        batch["condition"] = jnp.asarray(np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)])
    if extra.get("labels") == "class":
        batch["label"] = jnp.array([0, -1, 2, -1, 1, -1])
    if extra.get("labels") == "reg":
        batch["label"] = jnp.asarray(
            np.where(np.arange(n)[:, None] % 2, np.nan, 0.5) * np.ones((n, 2))
        )
    if "targets" in extra:
        batch["target"] = jnp.asarray(rng.uniform(size=(n, *m.output_shape)).astype(np.float32))
    vg = jax.jit(jax.value_and_grad(functools.partial(loss, m), has_aux=True))
    (value, metrics), grads = vg(p, batch, jax.random.key(1), jnp.asarray(0))
    parts = metrics["recon"] + metrics["kl_cont"] + metrics["kl_pose"] + metrics["kl_disc"]
    if m.objective.disc_balance == 0 and m.objective.cont_capacity is None:
        # β = 1 everywhere: the loss is the negative ELBO (+ the supervised term)
        sup = m.objective.supervised_weight * metrics["supervised"]
        labelled = 3 if m.supervised else 0
        assert float(value) == pytest.approx(float(parts + sup * labelled / n), rel=1e-5)
    assert np.isfinite(float(value)) and float(metrics["kl_cont"]) > 0
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    code_w = m.num_discrete + m.regression_dim + m.condition_dim
    assert m.code_dim == m.latent_dim + code_w


def test_pixel_subsampling_is_an_unbiased_reconstruction_estimate():
    m = RVAE((12, 12), invariances=("r", "t"), pixel_fraction=0.25, **SMALL)
    p = m.init(jax.random.key(0))
    x = np.random.default_rng(7).uniform(size=(4, 12, 12, 1)).astype(np.float32)
    batch = {"x": jnp.asarray(x)}

    def both(key):  # the same latent sample, all pixels vs a random quarter of them
        _, sub = loss(m, p, batch, key, 0)
        _, full = loss(m, p, batch, key, 0, subsample=False)
        return sub["recon"], full["recon"]

    sub, full = jax.jit(jax.vmap(both))(jax.random.split(jax.random.key(1), 2000))
    d = np.asarray(sub - full, np.float64)
    assert d.std() > 1e-3 * float(full.mean())  # it does subsample
    assert abs(d.mean()) < 4 * d.std() / np.sqrt(len(d))
    # the subset is decoded by the same function: a gather of the full image
    code = jnp.ones((2, 2))
    idx = jnp.array([5, 0, 143, 77])
    part = m.decode_raw(p, code, pixels=idx)
    whole = m.decode_raw(p, code).reshape(2, 144, 1)
    np.testing.assert_allclose(part, whole[:, idx], rtol=1e-5, atol=1e-6)


def test_encode_reports_posterior_means_in_physical_units(rvae_2d):
    m, p = rvae_2d
    x = np.random.default_rng(6).uniform(size=(5, 15, 15)).astype(np.float32)
    enc = encode(m, p, x, batch_size=2)  # chunks of 2, 2, 1
    post = m.posterior(p, jnp.asarray(x[..., None]))
    np.testing.assert_allclose(enc.z, post["z_loc"], rtol=1e-5, atol=1e-6)
    mu = np.asarray(post["angle_mean"])
    np.testing.assert_allclose(enc.angle, np.arctan2(mu[:, 1], mu[:, 0]), atol=1e-5)
    px = grids.pixel_size((15, 15))
    np.testing.assert_allclose(enc.shift[:, ::-1] * px, 0.1 * post["shift_loc"], atol=1e-6)


# --- bad input ----------------------------------------------------------------------------------


def test_invalid_models_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown invariance 'q'"):
        RVAE((28, 28), invariances=("r", "q"))
    with pytest.raises(ValueError, match="unknown invariance 'r' for 1-D"):
        RVAE((64,), invariances=("r",))
    with pytest.raises(ValueError, match="at least one invariance"):
        RVAE((28, 28), invariances=())
    with pytest.raises(ValueError, match="shape must be"):
        VAE((2, 3, 4, 5))
    with pytest.raises(ValueError, match="latent_dim"):
        VAE((8, 8), latent_dim=0)
    with pytest.raises(ValueError, match="unknown activation"):
        VAE((8, 8), activation="swishy")
    with pytest.raises(ValueError, match="unknown likelihood"):
        VAE((8, 8), likelihood="poisson")
    with pytest.raises(ValueError, match="discrete"):
        JVAE((8, 8), discrete=(1,))
    with pytest.raises(ValueError, match="exactly one"):
        SSVAE((8, 8), num_classes=3, regression_dim=1)
    with pytest.raises(TypeError, match="unknown option"):
        VAE((8, 8), hiden=(3,))
    with pytest.raises(ValueError, match="pixel_fraction"):
        RVAE((8, 8), pixel_fraction=1.5)
    with pytest.raises(ValueError, match="symmetry"):
        RVAE((8, 8), invariances=("t",), symmetry=4)


def test_invalid_data_raise_clear_errors(rvae_2d):
    from jaxscope.vae.data import prepare

    m, _ = rvae_2d
    good = np.full((4, 15, 15), 0.5, np.float32)
    with pytest.raises(ValueError, match="must have shape"):
        prepare(m, np.zeros((4, 14, 15)))
    bad = good.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        prepare(m, bad)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        prepare(m, good * 3)
    with pytest.raises(ValueError, match="no labels"):
        prepare(m, good, labels=np.zeros(4, int))
    ss = SSVAE((15, 15), num_classes=3)
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        prepare(ss, good, labels=np.array([0, 1, 5, -1]))
    with pytest.raises(ValueError, match="needs condition"):
        prepare(CVAE((15, 15), condition_dim=2), good)
    with pytest.raises(ValueError, match="needs targets"):
        prepare(VED((15, 15), (10,)), good)
    with pytest.raises(ValueError, match=r"z must have shape \(n, 2\)"):
        decode(m, rvae_2d[1], np.zeros((3, 4)))
    with pytest.raises(ValueError, match="scale must be positive"):
        decode(m, rvae_2d[1], np.zeros((1, 2)), scale=-1.0)


def test_joint_objective_delays_the_discrete_capacity():
    from jaxscope.vae.families import joint_objective

    obj = joint_objective((4, 3), steps=500, disc_delay=360, disc_steps=120)
    full = np.log(4) + np.log(3)
    got = [float(obj.disc_capacity(t)) for t in (0, 360, 420, 480, 1000)]
    np.testing.assert_allclose(got, [0, 0, full / 2, full, full], rtol=1e-6)
    np.testing.assert_allclose(float(obj.cont_capacity(250)), 0.5, rtol=1e-6)  # unchanged
    plain = joint_objective((4,))
    np.testing.assert_allclose(float(plain.disc_capacity(250)), np.log(4) / 2, rtol=1e-6)
