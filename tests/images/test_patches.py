"""Patches: the index ↔ coordinate map is exact (edges never shift an index), windows equal
NumPy slices, normalisation options, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxscope.images import extract, lookup_all, valid_coordinates


@pytest.fixture(scope="module")
def image():
    return np.random.RandomState(0).randn(23, 19).astype(np.float32)


@pytest.mark.parametrize("window", [1, 4, 5, 16])
def test_every_valid_pixel_gets_its_own_numpy_window(image, window):
    P = extract(image, window)
    H, W = image.shape
    assert P.num == (H - window + 1) * (W - window + 1)
    o = window // 2
    for k in [0, 7, P.num // 2, P.num - 1]:
        i, j = map(int, P.coords[k])
        np.testing.assert_array_equal(
            np.asarray(P.patches[k]), image[i - o : i - o + window, j - o : j - o + window]
        )
        assert int(P.index(P.coords[k])) == k
    # the table is the inverse of coords and -1 elsewhere: exactly m valid pixels
    assert int(jnp.sum(P.table >= 0)) == P.num
    np.testing.assert_array_equal(np.asarray(P.index(P.coords)), np.arange(P.num))


def test_benchmark_size_and_first_last_pixels():
    C = valid_coordinates((50, 50), 16)
    assert C.shape == (1225, 2)  # 35 × 35: the DKL campaign's candidate count
    np.testing.assert_array_equal(C[0], [8, 8])
    np.testing.assert_array_equal(C[-1], [42, 42])


def test_given_coordinates_keep_their_indices_and_order(image):
    full = extract(image, 5)
    coords = np.array([[10, 3], [2, 2], [20, 16]], np.float32)
    P = extract(image, 5, coords)
    np.testing.assert_array_equal(np.asarray(P.coords), coords)
    for k, c in enumerate(coords):
        np.testing.assert_array_equal(
            np.asarray(P.patches[k]), np.asarray(full.patches[int(full.index(c))])
        )
    assert int(P.index(jnp.array([10.0, 3.0]))) == 0
    assert int(P.index(jnp.array([3.0, 3.0]))) == -1  # valid pixel, but not among coords


def test_lookup_under_jit_rounds_to_pixels_and_poisons_invalid(image):
    P = extract(image, 4)
    f = jax.jit(lambda x: lookup_all(P, x))
    X = jnp.array([[5.2, 6.8], [0.0, 0.0], [-3.0, 4.0], [5.0, 7.0]])
    out = np.asarray(f(X))
    np.testing.assert_array_equal(out[0], out[3])  # (5.2, 6.8) is pixel (5, 7)
    assert np.all(np.isnan(out[1])) and np.all(np.isnan(out[2]))  # edge / outside: no window


def test_normalisations(image):
    img = image * 3.0 + 7.0
    Pi = extract(img, 6, normalize="image")
    ref = (img - img.mean()) / img.std()
    i, j = map(int, Pi.coords[11])
    np.testing.assert_allclose(np.asarray(Pi.patches[11]), ref[i - 3 : i + 3, j - 3 : j + 3], 1e-5)
    Pp = extract(img, 6, normalize="patch")
    p = np.asarray(Pp.patches)
    np.testing.assert_allclose(p.mean((1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(p.std((1, 2)), 1.0, atol=1e-4)
    Pm = extract(img, 6, normalize="minmax")
    assert float(Pm.patches.min()) >= 0.0 and float(Pm.patches.max()) <= 1.0
    # min-max is an affine map of the image: equal to the raw windows rescaled
    raw = np.asarray(extract(img, 6).patches)
    np.testing.assert_allclose(
        np.asarray(Pm.patches), (raw - img.min()) / (img.max() - img.min()), atol=1e-5
    )


def test_channels_are_kept(image):
    img = np.stack([image, -image], -1)
    P = extract(img, 3)
    assert P.patches.shape[1:] == (3, 3, 2)
    np.testing.assert_array_equal(np.asarray(P.patches[..., 1]), -np.asarray(P.patches[..., 0]))


def test_bad_input_names_the_problem(image):
    with pytest.raises(ValueError, match="window 30 does not fit"):
        extract(image, 30)
    with pytest.raises(ValueError, match=r"coords\[1\] = \[0, 0\] has no 5-px window"):
        extract(image, 5, [[5, 5], [0, 0]])
    with pytest.raises(ValueError, match="whole pixels"):
        extract(image, 5, [[5.5, 5]])
    with pytest.raises(ValueError, match="twice"):
        extract(image, 5, [[5, 5], [5, 5]])
    with pytest.raises(ValueError, match="unknown normalize"):
        extract(image, 5, normalize="zscore")
    bad = image.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        extract(bad, 5)
    P = extract(image, 5)
    with pytest.raises(ValueError, match=r"X\[1\] = \[22.0, 0.0\] has no 5-px window"):
        P.check([[5, 5], [22, 0]])
    with pytest.raises(ValueError, match="shape"):
        P.check([1.0, 2.0])
