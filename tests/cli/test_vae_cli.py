"""``jaxscope vae`` end to end at tiny size (12×12 patches, 16-unit layers, a few epochs): on a
user's stack the loss history equals a direct ``train`` call with the same seed and scaling and
decreases, the checkpoint restores those weights, the saved latents are ``encode``'s; on
generated lattice patches the reported held-out scores equal a recomputation from the saved
latents; bad options fail clearly."""

from __future__ import annotations

import argparse
import contextlib
import io
import json

import jax
import numpy as np
import pytest

from jaxscope.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_vae_cli")]
FAST = ["--hidden", "16,16", "--no-progress", "--no-cache"]


def _run(args: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["vae", *FAST, *args])  # later options win: the test's own come last
    return code, buf.getvalue()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from jaxscope.vae.lattice import perovskite
    from jaxscope.vae.lattice_patches import lattice_patches

    d = tmp_path_factory.mktemp("vae_stack")
    P = lattice_patches(jax.random.key(5), perovskite(), 200, window=12, dose=300.0)
    a = 50.0 * np.asarray(P.patches, np.float32) + 3.0  # arbitrary units and offset
    np.save(d / "stack.npy", a)
    return d, a


@pytest.fixture(scope="module")
def user_run(stack):
    d, _ = stack
    out = d / "out"
    args = ["--input", str(d / "stack.npy"), "--epochs", "3", "--batch-size", "50", "--seed", "3"]
    code, text = _run([*args, "--out", str(out)])
    return code, text, out


def test_user_stack_matches_a_direct_train_call(stack, user_run):
    from jaxscope.vae import families
    from jaxscope.vae.checkpoints import load_checkpoint
    from jaxscope.vae.inference import encode
    from jaxscope.vae.trainer import train

    _, a = stack
    code, text, out = user_run
    assert code == 0, text
    rec = json.loads((out / "metrics.json").read_text())
    x = (a - a.min()) / (a.max() - a.min())
    model = families.RVAE((12, 12), latent_dim=2, invariances=("r", "t"),
                          encoder_hidden=(16, 16), decoder_hidden=(16, 16))  # fmt: skip
    res = train(model, x, epochs=3, batch_size=50, key=jax.random.key(3))
    loss = np.asarray(rec["history"]["loss"])
    np.testing.assert_allclose(loss, res.history["loss"], rtol=1e-5)
    assert loss[-1] < loss[0]
    assert rec["final_loss"] == pytest.approx(loss[-1])
    assert rec["settings"]["samples"] == 200 and rec["scores"] is None
    restored = load_checkpoint(out / "checkpoint", model)
    assert restored.epoch == 3
    for p, q in zip(jax.tree.leaves(restored.params), jax.tree.leaves(res.params), strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
    lat = np.load(out / "latents.npz")
    np.testing.assert_allclose(lat["z"], encode(model, res.params, x).z, rtol=1e-4, atol=1e-5)
    for name in ("loss.png", "manifold.png", "traversals.png"):
        assert (out / name).stat().st_size > 1000
    assert not (out / "latent_maps.png").exists()  # a stack has no whole image to map
    assert f"loss {loss[0]:.4g} -> {loss[-1]:.4g}" in text


def test_pixel_fraction_and_fourier_reach_the_model(stack, tmp_path):
    from jaxscope.vae import families
    from jaxscope.vae.trainer import train

    d, a = stack
    args = ["--input", str(d / "stack.npy"), "--epochs", "2", "--batch-size", "50", "--seed",
            "3", "--pixel-fraction", "0.5", "--fourier", "8"]  # fmt: skip
    code, text = _run([*args, "--out", str(tmp_path)])
    assert code == 0, text
    rec = json.loads((tmp_path / "metrics.json").read_text())
    assert rec["settings"]["pixel_fraction"] == 0.5 and rec["settings"]["fourier"] == 8
    x = (a - a.min()) / (a.max() - a.min())
    model = families.RVAE((12, 12), latent_dim=2, invariances=("r", "t"), pixel_fraction=0.5,
                          fourier=8, encoder_hidden=(16, 16), decoder_hidden=(16, 16))  # fmt: skip
    res = train(model, x, epochs=2, batch_size=50, key=jax.random.key(3))
    np.testing.assert_allclose(rec["history"]["loss"], res.history["loss"], rtol=1e-5)
    # a different model: the loss history of the default (every pixel, 64 features) differs
    full = families.RVAE((12, 12), latent_dim=2, invariances=("r", "t"),
                         encoder_hidden=(16, 16), decoder_hidden=(16, 16))  # fmt: skip
    other = train(full, x, epochs=2, batch_size=50, key=jax.random.key(3))
    assert abs(other.history["loss"][-1] - res.history["loss"][-1]) > 1e-3


def test_generated_patches_scores_match_the_saved_latents(tmp_path):
    from jaxscope.cli.vae_cmd import generated_data
    from jaxscope.vae.metrics import angle_recovery, kmeans_accuracy

    args = ["--samples", "120", "--window", "12", "--map-size", "20", "--epochs", "2",
            "--batch-size", "40", "--seed", "1", "--lattice", "honeycomb"]  # fmt: skip
    code, text = _run([*args, "--out", str(tmp_path)])
    assert code == 0, text
    rec = json.loads((tmp_path / "metrics.json").read_text())
    s = rec["scores"]
    assert s["n_test"] == 30 and s["symmetry"] == 3
    assert rec["settings"]["symmetry"] == 3  # the lattice's order goes to the angle latent
    ns = argparse.Namespace(samples=120, window=12, map_size=20, seed=1, lattice="honeycomb",
                            dose=300.0)  # fmt: skip
    _, (xt, te), image, _ = generated_data(ns)
    lat = np.load(tmp_path / "latents.npz")
    assert lat["z"].shape == (30, 2)
    assert s["angle_recovery"] == pytest.approx(
        angle_recovery(lat["angle"], np.asarray(te.angle), 3)
    )
    assert s["kmeans_accuracy"] == pytest.approx(kmeans_accuracy(lat["z"], np.asarray(te.label)))
    assert 0.0 <= s["logistic_accuracy"] <= 1.0
    assert image.shape == (20, 20) and 0.0 <= image.min() and image.max() <= 1.0
    assert (tmp_path / "latent_maps.png").stat().st_size > 1000
    assert "held-out (30): angle |ρ|" in text


def test_hdf5_input_needs_a_dataset_name_when_ambiguous(tmp_path):
    import h5py

    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["a"] = np.zeros((4, 8, 8))
        f["b"] = np.ones((4, 8, 8))
    with pytest.raises(SystemExit):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            _run(["--input", str(tmp_path / "two.h5"), "--out", str(tmp_path / "o")])
    assert "holds 2 datasets" in err.getvalue()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--invariances", "r,x"], "--invariances"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--dataset", "x"], "--dataset needs --input"),
        (["--input", "/nonexistent.npy"], "not found"),
        (["--window", "28", "--map-size", "20"], "smaller than --window"),
        (["--hidden", "16,a"], "--hidden"),
        (["--lr", "0"], "--lr"),
        (["--symmetry", "0"], "--symmetry"),
        (["--symmetry", "4", "--invariances", "t"], "--symmetry"),
        (["--pixel-fraction", "0"], "--pixel-fraction must lie in (0, 1]"),
        (["--pixel-fraction", "1.5"], "--pixel-fraction must lie in (0, 1]"),
        (["--fourier", "-2"], "--fourier must be >= 0"),
    ],
)
def test_bad_options_fail_before_any_work(args, message, tmp_path):
    with pytest.raises(SystemExit) as e:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            _run([*args, "--out", str(tmp_path)])
    assert e.value.code == 2
    assert message in err.getvalue()


def test_constant_input_is_refused(tmp_path):
    np.save(tmp_path / "flat.npy", np.ones((10, 12, 12)))
    with pytest.raises(SystemExit):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            _run(["--input", str(tmp_path / "flat.npy"), "--out", str(tmp_path / "o")])
    assert "constant" in err.getvalue()
