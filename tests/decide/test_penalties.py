"""Penalties and masks against hand-written NumPy formulas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_allclose

from jaxscope import Observations
from jaxscope.decide import penalties as P


def _grid(n=7):
    g = np.linspace(0, 1, n)
    return np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)


def test_memory_mask_decays_with_age_like_hand_formula(dtype):
    Xc = _grid(9)
    chosen = np.array([[0.5, 0.5], [0.1, 0.9], [0.8, 0.2], [0.3, 0.3], [0.9, 0.9]])
    k, dscale, gamma = 3, 0.3, 0.6
    mem = P.memory_init(k, 2, dtype)
    step = jax.jit(P.memory_update)
    for x in chosen:
        mem = step(mem, jnp.asarray(x, dtype))
    got = np.asarray(
        jax.jit(lambda m, X: P.memory_mask(m, X, dscale=dscale, gamma=gamma))(
            mem, jnp.asarray(Xc, dtype)
        )
    )
    # hand formula: the point chosen a steps ago (a = 0 the latest) forbids distance < d γ^a,
    # only the last k points count
    want = np.ones(len(Xc), bool)
    for a, p in enumerate(chosen[::-1][:k]):
        want &= np.linalg.norm(Xc - p, axis=1) >= dscale * gamma**a
    np.testing.assert_array_equal(got, want)
    # the oldest two points fell out of the memory: a candidate right on them is allowed
    assert got[np.argmin(np.linalg.norm(Xc - chosen[0], axis=1))]
    # and the radius really decays: the latest point excludes more than the oldest kept one
    near_new = np.linalg.norm(Xc - chosen[-1], axis=1) < dscale
    near_old = np.linalg.norm(Xc - chosen[-3], axis=1) < dscale * gamma**2
    assert near_new.sum() > near_old.sum() and not got[near_new].any()
    assert mem.points.dtype == dtype and mem.valid.tolist() == [True, True, True]


def test_memory_partially_filled():
    mem = P.memory_update(P.memory_init(4, 2), jnp.array([0.0, 0.0]))
    allowed = P.memory_mask(mem, jnp.array([[0.0, 0.0], [0.05, 0.0], [0.5, 0.5]]), dscale=0.1)
    np.testing.assert_array_equal(np.asarray(allowed), [False, False, True])
    with pytest.raises(ValueError, match="coordinates"):
        P.memory_update(mem, jnp.zeros(3))


def test_exclude_measured_and_radius(dtype):
    Xc = jnp.asarray(_grid(5), dtype)
    obs = Observations.from_arrays(
        np.asarray(Xc)[[3, 12]], np.array([1.0, 2.0]), capacity=6, dtype=dtype
    )
    allowed = np.asarray(P.exclude_measured(Xc, obs))
    want = np.ones(25, bool)
    want[[3, 12]] = False
    np.testing.assert_array_equal(allowed, want)  # padding rows (zeros) never exclude (0, 0)
    r = 0.3
    d = np.linalg.norm(np.asarray(Xc)[:, None] - np.asarray(Xc)[[3, 12]][None], axis=-1)
    np.testing.assert_array_equal(
        np.asarray(P.exclude_measured(Xc, obs, radius=r)), ~np.any(d <= r, axis=1)
    )
    # per-dimension radius (ellipse) and chunking agree with the hand formula
    rad = np.array([0.3, 0.1])
    e = np.sum(((np.asarray(Xc)[:, None] - np.asarray(Xc)[[3, 12]][None]) / rad) ** 2, -1)
    got = P.exclude_measured(Xc, obs, radius=jnp.asarray(rad, dtype), chunk_size=7)
    np.testing.assert_array_equal(np.asarray(got), ~np.any(e <= 1, axis=1))


def test_border_masks():
    Xc = jnp.asarray(_grid(6))
    got = np.asarray(P.box_mask(Xc, [0.0, 0.0], [1.0, 1.0], border=0.15))
    X = np.asarray(Xc)
    np.testing.assert_array_equal(got, np.all((X >= 0.15) & (X <= 0.85), axis=1))
    g = np.asarray(P.grid_border_mask((4, 5), 1)).reshape(4, 5)
    assert g.sum() == 2 * 3 and g[1:3, 1:4].all() and not g[0].any() and not g[:, -1].any()
    with pytest.raises(ValueError, match="border width"):
        P.grid_border_mask((4, 4), 2)


def test_delta_and_inverse_distance_penalties(dtype):
    Xc = _grid(4)
    recent = np.array([[0.0, 0.0], [1.0, 1.0], [1 / 3, 2 / 3]])  # newest first
    mem = P.memory_init(4, 2, dtype)
    for p in recent[::-1]:
        mem = P.memory_update(mem, jnp.asarray(p, dtype))
    Xj = jnp.asarray(Xc, dtype)
    delta = np.asarray(P.delta_penalty(Xj, mem.points, mem.valid))
    assert np.isinf(delta).sum() == 3 and np.all(delta[np.isfinite(delta)] == 0)
    assert np.isinf(delta[0]) and np.isinf(delta[-1])
    lam, ell = 0.7, 0.5
    got = P.inverse_distance_penalty(mem, Xj, factor=lam, scale=ell)
    want = np.zeros(len(Xc))
    for a, p in enumerate(recent):
        want += 1.0 / ((1.0 + np.linalg.norm(Xc - p, axis=1) / ell) * (1.0 + a))
    assert_allclose(got, lam * want, scale=10)


@pytest.mark.parametrize("ord_", [1, 2, np.inf])
def test_travel_cost(dtype, ord_):
    Xc = _grid(5)
    pos = np.array([0.25, 0.75])
    scale = np.array([1.0, 0.5])
    got = P.travel_cost(
        jnp.asarray(Xc, dtype),
        jnp.asarray(pos, dtype),
        rate=2.0,
        scale=jnp.asarray(scale, dtype),
        ord=ord_,
    )
    assert_allclose(got, 2.0 * np.linalg.norm((Xc - pos) / scale, ord=ord_, axis=1), scale=10)


def test_combine_and_select(dtype):
    scores = jnp.asarray([1.0, 5.0, 3.0, 4.0], dtype)
    pen = jnp.asarray([0.0, 0.5, 0.0, 2.0], dtype)
    mask = jnp.array([True, False, True, True])
    out = np.asarray(
        P.combine(scores, [pen, jnp.asarray([0.0, 0.0, jnp.inf, 0.0], dtype)], mask=mask)
    )
    np.testing.assert_array_equal(out, [1.0, -np.inf, -np.inf, 2.0])
    i, v = jax.jit(P.select)(jnp.asarray(out, dtype))
    assert int(i) == 3 and float(v) == 2.0
    i, v = P.select(scores, jnp.zeros(4, bool))
    assert np.isneginf(float(v))  # nothing allowed is visible to the caller
    measured = P.mark_measured(jnp.zeros(4, bool), jnp.array([1, 3]))
    np.testing.assert_array_equal(np.asarray(measured), [False, True, False, True])


# --- penalties inside a campaign (the policy's state) ------------------------------------------


def test_recent_points_memory_in_a_compiled_campaign():
    """GPim's memory as a campaign penalty: its state lives in the campaign state, and every
    choice keeps the hand formula's distance d·γ^a from the points chosen a steps before."""
    from jaxscope.campaign import init_random, make_config, run
    from jaxscope.decide import RecentPointsMemory, TravelCost
    from jaxscope.gp import GPModel
    from jaxscope.instruments import ThreeGaussians

    sim = ThreeGaussians(noise=0.01, size=10)
    k, dscale, gamma = 3, 0.35, 0.7
    mem = RecentPointsMemory(k=k, dscale=dscale, gamma=gamma)
    # the wide priors' short lengthscales make max-variance return next to its last choice
    # (checked below), which is what the memory is for
    model = GPModel.for_candidates(sim.candidates, priors="wide")
    cfg = make_config(
        sim.candidates, model=model, acquisition="maxvar",
        penalties=[mem, TravelCost(rate=0.0)], map_steps=20,
    )  # fmt: skip
    s0 = init_random(jax.random.key(0), cfg, sim, 4, num_steps=6)
    assert not bool(np.asarray(s0.policy.penalties[0].valid).any())  # empty memory at first
    final = run(s0, cfg, sim)
    x = np.asarray(final.history.x[:, 0])
    for t in range(1, len(x)):
        for a in range(min(t, k)):
            dist = np.linalg.norm(x[t] - x[t - 1 - a])
            assert dist >= dscale * gamma**a - 1e-6, (t, a, dist)
    # the memory holds the last k chosen points, newest first
    got = np.asarray(final.policy.penalties[0].points)
    np.testing.assert_allclose(got, x[::-1][:k], rtol=1e-6)
    # without the memory, max-variance goes back next to its previous choice at least once
    free = make_config(sim.candidates, model=model, acquisition="maxvar", map_steps=20)
    xs = np.asarray(run(init_random(jax.random.key(0), free, sim, 4, num_steps=6), free, sim)
                    .history.x[:, 0])  # fmt: skip
    close = [np.linalg.norm(xs[t] - xs[t - 1]) < dscale for t in range(1, len(xs))]
    assert any(close)
