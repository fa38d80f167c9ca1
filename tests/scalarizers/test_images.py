"""Image scalarizers: the centre of mass of shifted discs and Gaussians (against the shift and
SciPy), its gradient, the domain radius of rendered discs (one definition, shared with the
domain-writing simulator), and the name table."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_allclose
from scipy import ndimage

import jaxscope.instruments.domains as domains
from jaxscope import scalarizers
from jaxscope.instruments.domains import render_domain

com_shift = jax.jit(scalarizers.com_shift)
com_magnitude = jax.jit(scalarizers.com_magnitude)
domain_radius = jax.jit(scalarizers.domain_radius)
clean_disc = jax.jit(lambda key, r: render_domain(key, r, wobble=0.0, image_noise=0.0))

H, W = 48, 64  # not square: rows and columns must not be swapped
GEO = np.array([(H - 1) / 2, (W - 1) / 2])


def gaussian(shift, sigma=3.0):
    i, j = np.mgrid[:H, :W]
    c = GEO + shift
    return np.exp(-0.5 * ((i - c[0]) ** 2 + (j - c[1]) ** 2) / sigma**2)


def disc(shift, radius=8.0):
    i, j = np.mgrid[:H, :W]
    c = GEO + shift
    return (((i - c[0]) ** 2 + (j - c[1]) ** 2) <= radius**2).astype(float)


def test_com_of_a_shifted_gaussian(dtype):
    """A Gaussian 7σ from every edge: its centre of mass is its centre to ~1e-10 px."""
    shift = np.array([2.3, -4.7])
    p = gaussian(shift)
    got = com_shift(jnp.asarray(p, dtype))
    np.testing.assert_allclose(got, shift, atol=1e-4 if dtype == jnp.float32 else 1e-9)
    assert_allclose(got, np.array(ndimage.center_of_mass(p)) - GEO, scale=50)
    assert_allclose(com_magnitude(jnp.asarray(p, dtype)), np.hypot(*shift), scale=50)


def test_com_of_a_disc_shifted_by_whole_pixels():
    """A pixelated disc is symmetric about its centre pixel: the centre of mass is the integer
    shift exactly (with the default centre on a pixel corner for even sizes)."""
    p = disc(np.array([3.5, -6.5]))  # GEO = (23.5, 31.5): centre pixel (27, 25)
    np.testing.assert_allclose(com_shift(jnp.asarray(p)), [3.5, -6.5], atol=1e-5)
    np.testing.assert_allclose(
        com_shift(jnp.asarray(p), jnp.array([27.0, 25.0])), [0.0, 0.0], atol=1e-5
    )
    # any reference centre; a common scale does not matter
    c = jnp.array([20.0, 30.0])
    np.testing.assert_allclose(
        com_shift(jnp.asarray(7.0 * p), c), GEO + [3.5, -6.5] - [20.0, 30.0], atol=1e-5
    )


def test_com_gradient_and_empty_pattern(x64):
    """∂c/∂I_ij = ((i, j) - c_abs) / ΣI; an all-zero pattern has no centre: zero shift, finite
    gradients."""
    p = jnp.asarray(gaussian(np.array([1.0, 2.0])) + 0.1)
    J = jax.jit(jax.jacrev(scalarizers.com_shift))(p)
    total = float(p.sum())
    c_abs = np.asarray(com_shift(p)) + GEO
    i, j = np.mgrid[:H, :W]
    np.testing.assert_allclose(J[0], (i - c_abs[0]) / total, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(J[1], (j - c_abs[1]) / total, rtol=1e-10, atol=1e-14)
    z = jnp.zeros((H, W))
    np.testing.assert_array_equal(com_shift(z), [0.0, 0.0])
    assert float(com_magnitude(z)) == 0.0
    g = jax.jit(jax.grad(scalarizers.com_magnitude))(z)
    assert np.all(np.isfinite(g))
    g = jax.jit(jax.grad(scalarizers.com_magnitude))(jnp.asarray(disc(np.zeros(2))))  # zero shift
    assert np.all(np.isfinite(g))


def test_vmap_over_patterns_matches_plain_calls():
    shifts = np.array([[0.0, 0.0], [1.5, -2.0], [-3.25, 4.0]])
    P = jnp.asarray(np.stack([gaussian(s) for s in shifts]))
    got = jax.jit(jax.vmap(scalarizers.com_shift))(P)
    np.testing.assert_allclose(got[1], scalarizers.com_shift(P[1]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, shifts, atol=1e-4)
    np.testing.assert_allclose(
        jax.jit(jax.vmap(scalarizers.com_magnitude))(P), np.hypot(*shifts.T), atol=1e-4
    )


@pytest.mark.parametrize("r", [4.0, 9.5, 17.3])
def test_domain_radius_of_rendered_discs(r):
    """Clean rendered discs: sqrt(count / π) of the pixels above 0, within a third of a pixel
    of the radius."""
    img = clean_disc(jax.random.key(3), r)
    est = domain_radius(img)
    np.testing.assert_allclose(est, np.sqrt(np.sum(np.asarray(img) > 0) / np.pi), rtol=1e-6)
    assert abs(float(est) - r) < 0.35
    # the threshold is strict, and moves the boundary
    assert float(domain_radius(img, 2.0)) == 0.0
    assert float(domain_radius(img, -2.0)) == pytest.approx(np.sqrt(64 * 64 / np.pi), rel=1e-6)


def test_domain_radius_has_one_definition():
    assert domains.domain_radius is scalarizers.domain_radius
    assert scalarizers.domain_radius.__module__ == "jaxscope.scalarizers.images"
    img = jnp.zeros((10, 10)).at[:3, :5].set(1.0)  # 15 pixels
    np.testing.assert_allclose(scalarizers.domain_radius(img, 0.5), np.sqrt(15 / np.pi), rtol=1e-6)


def test_bad_shapes_raise():
    # the explicit check, or the suite's runtime shape checking (jaxtyping) before it
    with pytest.raises((ValueError, TypeError), match="2-D|h w"):
        scalarizers.com_shift(jnp.ones((2, 4, 4)))
    with pytest.raises((ValueError, TypeError), match="2-D|h w"):
        scalarizers.domain_radius(jnp.ones(16))
    with pytest.raises(ValueError, match="center"):
        scalarizers.com_shift(jnp.ones((4, 4)), jnp.ones(3))


def test_scalarizer_table():
    """Every name maps to its function; each gives one number for one measurement."""
    S = scalarizers.SCALARIZERS
    assert set(S) == {"loop_area", "quarter_loop_area", "coercive_width", "imprint", "window_sum",
                      "peak_ratio", "peak_energy", "com_magnitude", "domain_radius"}  # fmt: skip
    assert all(S[k] is getattr(scalarizers, k) for k in S)
    t = jnp.linspace(0.0, 2 * jnp.pi, 8, endpoint=False)
    e = jnp.linspace(0.0, 1.0, 8)
    img = jnp.asarray(disc(np.array([1.0, 0.0])))
    examples = {
        "loop_area": (jnp.cos(t), jnp.sin(t)),
        "quarter_loop_area": (jnp.cos(t), jnp.sin(t)),
        "coercive_width": (jnp.cos(t), jnp.sin(t)),
        "imprint": (jnp.cos(t), jnp.sin(t)),
        "window_sum": (e, e, 0.0, 0.5),
        "peak_ratio": (e, e, (0.5, 1.0), (0.0, 0.5)),
        "peak_energy": (e, e, 0.0, 1.0),
        "com_magnitude": (img,),
        "domain_radius": (img,),
    }
    for k, args in examples.items():  # (their values are checked in the other tests)
        assert jax.eval_shape(S[k], *args).shape == (), k  # traced, not compiled
