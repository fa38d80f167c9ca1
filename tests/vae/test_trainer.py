"""jaxscope.vae training: one compile for all epochs (and a resumed run), resume through an orbax
checkpoint bit-for-bit equal to an uninterrupted run, evaluation that leaves the weights
bit-identical, latent maps equal to encoding hand-cut patches, and learned quantities checked
against the known truth of synthetic data: the circular correlation of the learned angle with
the true angle, unsupervised class accuracy of the jrVAE, semi-supervised accuracy."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from vae_shapes import shapes

from jaxscope.vae import (
    CVAE,
    JVAE,
    RVAE,
    SSVAE,
    VED,
    circular_correlation,
    decode,
    encode,
    evaluate,
    joint_objective,
    latent_map,
    load_checkpoint,
    train,
)
from jaxscope.vae.metrics import best_permutation_accuracy
from jaxscope.vae.trainer import run_epoch

SMALL = {"encoder_hidden": (16, 16), "decoder_hidden": (16, 16)}


@pytest.fixture(scope="module")
def small():
    x, *_ = shapes(120, 12, classes=(1,), max_shift=1.0, seed=0)
    return RVAE((12, 12), invariances=("r", "t"), **SMALL), x


def _leaves(tree):
    return [np.array(a) for a in jax.tree.leaves(tree)]


def test_resume_from_checkpoint_equals_one_run_and_compiles_once(small, tmp_path):
    m, x = small
    before = run_epoch._cache_size()
    full = train(m, x, epochs=3, batch_size=40, key=jax.random.key(7), progress=True)
    assert run_epoch._cache_size() - before == 1  # one program for all three epochs
    part = train(m, x, epochs=2, batch_size=40, key=jax.random.key(7), checkpoint_dir=tmp_path)
    restored = load_checkpoint(tmp_path, m)
    assert (restored.epoch, restored.step) == (2, 6)
    for a, b in zip(_leaves(restored.params), _leaves(part.params), strict=True):
        np.testing.assert_array_equal(a, b)
    resumed = train(m, x, epochs=1, batch_size=40, resume=restored)
    assert run_epoch._cache_size() - before == 1  # the resumed run reuses it
    for a, b in zip(_leaves(resumed.params), _leaves(full.params), strict=True):
        np.testing.assert_array_equal(a, b)
    for k in full.history:
        np.testing.assert_array_equal(resumed.history[k], full.history[k])
    assert resumed.history["loss"].shape == (3,) and (resumed.epoch, resumed.step) == (3, 9)
    # the loss went down: training did something
    assert full.history["loss"][-1] < full.history["loss"][0]


def test_resume_with_a_raw_uint32_key(small, tmp_path):
    m, x = small
    key = jax.random.PRNGKey(11)  # the legacy raw key: saved as a typed key with the same bits
    full = train(m, x, epochs=2, batch_size=40, key=key)
    train(m, x, epochs=1, batch_size=40, key=key, checkpoint_dir=tmp_path)
    resumed = train(m, x, epochs=1, batch_size=40, resume=load_checkpoint(tmp_path, m))
    for a, b in zip(_leaves(resumed.params), _leaves(full.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_evaluate_never_changes_weights_and_is_deterministic(small):
    m, x = small
    res = train(m, x, epochs=1, batch_size=40, key=jax.random.key(1))
    before = _leaves(res.params)
    a = evaluate(m, res.params, x, key=jax.random.key(3), batch_size=50)  # chunks 50, 50, 20
    b = evaluate(m, res.params, x, key=jax.random.key(3), batch_size=50)
    for u, v in zip(before, _leaves(res.params), strict=True):
        np.testing.assert_array_equal(u, v)
    assert a == b
    parts = a["recon"] + a["kl_cont"] + a["kl_pose"] + a["kl_disc"]
    assert a["loss"] == pytest.approx(parts, rel=1e-5)  # β = 1: the negative ELBO
    # another posterior sample gives another estimate of the same quantity
    c = evaluate(m, res.params, x, key=jax.random.key(4), batch_size=50)
    assert c["loss"] != a["loss"] and c["loss"] == pytest.approx(a["loss"], rel=0.1)


def test_latent_map_equals_encoding_hand_cut_patches(small):
    m, _ = small
    res = train(m, small[1], epochs=1, batch_size=40, key=jax.random.key(2))
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(20, 23)).astype(np.float32)
    maps = latent_map(m, res.params, image, 12, normalize="none")
    assert maps["z"].shape == (20, 23, 2) and maps["angle"].shape == (20, 23)
    valid = ~np.isnan(maps["angle"])
    assert valid.sum() == (20 - 11) * (23 - 11)
    pix = [(6, 6), (10, 15), (14, 17)]
    cut = np.stack([image[i - 6 : i + 6, j - 6 : j + 6] for i, j in pix])
    enc = encode(m, res.params, cut)
    for k, (i, j) in enumerate(pix):
        np.testing.assert_allclose(maps["z"][i, j], enc.z[k], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(maps["shift"][i, j], enc.shift[k], rtol=1e-5, atol=1e-6)
    assert np.isnan(maps["z"][5, 6]).all() and np.isnan(maps["z"][6, 18]).all()


def test_training_rejects_bad_arguments(small):
    m, x = small
    with pytest.raises(ValueError, match="batch_size"):
        train(m, x, epochs=1, batch_size=500, key=jax.random.key(0))
    with pytest.raises(ValueError, match="epochs"):
        train(m, x, epochs=-1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="needs a key"):
        train(m, x, epochs=1)
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train(m, bad, epochs=1, key=jax.random.key(0))


# --- learning the known truth of synthetic data (small, but real) -------------------------------


@pytest.mark.slow
def test_rvae_learns_the_angle_on_held_out_patches():
    x, _, angle, _ = shapes(1800, 16, classes=(1,), max_shift=1.0, seed=1)
    m = RVAE((16, 16), latent_dim=2, invariances=("r", "t"))
    res = train(m, x[:1500], epochs=6, batch_size=50, key=jax.random.key(0))
    enc = encode(m, res.params, x[1500:])
    rho = circular_correlation(enc.angle, angle[1500:])
    assert abs(rho) >= 0.9, rho


@pytest.mark.slow
def test_jrvae_finds_the_classes_unsupervised():
    x, label, _, _ = shapes(1800, 16, classes=(0, 1, 2), seed=2)
    obj = joint_objective((3,), steps=150)
    m = JVAE((16, 16), discrete=(3,), invariances=("r",), objective=obj)
    res = train(m, x[:1500], epochs=4, batch_size=50, key=jax.random.key(0))
    enc = encode(m, res.params, x[1500:])
    acc = best_permutation_accuracy(label[1500:], enc.class_probs.argmax(1))
    assert acc >= 0.9, acc
    assert enc.class_probs.shape == (300, 3)


@pytest.mark.slow
def test_ss_rvae_classifies_from_few_labels():
    x, label, _, _ = shapes(1500, 16, classes=(0, 1, 2), seed=3)
    known = np.where(np.arange(1200) % 10 == 0, label[:1200], -1)  # 10 % labelled
    m = SSVAE((16, 16), num_classes=3, invariances=("r",))
    res = train(m, x[:1200], labels=known, epochs=4, batch_size=50, key=jax.random.key(0))
    enc = encode(m, res.params, x[1200:])
    acc = np.mean(enc.class_probs.argmax(1) == label[1200:])  # no permutation: labels fix it
    assert acc >= 0.9, acc


@pytest.mark.slow
def test_im2spec_learns_a_mapping_better_than_the_mean():
    x, label, angle, _ = shapes(900, 12, classes=(0, 1), seed=4)
    grid = np.linspace(-1, 1, 24)
    centre = np.where(label == 0, -0.4, 0.4)[:, None]  # the spectrum's peak tells the class
    spec = np.exp(-((grid - centre) ** 2) / 0.05).astype(np.float32)
    m = VED((12, 12), (24,), latent_dim=2, noise_scale=0.1)
    res = train(m, x[:700], targets=spec[:700], epochs=8, batch_size=50, key=jax.random.key(0))
    from jaxscope.vae import decode

    pred = decode(m, res.params, encode(m, res.params, x[700:]).z)[..., 0]
    mse = np.mean((pred - spec[700:]) ** 2)
    baseline = np.mean((spec[:700].mean(0) - spec[700:]) ** 2)
    assert mse < 0.25 * baseline, (mse, baseline)


@pytest.mark.slow
def test_cvae_decodes_the_class_it_is_given():
    # three motifs, small turns; the class is the condition, so the content latents need not
    # carry it: decoding one code under each condition must draw that class's motif
    x, label, _, _ = shapes(1200, 12, classes=(0, 1, 2), max_angle=0.2, seed=5)
    onehot = np.eye(3, dtype=np.float32)[label]
    m = CVAE((12, 12), condition_dim=3, latent_dim=2, encoder_hidden=(32, 32),
             decoder_hidden=(32, 32))  # fmt: skip
    res = train(m, x[:1000], condition=onehot[:1000], epochs=20, batch_size=50, lr=1e-2,
                key=jax.random.key(0))  # fmt: skip
    z = encode(m, res.params, x[1000:], condition=onehot[1000:]).z
    templates = np.stack([x[label == k].mean(0) for k in range(3)]).reshape(3, -1)
    apart = ((templates[:, None] - templates[None]) ** 2).sum(-1)
    for cond in range(3):  # the held-out codes, each decoded under every class
        c = np.repeat(np.eye(3, dtype=np.float32)[cond][None], len(z), 0)
        img = np.asarray(decode(m, res.params, z, condition=c)).reshape(len(z), -1)
        dist = ((img[:, None, :] - templates[None]) ** 2).sum(-1)
        assert np.all(dist.argmin(1) == cond), (cond, np.bincount(dist.argmin(1)))
        # that class's mean image, not a blend: far closer to it than the classes are apart
        assert dist[:, cond].mean() < 0.05 * np.sort(apart[cond])[1], dist.mean(0)


@pytest.mark.slow
def test_ss_regression_predicts_the_label_from_ten_percent_known():
    # the label is each image's brightness, an independent number in [0.3, 1]; 10 % known
    x, _, _, _ = shapes(1400, 12, classes=(0,), max_angle=0.3, seed=6)
    amp = np.random.default_rng(6).uniform(0.3, 1.0, len(x)).astype(np.float32)
    x = x * amp[:, None, None]
    known = np.where(np.arange(1200) % 10 == 0, amp[:1200], np.nan)
    m = SSVAE((12, 12), regression_dim=1, latent_dim=2, **SMALL)
    res = train(m, x[:1200], labels=known, epochs=10, batch_size=50, key=jax.random.key(0))
    pred = encode(m, res.params, x[1200:]).y[:, 0]
    rmse = float(np.sqrt(np.mean((pred - amp[1200:]) ** 2)))
    assert rmse < 0.25 * float(amp.std()), (rmse, float(amp.std()))  # not the mean's 1.0×
