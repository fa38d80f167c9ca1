"""What the three digital twins share: determinism, candidates = patches, measure/truth through the
scalarizer, cost, registration, argument errors."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxscope.images import extract, valid_coordinates
from jaxscope.instruments import (
    IMAGE_PROBLEMS,
    PROBLEMS,
    DiffractionTwin,
    EELSTwin,
    ImageTwin,
    PFMTwin,
    make_simulator,
)

TWINS = {"pfm_twin": PFMTwin, "eels_twin": EELSTwin, "stem4d_twin": DiffractionTwin}
SIZE, WINDOW = 40, 8


@pytest.fixture(scope="module")
def twins():
    return {n: cls.create(jax.random.key(3), size=SIZE, window=WINDOW) for n, cls in TWINS.items()}


@pytest.mark.parametrize("name", sorted(TWINS))
def test_registered_and_deterministic(twins, name):
    assert name in IMAGE_PROBLEMS and name in PROBLEMS
    sim = twins[name]
    assert isinstance(sim, ImageTwin) and sim.name == name and sim.maximize
    same = make_simulator(name, key=jax.random.key(3), size=SIZE, window=WINDOW)
    for a, b in zip(jax.tree.leaves(sim), jax.tree.leaves(same), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = TWINS[name].create(jax.random.key(4), size=SIZE, window=WINDOW)
    assert not np.allclose(sim.image, other.image)
    assert not np.allclose(sim.truth(sim.candidates), other.truth(other.candidates))
    x = sim.candidates[17]
    spec = eqx.filter_jit(lambda s, k, x: s.spectrum(k, x))
    np.testing.assert_array_equal(spec(sim, jax.random.key(1), x), spec(sim, jax.random.key(1), x))
    assert not np.allclose(spec(sim, jax.random.key(1), x), spec(sim, jax.random.key(2), x))
    assert sim.image.dtype == jnp.float32 and sim.image.shape[:2] == (SIZE, SIZE)


@pytest.mark.parametrize("name", sorted(TWINS))
def test_candidates_are_the_patch_coordinates(twins, name):
    sim = twins[name]
    want = valid_coordinates(sim.image.shape[:2], WINDOW)
    assert sim.candidates.dtype == jnp.float32 and sim.candidates.shape == ((SIZE - 7) ** 2, 2)
    np.testing.assert_array_equal(sim.candidates, want)
    P = sim.patches()
    np.testing.assert_array_equal(P.coords, sim.candidates)
    ref = extract(sim.image, WINDOW, normalize="image")
    np.testing.assert_array_equal(P.patches, ref.patches)
    r, c = np.asarray(sim.candidates[5]).astype(int)
    img = np.asarray(sim.image)
    np.testing.assert_array_equal(
        np.asarray(sim.patches("none").patches[5]), img[r - 4 : r + 4, c - 4 : c + 4]
    )
    np.testing.assert_array_equal(sim.bounds, [[0, SIZE - 1], [0, SIZE - 1]])


@pytest.mark.parametrize("name", sorted(TWINS))
def test_measure_is_the_scalarizer_of_the_spectrum(twins, name):
    sim = twins[name]
    X = sim.candidates[::400]
    key = jax.random.key(5)

    @eqx.filter_jit
    def both(s, k, X):  # one program: measure_batch and scalarize ∘ spectra, truth and ∘ clean
        scal = jax.vmap(s.scalarize)
        return (s.measure_batch(k, X), scal(s.spectra(k, X)), s.truth(X),
                scal(jax.vmap(s.clean_spectrum)(X)))  # fmt: skip

    y, y_ref, t, t_ref = both(sim, key, X)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t, t_ref, rtol=1e-5, atol=1e-6)
    assert not np.allclose(y, t)  # the noise is there
    # cost: dwell + travel in image sides / speed
    c = float(sim.cost(X[0], X[1]))
    d = np.linalg.norm(np.asarray(X[0] - X[1]) / (SIZE - 1))
    np.testing.assert_allclose(c, float(sim.dwell) + d / float(sim.speed), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(TWINS))
def test_bad_arguments_name_the_problem(name):
    cls, key = TWINS[name], jax.random.key(0)
    with pytest.raises(ValueError, match="unknown scalarizer 'nope'; choose one of"):
        cls.create(key, size=SIZE, scalarizer="nope")
    with pytest.raises(ValueError, match="window 41 is larger than the image"):
        cls.create(key, size=SIZE, window=41)
    with pytest.raises(ValueError, match="size must be an integer >= 16"):
        cls.create(key, size=8, window=4)
    with pytest.raises(ValueError, match="noise must be finite and >= 0"):
        cls.create(key, size=SIZE, noise=-1.0)
    with pytest.raises(ValueError, match="unknown problem"):
        make_simulator("pfm")


@pytest.mark.slow
def test_256_smoke():
    for name, cls in TWINS.items():
        sim = cls.create(jax.random.key(0), size=256)
        assert sim.image.shape[:2] == (256, 256) and sim.candidates.shape == (241**2, 2), name
        t = np.asarray(sim.truth(sim.candidates[::501]))
        assert np.all(np.isfinite(t)) and np.ptp(t) > 0, name
