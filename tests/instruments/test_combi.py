"""Combinatorial library: the three laws against NumPy formulas, the hidden draw, the noise."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_allclose, count_compilations

from jaxscope.instruments import PROBLEMS, CombiLibrary, make_simulator
from jaxscope.instruments.combi import LAW_PARAMS, LAWS, PRIOR_RANGES

PARAMS = {"xc": 0.47, "S0": 1.2, "C": -0.3, "beta": 0.31, "J": 0.42, "w": 0.035}


def reference(law: str, x: np.ndarray, p: dict) -> np.ndarray:
    """The laws as written in the brief, in float64 NumPy (piecewise by boolean indexing)."""
    f = np.full_like(x, p["C"])
    lo = x < p["xc"]
    if law == "second_order":
        f[lo] = p["S0"] * (1 - x[lo] / p["xc"]) ** p["beta"] + p["C"]
    elif law == "first_order":
        f[lo] = p["C"] + p["J"] + p["S0"] * (1 - x[lo] / p["xc"]) ** 1.25
    else:
        f = p["C"] + p["S0"] / (1 + np.exp(-(p["xc"] - x) / p["w"]))
    return f


@pytest.mark.parametrize("law", LAWS)
def test_laws_match_reference(law, dtype):
    sim = CombiLibrary(law, **PARAMS, dtype=dtype)
    assert sim.candidates.shape == (100, 1) and sim.candidates.dtype == dtype
    x = np.linspace(0.0, 1.0, 100)
    np.testing.assert_array_equal(np.asarray(sim.candidates[:, 0]), x.astype(dtype))
    t = sim.truth(sim.candidates)
    assert t.dtype == dtype
    assert_allclose(t, reference(law, np.asarray(sim.candidates[:, 0], np.float64), PARAMS),
                    scale=10)  # fmt: skip
    assert sim.law == law and sim.law_index == LAWS.index(law) and sim.name == "combi_library"
    assert set(sim.params) == set(LAW_PARAMS[law])
    assert sim.params == pytest.approx({k: PARAMS[k] for k in LAW_PARAMS[law]}, rel=1e-6)


def test_law_shapes_at_the_transition():
    """Second order is continuous at xc (a cusp), first order jumps by J, smeared is S0/2 above C."""
    xc, eps = PARAMS["xc"], 1e-6
    with jax.enable_x64(True):
        at = jnp.array([xc - eps, xc, xc + eps])
        so = CombiLibrary("second_order", **PARAMS).value(at)
        fo = CombiLibrary("first_order", **PARAMS).value(at)
        sm = CombiLibrary("smeared", **PARAMS).value(at)
    C, J, S0 = PARAMS["C"], PARAMS["J"], PARAMS["S0"]
    np.testing.assert_allclose(so, [C + S0 * (eps / xc) ** PARAMS["beta"], C, C], rtol=1e-12)
    np.testing.assert_allclose(fo[0] - fo[2], J, atol=1e-6)
    np.testing.assert_allclose(sm[1], C + S0 / 2, rtol=1e-12)


@pytest.mark.parametrize("law", LAWS)
def test_gradients_are_finite_everywhere(law):
    """The double ``where`` keeps the gradients finite above xc (negative base) and at xc."""
    sim = CombiLibrary(law, **PARAMS)
    x = jnp.concatenate([sim.candidates[:, 0], jnp.array([PARAMS["xc"]])])
    dx = jax.vmap(jax.grad(sim.value))(x)
    assert np.all(np.isfinite(dx))
    above = np.asarray(x) > PARAMS["xc"] + 0.2
    if law != "smeared":
        np.testing.assert_array_equal(dx[above], 0.0)
    # and through the parameters (what a hypothesis model differentiates)
    dp = jax.grad(lambda s: jnp.sum(s.truth(s.candidates)), allow_int=True)(sim)
    for k in LAW_PARAMS[law]:
        assert np.isfinite(float(getattr(dp, k))), k
    # d f / d x of the power law below xc, against the closed form
    i = 20
    x0, p = float(sim.candidates[i, 0]), PARAMS
    exact = {
        "second_order": -p["S0"] * p["beta"] / p["xc"] * (1 - x0 / p["xc"]) ** (p["beta"] - 1),
        "first_order": -p["S0"] * 1.25 / p["xc"] * (1 - x0 / p["xc"]) ** 0.25,
        "smeared": None,
    }[law]
    if exact is not None:
        np.testing.assert_allclose(dx[i], exact, rtol=1e-4)


def test_draw_is_deterministic_and_covers_every_law():
    key = jax.random.key(11)
    a, b = CombiLibrary.draw(key), make_simulator("combi_library", key=key)
    assert a.law == b.law and a.params == b.params
    k = jax.random.key(5)
    np.testing.assert_array_equal(
        a.measure_batch(k, a.candidates), b.measure_batch(k, b.candidates)
    )
    sims = [CombiLibrary.draw(jax.random.key(s)) for s in range(30)]
    counts = {law: sum(s.law == law for s in sims) for law in LAWS}
    assert all(c >= 3 for c in counts.values()), counts  # 30 draws: P(some law < 3) ~ 1e-3
    for s in sims:
        assert LAWS[s.law_index] == s.law
        for name in LAW_PARAMS[s.law]:
            lo, hi = PRIOR_RANGES[name]
            assert lo <= s.params[name] <= hi, (name, s.params[name])
    assert len({s.params["xc"] for s in sims}) == 30  # distinct draws
    # a fixed law keeps the key's parameters; unknown laws are refused
    fixed = CombiLibrary.draw(key, law="smeared")
    assert fixed.law == "smeared" and fixed.params["xc"] == a.params["xc"]
    with pytest.raises(ValueError, match="unknown law"):
        CombiLibrary("third_order")
    assert "combi_library" in PROBLEMS


def test_noise_and_regret():
    sim = CombiLibrary("first_order", **PARAMS)
    x = sim.candidates[30]
    keys = jax.random.split(jax.random.key(0), 4000)
    y = jax.vmap(sim.measure, in_axes=(0, None))(keys, x)
    truth = float(sim.truth(x[None])[0])
    assert abs(float(y.std()) - 0.03) < 0.002
    assert abs(float(y.mean()) - truth) < 4 * 0.03 / math.sqrt(4000)
    # every law decreases in x: the maximum is at x = 0, S0 + C (+ J)
    assert sim.maximize and sim.as_maximization() is sim
    np.testing.assert_allclose(sim.optimum, PARAMS["S0"] + PARAMS["C"] + PARAMS["J"], rtol=1e-6)
    np.testing.assert_allclose(sim.regret(truth), float(sim.optimum) - truth, rtol=1e-6)


def test_measure_batch_is_pure_and_compiles_once():
    sims = [CombiLibrary(law, **PARAMS) for law in ("second_order",)] + [
        CombiLibrary("second_order", **{**PARAMS, "xc": 0.6})
    ]
    f = eqx.filter_jit(lambda s, k: s.measure_batch(k, s.candidates))
    key = jax.random.key(3)
    y = f(sims[0], key)
    loop = [sims[0].measure(jax.random.fold_in(key, i), sims[0].candidates[i]) for i in range(5)]
    np.testing.assert_allclose(y[:5], loop, rtol=1e-6)
    with count_compilations() as log:
        y2 = f(sims[1], key)  # new parameters, same law: the same program
    assert len(log) == 0
    assert not np.allclose(y, y2)
