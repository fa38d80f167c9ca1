"""The Fourier-feature spatial decoder (``fourier=m``): its output against a NumPy forward pass
written out from the weights, exact equivariance (``numpy.rot90`` / ``numpy.roll`` of decoded
images, 2-D and 1-D), a hand count of its FLOPs, and clear errors for bad options."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxscope.vae import RVAE, VAE, decode, grids

# --- Fourier-feature spatial decoder ------------------------------------------------------------


@pytest.fixture(scope="module")
def rvae_fourier():
    m = RVAE((15, 15), latent_dim=2, invariances=("r", "t"), fourier=8, fourier_scale=3.0)
    return m, m.init(jax.random.key(4))


def _numpy_fourier_decoder(m, p, z, angle, shift_rc):
    """The Fourier-feature decoder's mean, written out in NumPy from the weights."""
    from jaxscope.vae.networks import fourier_frequencies

    g = grids.grid_numpy((15, 15)).astype(np.float64)  # (x, y), y down the rows
    c, s = np.cos(angle), np.sin(angle)
    t = np.asarray(shift_rc, np.float64)[::-1] * grids.pixel_size((15, 15))
    xp = (g - t) @ np.array([[c, s], [-s, c]])  # R(φ)ᵀ(x − t) as row vectors
    B = fourier_frequencies(8, 2, 3.0).astype(np.float64)
    a = 2 * np.pi * xp @ B.T
    feats = np.concatenate([xp, np.sin(a), np.cos(a)], 1)
    w = jax.tree.map(lambda v: np.asarray(v, np.float64), p["decoder"])
    h = np.tanh(feats @ w["coord"]["kernel"] + w["coord"]["bias"] + z @ w["latent"]["kernel"])
    for name in ("Dense_0", "Dense_1"):
        h = np.tanh(h @ w[name]["kernel"] + w[name]["bias"])
    out = h @ w["Dense_2"]["kernel"] + w["Dense_2"]["bias"]
    return 1 / (1 + np.exp(-out[:, 0].reshape(15, 15)))


def test_fourier_decoder_matches_numpy_and_turns_with_the_pose(rvae_fourier):
    m, p = rvae_fourier
    assert p["decoder"]["coord"]["kernel"].shape == (2 + 2 * 8, 128)
    z = np.array([[0.4, -1.2]], np.float32)
    for angle, shift in ((0.0, (0.0, 0.0)), (0.7, (1.5, -2.0))):
        got = np.asarray(decode(m, p, z, angle=angle, shift=shift))[0, ..., 0]
        ref = _numpy_fourier_decoder(m, p, z[0].astype(np.float64), angle, shift)
        np.testing.assert_allclose(got, ref, atol=2e-5)
    up = np.asarray(decode(m, p, z))[0, ..., 0]
    quarter = np.asarray(decode(m, p, z, angle=np.pi / 2))[0, ..., 0]
    np.testing.assert_allclose(quarter, np.rot90(up), atol=2e-6)  # equivariance kept
    moved = np.asarray(decode(m, p, z, shift=(2.0, -1.0)))[0, ..., 0]
    np.testing.assert_allclose(moved[2:, :-1], up[:-2, 1:], atol=2e-6)
    assert np.abs(quarter - up).max() > 1e-3  # not rotation-invariant by accident
    # the encoding has the requested frequencies: high ones make the image vary faster
    plain = RVAE((15, 15), latent_dim=2, invariances=("r", "t"), fourier=0)
    assert (
        np.abs(np.diff(up, axis=1)).mean()
        > np.abs(
            np.diff(np.asarray(decode(plain, plain.init(jax.random.key(4)), z))[0, ..., 0], axis=1)
        ).mean()
    )


def test_fourier_decoder_flops_and_errors(rvae_fourier):
    m, _ = rvae_fourier
    # counted by hand: B x' (8·2), first layer on 2 + 16 features, code, 128², 128², output
    P = 15 * 15
    hand = 2 * P * (8 * 2 + 18 * 128) + 2 * 2 * 128 + 2 * 2 * P * 128 * 128 + 2 * P * 128
    assert m.flops_per_sample()["decoder"] == hand
    # spectra: 1-D frequencies, a shift is still a roll
    sm = RVAE((40,), latent_dim=1, invariances=("t",), likelihood="gaussian", fourier=6)
    sp = sm.init(jax.random.key(5))
    assert sp["decoder"]["coord"]["kernel"].shape == (1 + 2 * 6, 128)
    s0 = np.asarray(decode(sm, sp, np.array([[0.4]], np.float32)))[0, :, 0]
    s3 = np.asarray(decode(sm, sp, np.array([[0.4]], np.float32), shift=3.0))[0, :, 0]
    np.testing.assert_allclose(s3[3:], s0[:-3], atol=2e-6)
    assert np.abs(s3 - s0).max() > 1e-3
    with pytest.raises(ValueError, match="fourier must be a non-negative int"):
        RVAE((8, 8), fourier=-1)
    with pytest.raises(ValueError, match="fourier must be a non-negative int"):
        RVAE((8, 8), fourier=2.5)
    with pytest.raises(ValueError, match="fourier features need a spatial decoder"):
        VAE((8, 8), fourier=4)
    with pytest.raises(ValueError, match="fourier_scale must be positive"):
        RVAE((8, 8), fourier=4, fourier_scale=0.0)


def test_fourier_features_are_the_default_on_images_only():
    from jaxscope.vae import JVAE
    from jaxscope.vae.families import DEFAULT_FOURIER

    img = RVAE((15, 15), latent_dim=2, invariances=("r", "t"))
    assert img.fourier == DEFAULT_FOURIER == 64
    p = img.init(jax.random.key(0))
    assert p["decoder"]["coord"]["kernel"].shape == (2 + 2 * 64, 128)
    assert JVAE((15, 15), discrete=(3,), invariances=("r",)).fourier == 64
    assert RVAE((15, 15), invariances=("r",), fourier=0).fourier == 0  # opt out
    assert RVAE((40,), latent_dim=1, invariances=("t",), likelihood="gaussian").fourier == 0
    assert VAE((15, 15)).fourier == 0  # a dense decoder has no coordinates
