"""EELS twin: particles do not overlap, thickness of a disc, window sums, unbiased Poisson noise
with the predicted variance, and the physics (bulk mode inside, edge mode at edges, dipole
energy falling with size)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxscope.instruments import EELSTwin
from jaxscope.instruments.eels import PHYSICS, geometry, low_loss
from jaxscope.scalarizers import peak_energy

# its module fixtures are built once: one worker runs the file (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_eels")


@pytest.fixture(scope="module")
def sim():
    return EELSTwin.create(jax.random.key(1), size=48, window=8, max_aspect=1.0)


@pytest.fixture(scope="module")
def spectra(sim):
    X = jnp.asarray(np.stack(np.meshgrid(np.arange(48.0), np.arange(48.0), indexing="ij"), -1))
    X = X.reshape(-1, 2).astype(jnp.float32)
    return np.asarray(eqx.filter_jit(lambda s, X: jax.vmap(s.clean_spectrum)(X))(sim, X))


def _distance(sim):
    """Distance (px) of every pixel to the nearest disc surface, and whether it is inside."""
    P = sim.particles
    C, R = np.asarray(P.centres)[np.asarray(P.mask)], np.asarray(P.radius)[np.asarray(P.mask)]
    i = np.arange(48.0)
    Y = np.stack(np.meshgrid(i, i, indexing="ij"), -1).reshape(-1, 1, 2)
    d = np.linalg.norm(Y - C, axis=-1) - R
    return d.min(1), C, R


def test_particles_do_not_overlap_and_thickness_is_a_sphere(sim):
    P = sim.particles
    m = np.asarray(P.mask)
    assert m.sum() >= 4
    C, A = np.asarray(P.centres)[m], np.asarray(P.axes)[m]
    D = np.linalg.norm(C[:, None] - C[None], axis=-1) + np.eye(m.sum()) * 1e9
    assert np.all(D > A[:, None, 0] + A[None, :, 0] + 2.0)  # bounding circles clear by `gap`
    assert np.all(C - A[:, :1] >= 1.0) and np.all(C + A[:, :1] <= 47.0)
    d, Cm, R = _distance(sim)
    i = np.arange(48.0)
    Y = np.stack(np.meshgrid(i, i, indexing="ij"), -1)
    t = sum(
        2 * np.sqrt(np.maximum(r**2 - np.sum((Y - c) ** 2, -1), 0))
        for c, r in zip(Cm, R, strict=True)
    )
    np.testing.assert_allclose(sim.thickness, t, atol=2e-4)
    img = np.asarray(sim.image).ravel()
    assert img[d < -2].mean() > img[d > 3].mean() + 0.3  # HAADF: particles bright
    dd, _ = geometry(jnp.asarray(Cm[0] + [R[0] + 2.5, 0], jnp.float32), P)
    np.testing.assert_allclose(float(jnp.min(dd)), 2.5, atol=1e-4)  # signed distance of a disc


def test_truth_is_the_window_sum_and_noise_is_unbiased_poisson(sim, spectra):
    e = np.asarray(sim.axis)
    lo, hi = sim.energy_window
    X = sim.candidates[::300]
    ij = np.asarray(X).astype(int)
    want = spectra.reshape(48, 48, -1)[ij[:, 0], ij[:, 1]][:, (e >= lo) & (e <= hi)].sum(1)
    np.testing.assert_allclose(sim.truth(X), want, rtol=1e-5)
    x = sim.candidates[400]
    keys = jax.random.split(jax.random.key(3), 3000)
    y = np.asarray(eqx.filter_jit(jax.vmap(lambda s, k: s.measure(k, x), (None, 0)))(sim, keys))
    t = float(sim.truth(x[None])[0])
    sd = 0.1 * np.sqrt(t)  # Poisson: var = nu^2 * sum of the clean window
    assert abs(y.mean() - t) < 4 * sd / np.sqrt(y.size)
    assert abs(y.std() / sd - 1) < 0.06


def test_bulk_inside_edge_at_edges(sim, spectra):
    e = np.asarray(sim.axis)
    d, _, _ = _distance(sim)
    bulk = spectra[:, np.abs(e - PHYSICS["plasma_ev"]) < 0.2].sum(1)
    inside, vacuum = bulk[d < -2], bulk[d > 6]
    assert inside.size > 10 and vacuum.size > 10
    assert inside.min() > 5 * vacuum.max()
    edge = np.asarray(sim.truth(jnp.asarray(np.stack(np.meshgrid(np.arange(48.0), np.arange(48.0),
                                indexing="ij"), -1).reshape(-1, 2), jnp.float32)))  # fmt: skip
    near = (d > 0) & (d < 1.5)
    assert edge[near].mean() > 2 * edge[d < -3].mean()
    assert edge[near].mean() > 2 * edge[d > 6].mean()


def test_dipole_energy_falls_with_size():
    e = jnp.linspace(1.5, 3.5, 2001)
    phys = {k: jnp.float32(v) for k, v in PHYSICS.items()}
    Ep, Rr = PHYSICS["plasma_ev"], PHYSICS["retard_nm"]
    R = jnp.array([10.0, 20.0, 35.0])
    peak = jax.jit(jax.vmap(lambda r: peak_energy(e, low_loss(e, jnp.array([30.0]),
                   jnp.array([0.0]), r[None], phys), 1.5, 3.2)))  # fmt: skip
    want = Ep / np.sqrt(3) / np.sqrt(1 + (np.asarray(R) / Rr) ** 2)
    np.testing.assert_allclose(peak(R), want, atol=5e-3)
    assert np.all(np.diff(want) < -0.05)
    with pytest.raises(ValueError, match="radius_px"):
        EELSTwin.create(jax.random.key(0), size=32, radius_px=(3.0, 9.0))
