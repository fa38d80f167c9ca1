"""Synthetic lattices: sites on the analytic lattice (spacing, angle, completeness), pixel
integrals and total intensity against SciPy, Poisson dose noise moments, patch labels (angle
measured from the clean image's columns, shift, class), defect rates, determinism, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compilations
from scipy import integrate, ndimage, spatial, special

from jaxscope.vae.lattice import (
    DOPANT,
    ROTATED,
    VACANCY,
    add_noise,
    column_mask,
    honeycomb,
    lattice_images,
    perovskite,
    present_atoms,
    render,
)
from jaxscope.vae.lattice_patches import PATCH_CLASSES, lattice_patches

LATTICES = {"honeycomb": honeycomb(), "perovskite": perovskite()}


@pytest.fixture(scope="module", params=["honeycomb", "perovskite"])
def pristine(request):
    lat = LATTICES[request.param]
    theta, shift = 0.37, (1.3, -2.1)
    d = lattice_images(
        jax.random.key(0), lat, 1, shape=(48, 56), p_vacancy=0.0, p_dopant=0.0,
        angle=theta, shift=shift,
    )  # fmt: skip
    return lat, theta, np.asarray(shift), d


def test_sites_are_the_analytic_lattice_and_all_of_it(pristine):
    lat, theta, shift, d = pristine
    H, W = d.image.shape[1:]
    origin = np.array([(H - 1) / 2, (W - 1) / 2]) + shift
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    A = np.asarray(lat.vectors)  # rows a1, a2
    pos = np.asarray(d.positions[0], np.float64)
    sub = np.asarray(d.sublattice[0])
    # every site is origin + R(i a1 + j a2 + b) with integer i, j
    local = (pos - origin) @ R - np.asarray(lat.basis)[sub]
    ij = local @ np.linalg.inv(A)
    np.testing.assert_allclose(ij, np.round(ij), atol=1e-3)
    # and every analytic site inside the image is there (independent enumeration)
    g = np.arange(-30, 31)
    cells = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2) @ A
    want = np.concatenate([origin + (cells + b) @ R.T for b in np.asarray(lat.basis)])
    inside = lambda p: (p[:, 0] >= 0) & (p[:, 0] <= H - 1) & (p[:, 1] >= 0) & (p[:, 1] <= W - 1)
    want = want[inside(want)]
    got = present_atoms(d, 0)
    assert len(got) == len(want) and np.all(inside(got))
    dist, _ = spatial.cKDTree(want).query(got)
    assert dist.max() < 1e-3
    # nearest-neighbour spacing; a1 turned counter-clockwise on screen (rows down) by θ
    nn, _ = spatial.cKDTree(pos).query(pos, k=2)
    np.testing.assert_allclose(np.median(nn[:, 1]), lat.neighbour, rtol=1e-5)
    i0 = np.flatnonzero((np.abs(ij).sum(1) < 1e-3) & (sub == 0))[0]  # the origin's A site
    i1 = np.flatnonzero((np.abs(ij - [1, 0]).sum(1) < 1e-3) & (sub == 0))[0]  # + a1
    v = pos[i1] - pos[i0]
    screen = lambda u: math.atan2(-u[0], u[1])  # angle with the row axis pointing down
    assert math.isclose(screen(v) - screen(A[0]), theta, rel_tol=1e-5)


def test_pixel_values_are_gaussian_integrals_and_the_total_is_the_weight_sum(pristine):
    _, _, _, d = pristine
    # one column: a pixel equals the 2-D integral of the Gaussian over it (SciPy quadrature)
    p, w, s = np.array([6.3, 9.8]), 2.5, 0.9
    img = np.asarray(render(jnp.asarray([p]), jnp.asarray([w]), (16, 20), s), np.float64)
    g = lambda y, x: (
        w * np.exp(-((y - p[0]) ** 2 + (x - p[1]) ** 2) / (2 * s**2)) / (2 * np.pi * s**2)
    )
    for i, j in [(6, 10), (7, 9), (4, 12)]:
        want, _ = integrate.dblquad(g, j - 0.5, j + 0.5, i - 0.5, i + 0.5)
        assert math.isclose(img[i, j], want, rel_tol=1e-4, abs_tol=1e-7)
    assert math.isclose(img.sum(), w, rel_tol=1e-5)
    # a whole image: sum = Σ w_k × (fraction of column k inside), fractions by scipy's ndtr
    H, W = d.clean.shape[1:]
    pos = np.asarray(d.positions[0], np.float64)
    frac = lambda r, n: special.ndtr((n - 0.5 - r) / 0.9) - special.ndtr((-0.5 - r) / 0.9)
    want = np.sum(np.asarray(d.weight[0]) * frac(pos[:, 0], H) * frac(pos[:, 1], W))
    assert math.isclose(float(d.clean[0].sum()), want, rel_tol=2e-5)


def test_poisson_dose_noise_has_the_right_mean_and_variance():
    clean = jnp.full((300, 300), 2.0)
    x = np.asarray(add_noise(jax.random.key(3), clean, 50.0, 0.0), np.float64)
    np.testing.assert_allclose(x * 50, np.round(x * 50), atol=1e-3)  # counts / dose
    n = x.size  # mean 2, variance 2/50; SE of the mean 0.00067, of the variance ≈ 0.0001
    assert abs(x.mean() - 2.0) < 4 * math.sqrt(0.04 / n)
    assert abs(x.var() - 0.04) < 4 * 0.04 * math.sqrt(2 / n) * 1.1
    y = np.asarray(add_noise(jax.random.key(3), clean, 50.0, 0.3), np.float64)
    assert abs(y.var() - (0.04 + 0.09)) < 4 * 0.13 * math.sqrt(2 / n) * 1.1
    # in a lattice image the standardised residual has unit variance where there is signal
    d = lattice_images(jax.random.key(1), perovskite(), 2, shape=64, dose=40.0)
    c, im = np.asarray(d.clean), np.asarray(d.image)
    lam = 40.0 * c[c > 0.02]  # expected counts
    z = (im - c)[c > 0.02] / np.sqrt(lam) * 40.0
    # SE of the mean 1/√N; of the variance √((2 + 1/λ)/N) (Poisson excess kurtosis 1/λ)
    assert abs(z.mean()) < 4 / math.sqrt(z.size)
    assert abs((z**2).mean() - 1) < 4 * math.sqrt(np.mean(2 + 1 / lam) / z.size)


@pytest.fixture(scope="module")
def patches():
    return lattice_patches(
        jax.random.key(5), honeycomb(), 40, window=28, classes=PATCH_CLASSES, max_shift=1.0
    )


def _clean_columns(patch):
    """Column centres measured from a clean patch: local maxima, refined by a parabola through
    the log-intensities of each maximum and its two neighbours along rows and along columns."""
    peaks = (patch == ndimage.maximum_filter(patch, 3)) & (patch > 0.3 * patch.max())
    out = []
    for i, j in zip(*np.nonzero(peaks), strict=True):
        if 1 <= i < patch.shape[0] - 1 and 1 <= j < patch.shape[1] - 1:
            L = np.log(patch[i - 1 : i + 2, j - 1 : j + 2])
            vertex = lambda a, b, c: 0.5 * (a - c) / (a - 2 * b + c)
            out.append([i + vertex(*L[:, 1]), j + vertex(*L[1, :])])
    return np.asarray(out)


def test_patch_labels_match_the_columns_measured_in_the_image(patches):
    P, lat = patches, honeycomb()
    period = 2 * np.pi / lat.symmetry
    o = 28 // 2
    np.testing.assert_array_equal(np.bincount(np.asarray(P.label)), [8] * 5)
    for k in range(len(P.label)):
        cls = PATCH_CLASSES[int(P.label[k])]
        centre = np.array([o, o]) + np.asarray(P.shift[k])
        np.testing.assert_allclose(np.asarray(P.positions[k, int(P.centre[k])]), centre, atol=1e-5)
        assert np.all(np.abs(np.asarray(P.shift[k])) <= 1.0)
        if cls not in ("pristine", "rotated"):
            continue
        cols = _clean_columns(np.asarray(P.clean[k], np.float64))
        v = cols - centre
        r = np.linalg.norm(v, axis=1)
        nb = v[(r > 0.5 * lat.neighbour) & (r < 1.3 * lat.neighbour)]
        assert len(nb) == 3  # three bonds around a honeycomb site
        bond = np.arctan2(-nb[:, 0], nb[:, 1])  # on screen; unrotated: -π/6 + k·2π/3
        extra = math.pi / 6 if cls == "rotated" else 0.0  # the motif turns by motif_angle
        diff = (bond + math.pi / 6 - float(P.angle[k]) - extra) % period
        err = np.minimum(diff, period - diff)
        assert err.max() < 0.03, (cls, err)


def test_a_pristine_patch_is_the_image_of_the_same_pose(patches):
    # the image generator, posed like patch k (its origin sits at the image centre, 13.5,
    # the patch's at pixel 14), draws the same clean pixels
    P = patches
    k = int(np.flatnonzero(np.asarray(P.label) == PATCH_CLASSES.index("pristine"))[0])
    d = lattice_images(
        jax.random.key(0), honeycomb(), 1, shape=28, p_vacancy=0.0, p_dopant=0.0,
        angle=float(P.angle[k]), shift=tuple(np.asarray(P.shift[k], np.float64) + 0.5),
    )  # fmt: skip
    np.testing.assert_allclose(np.asarray(d.clean[0]), np.asarray(P.clean[k]), atol=1e-5)


def test_patch_classes_change_the_centre_column(patches):
    P = patches
    w = np.asarray(P.weight)[np.arange(len(P.label)), np.asarray(P.centre)]
    lab = np.asarray(P.label)
    np.testing.assert_allclose(w[lab == PATCH_CLASSES.index("vacancy")], 0.0)
    np.testing.assert_allclose(w[lab == PATCH_CLASSES.index("dopant")], 1.8)
    np.testing.assert_allclose(w[lab == PATCH_CLASSES.index("dark_dopant")], 0.4)
    np.testing.assert_allclose(w[lab == PATCH_CLASSES.index("pristine")], 1.0)
    # rotated: the centre and its 3 neighbours, nothing else
    n_rot = (np.asarray(P.site_class) == ROTATED).sum(1)
    np.testing.assert_array_equal(n_rot, np.where(lab == PATCH_CLASSES.index("rotated"), 4, 0))


def test_defect_rates_motifs_and_mask():
    d = lattice_images(
        jax.random.key(2), perovskite(), 1, shape=128, p_vacancy=0.1, p_dopant=0.05, n_rotated=3
    )
    cls = np.asarray(d.site_class[0])
    n = cls.size  # binomial counts within 4 standard errors
    for c, p in ((VACANCY, 0.1), (DOPANT, 0.05)):
        assert abs((cls == c).sum() - n * p) < 4 * math.sqrt(n * p * (1 - p))
    assert 3 <= (cls == ROTATED).sum() <= 3 * 5  # centre + 4 neighbours per motif at most
    # mask: class of the nearest site within 1.5 px, else background (KD-tree reference)
    pos = np.asarray(d.positions[0])
    mask = np.asarray(column_mask(d.positions[0], d.site_class[0], (128, 128), 1.5))
    ii, jj = np.meshgrid(np.arange(128), np.arange(128), indexing="ij")
    dist, idx = spatial.cKDTree(pos).query(np.stack([ii.ravel(), jj.ravel()], 1), k=2)
    want = np.where(cls == ROTATED, 0, cls)[idx[:, 0]] + 1
    want = np.where(dist[:, 0] <= 1.5, want, 0).reshape(128, 128)
    # away from a disc's edge and from where two discs' tails overlap (rotated motifs)
    sure = (np.abs(dist[:, 0] - 1.5) > 0.1) & (dist[:, 1] > 3.5)
    sure = sure.reshape(128, 128)
    assert np.mean(mask[sure] == want[sure]) > 0.999


def test_deterministic_given_the_key():
    a = lattice_patches(jax.random.key(9), perovskite(), 6, dose=100.0)
    b = lattice_patches(jax.random.key(9), perovskite(), 6, dose=100.0)
    with count_compilations() as log:  # a new key and a new dose: nothing recompiles
        c = lattice_patches(jax.random.key(10), perovskite(), 6, dose=80.0, read_noise=0.1)
    assert len(log) == 0
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(a.patches), np.asarray(c.patches))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "n must be"),
        ({"shape": 2}, "shape"),
        ({"sigma": -1.0}, "sigma"),
        ({"dose": 0.0}, "dose"),
        ({"read_noise": float("nan")}, "read_noise"),
        ({"p_vacancy": 1.5}, "p_vacancy"),
        ({"p_vacancy": 0.6, "p_dopant": 0.6}, "must not exceed 1"),
        ({"n_rotated": -1}, "n_rotated"),
        ({"shift": (1.0, 2.0, 3.0)}, "shift"),
        ({"shift": (1.0, float("nan"))}, "shift"),
        ({"angle": float("inf")}, "angle"),
    ],
)
def test_image_arguments_are_checked(kwargs, match):
    args = {"n": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        lattice_images(jax.random.key(0), honeycomb(), args.pop("n"), **args)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"classes": ("pristine", "twin")}, "unknown"),
        ({"classes": ("pristine", "pristine")}, "distinct"),
        ({"window": 3}, "window"),
        ({"max_shift": 20.0}, "max_shift"),
        ({"angle_range": (1.0, 0.0)}, "angle_range"),
    ],
)
def test_patch_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lattice_patches(jax.random.key(0), honeycomb(), 4, **kwargs)
    with pytest.raises(TypeError, match="Lattice"):
        lattice_patches(jax.random.key(0), "graphene", 4)
    with pytest.raises(ValueError, match="weight"):
        honeycomb(weights=(1.0, 0.0))
