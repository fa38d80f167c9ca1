"""Atom finding: the matcher on hand-computed sets (Hungarian beats greedy where it must),
blob centres and the peak finder on known columns, a tiny U-Net ensemble trained in one
compilation that finds atoms far better than chance, ensemble mean/variance against the
members applied one by one, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compilations

from jaxscope.vae import RVAE, encode
from jaxscope.vae.atom_latents import atoms_to_latents
from jaxscope.vae.atoms import (
    blobs,
    find_atoms,
    match_points,
    peak_finder,
    precision_recall,
    tune_peak_finder,
)
from jaxscope.vae.lattice import column_mask, honeycomb, lattice_images, present_atoms, render
from jaxscope.vae.unet import UNet, segment, train_unet

pytestmark = pytest.mark.xdist_group("test_atoms")


def test_matching_by_hand():
    # greedy takes the closest pair (P0-T0, 0.7) and strands both others; the Hungarian
    # matching pairs P0-T1 (0.9) and P1-T0 (0.95): two matches within 1 px
    T = np.array([[0.0, 0.0], [0.0, 1.6]])
    P = np.array([[0.0, 0.7], [0.0, -0.95]])
    g = match_points(P, T, 1.0, "greedy")
    h = match_points(P, T, 1.0)
    assert len(g.pairs) == 1 and (g.precision, g.recall) == (0.5, 0.5)
    assert sorted(map(tuple, h.pairs.tolist())) == [(0, 1), (1, 0)]
    np.testing.assert_allclose(sorted(h.distances), [0.9, 0.95])
    assert (h.precision, h.recall, h.f1) == (1.0, 1.0, 1.0)
    # 3 found, 4 true, 2 within 1 px (one found point 1.2 px away): P = 2/3, R = 1/2
    T = np.array([[10.0, 10.0], [20.0, 20.0], [30.0, 5.0], [5.0, 30.0]])
    P = np.array([[10.5, 10.5], [20.0, 19.1], [30.0, 6.2]])
    m = match_points(P, T)
    assert (m.found, m.true, len(m.pairs)) == (3, 4, 2)
    assert np.isclose(m.precision, 2 / 3) and np.isclose(m.recall, 0.5)
    assert np.isclose(m.f1, 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert match_points(np.zeros((0, 2)), T).recall == 0.0
    # pooled over images, and a border that leaves edge points out of both counts
    pr = precision_recall([P, P], [T, T])
    assert (pr["matched"], pr["found"], pr["true"]) == (4, 6, 8)
    pr = precision_recall([P], [T], shape=(40, 40), border=7.0)  # drops T[2], T[3], P[2]
    assert (pr["true"], pr["recall"], pr["found"], pr["precision"]) == (2, 1.0, 2, 1.0)


def test_blob_centres_and_the_peak_finder_on_known_columns():
    prob = np.zeros((20, 20))
    prob[3:6, 4:7] = 0.9  # a 3×3 blob centred at (4, 5)
    prob[12:14, 12:14] = [[0.6, 0.6], [0.6, 1.0]]  # weighted: (12 + 1.6/2.8, 12 + 1.6/2.8)
    prob[18, 1] = 0.8  # one pixel: below min_size
    c, lab = blobs(prob, 0.5, 2)
    np.testing.assert_allclose(c, [[4.0, 5.0], [12 + 1.6 / 2.8, 12 + 1.6 / 2.8]])
    assert lab.max() == 2 and lab[18, 1] == 0
    # isolated columns of different weights at sub-pixel positions: found within 0.05 px
    rs = np.random.RandomState(0)
    true = np.stack(np.meshgrid(np.arange(6, 60, 9.0), np.arange(6, 60, 9.0)), -1).reshape(-1, 2)
    true = true + rs.uniform(-0.5, 0.5, true.shape)
    w = rs.uniform(0.5, 1.5, len(true))
    img = np.asarray(render(jnp.asarray(true, jnp.float32), jnp.asarray(w, jnp.float32), (64, 64)))
    found = peak_finder(img, sigma=0.0, threshold=0.1)
    m = match_points(found, true, radius=1.0)
    assert m.precision == 1.0 and m.recall == 1.0
    assert m.distances.max() < 0.05


@pytest.fixture(scope="module")
def trained():
    """A tiny ensemble (2 members) trained on 24 noisy 32×32 honeycomb images."""
    kw = dict(shape=32, dose=300.0, p_vacancy=0.03, p_dopant=0.03)
    both = lattice_images(jax.random.key(0), honeycomb(), 28, **kw)  # one compilation
    train = jax.tree.map(lambda a: a[:24], both)
    test = jax.tree.map(lambda a: a[24:], both)
    masks = jax.vmap(column_mask, (0, 0, None))(train.positions, train.site_class, (32, 32))
    net = UNet(channels=(8, 16), convs=1)
    with count_compilations() as log:
        fit = train_unet(jax.random.key(2), net, train.image, masks, members=2, steps=80)
        jax.block_until_ready(fit)
    n_compiles = len(log)
    return net, fit, train, test, n_compiles


def test_unet_ensemble_trains_in_one_compilation_and_finds_atoms(trained):
    net, fit, train, test, n_compiles = trained
    assert n_compiles == 1
    L = np.asarray(fit.losses)
    assert L.shape == (2, 80) and np.all(L[:, -20:].mean(1) < 0.5 * L[:, :5].mean(1))
    found = [find_atoms(net, fit.params, test.image[i]).positions for i in range(4)]
    truth = [present_atoms(test, i, margin=2.0) for i in range(4)]
    pr = precision_recall(found, truth, 1.0, shape=(32, 32), border=1.5)
    # chance: points thrown uniformly land within 1 px of a column with probability
    # (columns × π) / area ≈ 0.2 for this lattice; the trained ensemble is far above it
    chance = sum(len(t) for t in truth) * np.pi / (4 * 32 * 32)
    assert chance < 0.3
    assert pr["precision"] > 0.8 and pr["recall"] > 0.8, pr
    # the tuned peak finder on the same data: a working baseline
    best = tune_peak_finder([np.asarray(x) for x in train.image[:4]],
                            [present_atoms(train, i) for i in range(4)])  # fmt: skip
    assert best["f1"] > 0.6


def test_ensemble_mean_and_variance_are_those_of_the_members(trained):
    net, fit, _, test, _ = trained
    pred = segment(net, fit.params, test.image[:1])  # the shape find_atoms compiled for
    member = jax.jit(lambda q, im: jax.nn.softmax(net.apply(q, im)))
    p = np.stack([
        np.asarray(member(jax.tree.map(lambda a: a[m], fit.params), test.image[0]))[None]
        for m in range(2)
    ])  # fmt: skip
    np.testing.assert_allclose(np.asarray(pred.mean), p.mean(0), atol=1e-5)
    np.testing.assert_allclose(np.asarray(pred.var), p.var(0), atol=1e-6)
    np.testing.assert_allclose(np.asarray(pred.mean).sum(-1), 1.0, atol=1e-5)
    assert float(pred.var.max()) > 1e-4  # independently initialised members disagree somewhere
    found = find_atoms(net, fit.params, test.image[0])
    assert found.uncertainty.shape == (len(found.positions),) and np.all(found.uncertainty >= 0)


def test_errors():
    net = UNet(channels=(4, 8), convs=1)
    with pytest.raises(ValueError, match="divisible by 2"):
        net.init(jax.random.key(0), jnp.zeros((15, 16)))
    x, y = jnp.zeros((4, 16, 16)), jnp.zeros((4, 16, 16), jnp.int32)
    with pytest.raises(ValueError, match="mask values"):
        train_unet(jax.random.key(0), net, x, y + 7)
    with pytest.raises(ValueError, match="batch_size"):
        train_unet(jax.random.key(0), net, x, y, batch_size=5)
    with pytest.raises(ValueError, match="must agree"):
        train_unet(jax.random.key(0), net, x, y[:3])
    with pytest.raises(ValueError, match="NaN"):
        train_unet(jax.random.key(0), net, x.at[0, 0, 0].set(jnp.nan), y)
    with pytest.raises(ValueError, match="unknown method"):
        match_points(np.zeros((1, 2)), np.zeros((1, 2)), method="nearest")
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        match_points(np.zeros((3,)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="radius"):
        match_points(np.zeros((1, 2)), np.zeros((1, 2)), radius=0.0)
    with pytest.raises(ValueError, match="threshold"):
        peak_finder(np.zeros((8, 8)), threshold=2.0)
    with pytest.raises(ValueError, match="NaN"):
        find_atoms(net, {}, np.full((16, 16), np.nan))


def test_image_to_atoms_to_patches_to_latents_in_one_call(trained):
    net, fit, _, test, _ = trained
    model = RVAE((16, 16), latent_dim=2, invariances=("r", "t"))
    vae_params = model.init(jax.random.key(0))
    image = np.asarray(test.image[0])
    out = atoms_to_latents(image, net, fit.params, model, vae_params, window=16)
    found = find_atoms(net, fit.params, image)
    m = len(out.positions)
    assert m > 5 and m + out.dropped == len(found.positions)
    np.testing.assert_array_equal(out.pixels, np.round(out.positions))
    # each patch is the min-max normalised image's 16×16 slice starting at pixel - 8
    norm = (image - image.min()) / (image.max() - image.min())
    for k in [0, m // 2, m - 1]:
        i, j = out.pixels[k]
        np.testing.assert_allclose(out.patches[k], norm[i - 8 : i + 8, j - 8 : j + 8], atol=1e-6)
    enc = encode(model, vae_params, out.patches)
    np.testing.assert_allclose(out.encoding.z, enc.z, atol=1e-6)
    np.testing.assert_allclose(out.encoding.angle, enc.angle, atol=1e-6)
    # maps: every pixel carries its nearest atom's values within the paint radius
    ii, jj = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    d = np.linalg.norm(np.stack([ii, jj], -1)[:, :, None] - out.positions, axis=-1)
    nearest = np.where(d.min(-1) <= 0.5 * np.median(np.sort(
        np.linalg.norm(out.positions[:, None] - out.positions[None], axis=-1), 1)[:, 1]),
        d.argmin(-1), -1)  # fmt: skip
    np.testing.assert_array_equal(out.maps["index"], nearest)
    np.testing.assert_array_equal(out.maps["angle"][nearest >= 0], enc.angle[nearest[nearest >= 0]])
    assert np.all(np.isnan(out.maps["z"][nearest < 0]))
    # atoms found otherwise (the peak finder): the same patches and codes for the same pixels
    peaks = peak_finder(image, sigma=0.5, threshold=0.3)
    alt = atoms_to_latents(image, None, None, model, vae_params, positions=peaks)
    assert np.all(alt.classes == -1) and alt.dropped + len(alt.positions) == len(peaks)
    common = {tuple(p) for p in out.pixels.tolist()} & {tuple(p) for p in alt.pixels.tolist()}
    assert len(common) >= 5  # enough shared pixels for the comparison to mean something
    a = {tuple(p): z for p, z in zip(out.pixels.tolist(), out.encoding.z, strict=True)}
    b = {tuple(p): z for p, z in zip(alt.pixels.tolist(), alt.encoding.z, strict=True)}
    np.testing.assert_allclose([a[c] for c in common], [b[c] for c in common], atol=1e-5)
    with pytest.raises(ValueError, match="window 12"):
        atoms_to_latents(image, net, fit.params, model, vae_params, window=12)
