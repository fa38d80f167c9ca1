"""Every mean function against an independent NumPy formula; finite gradients at and beyond
breakpoints; prior overrides and bad input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy.special import erf as np_erf

from jaxscope import probmodels as pm


def _lorentz(x, p):
    A, g, x0 = (np.asarray(p[k])[:, None] for k in ("A", "gamma", "x0"))
    return p["c"] + np.sum(A * g**2 / ((x[None] - x0) ** 2 + g**2), 0)


def _gauss(x, p):
    A, s, x0 = (np.asarray(p[k])[:, None] for k in ("A", "sigma", "x0"))
    return p["c"] + np.sum(A * np.exp(-((x[None] - x0) ** 2) / (2 * s**2)), 0)


def _minima(x, p):
    A, w, x0 = (np.asarray(p[k]) for k in ("A", "w", "x0"))
    return p["y0"] - sum(A[i] / np.sqrt((x - x0[i]) ** 2 + w[i] ** 2) for i in range(len(A)))


def _second(x, p):
    out = np.full_like(x, p["C"])
    lo = x < p["xc"]
    out[lo] += p["S0"] * (1 - x[lo] / p["xc"]) ** p["beta"]
    return out


def _first(x, p):
    out = np.full_like(x, p["C"])
    lo = x < p["xc"]
    out[lo] += p["J"] + p["S0"] * (1 - x[lo] / p["xc"]) ** 1.25
    return out


def _loop(X, p, d=1000.0):
    out = []
    for v, br in X:
        vc, blo, bhi = (p["a2"], p["b0"], p["b1"]) if br == 0 else (p["a3"], p["b2"], p["b3"])
        g = (bhi - blo) / 2 * (np_erf((v - vc) * d) + 1) + blo
        y = (g * np_erf((v - vc) / g) + blo) / (blo + bhi)
        out.append(p["a0"] + p["a1"] * y + p["a4"] * v)
    return np.array(out)


def _nucleation(v, p):
    out = np.zeros_like(v)
    hi = np.abs(v) > p["Vc"]
    out[hi] = p["rc"] + p["r0"] * np.cbrt((v[hi] / p["Vc"]) ** 2 - 1)
    return out


def _ising(X, p):
    g = lambda J: p["c0"] + p["c1"] * J + p["c2"] * J**2 + p["c3"] * J**3
    return p["A"] / np.tanh(g(X[:, 0]) + g(X[:, 1]))


X1 = np.linspace(0.013, 0.987, 23)
XB7 = np.linspace(0.02, 2.5, 23)
XV = np.linspace(0.0, 4.0, 23)
XT = np.logspace(-3, 1, 23)
VV, TT = np.meshgrid(np.linspace(0.5, 5, 5), np.logspace(-2, 1, 5), indexing="ij")
XVT = np.stack([VV.ravel(), TT.ravel()], 1)
JJ = np.stack(np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 5), indexing="ij"), -1)
XJ = JJ.reshape(-1, 2)
XLOOP = np.concatenate([np.stack([np.linspace(-1, 1, 12), np.full(12, b)], 1) for b in (0, 1)])

CASES = {
    "lorentzian": (
        pm.lorentzian_peaks(2),
        dict(A=[1.0, 0.5], gamma=[0.05, 0.1], x0=[0.3, 0.6], c=0.2),
        X1,
        _lorentz,
    ),
    "gaussian": (
        pm.gaussian_peaks(3),
        dict(A=[1.0, 0.5, 2.0], sigma=[0.05, 0.1, 0.02], x0=[0.2, 0.5, 0.8], c=-0.1),
        X1,
        _gauss,
    ),
    "minima": (
        pm.two_minima(),
        dict(y0=2.0, A=[0.2, 0.15], w=[0.05, 0.06], x0=[0.3, 0.7]),
        X1,
        _minima,
    ),
    "second_order": (pm.second_order(), dict(xc=0.5, beta=0.3, S0=1.5, C=0.2), X1, _second),
    "first_order": (pm.first_order(), dict(xc=0.45, S0=1.1, J=0.3, C=-0.4), X1, _first),
    "smeared": (
        pm.smeared(),
        dict(xc=0.5, S0=1.3, w=0.04, C=0.1),
        X1,
        lambda x, p: p["C"] + p["S0"] / (1 + np.exp(-(p["xc"] - x) / p["w"])),
    ),
    "power_law": (
        pm.power_law(),
        dict(a=2.0, b=1.7, c=0.3),
        X1,
        lambda x, p: p["a"] * x ** p["b"] + p["c"],
    ),
    "pw1": (
        pm.piecewise_power_linear(),
        dict(t=1.2, beta=2.5, c=3.0),
        XB7,
        lambda x, p: np.where(x < p["t"], x ** p["beta"], p["c"] * x),
    ),
    "pw2": (
        pm.piecewise_linear_linear(),
        dict(t=1.2, b=2.5, c=3.0),
        XB7,
        lambda x, p: np.where(x < p["t"], p["b"] * x, p["c"] * x),
    ),
    "pw3": (
        pm.piecewise_power_power(),
        dict(t=1.6, beta1=4.0, beta2=2.5),
        XB7,
        lambda x, p: np.where(x < p["t"], x ** p["beta1"], x ** p["beta2"]),
    ),
    "lines": (
        pm.linear_branches(),
        dict(t=0.4, yt=0.5, s1=2.0, s2=-1.0),
        X1,
        lambda x, p: p["yt"] + np.where(x < p["t"], p["s1"], p["s2"]) * (x - p["t"]),
    ),
    "loop": (
        pm.hysteresis_loop(),
        dict(a0=0.1, a1=1.5, a2=-0.3, a3=0.35, a4=0.05, b0=0.15, b1=0.25, b2=0.2, b3=0.12),
        XLOOP,
        _loop,
    ),
    "nucleation": (pm.nucleation_growth(), dict(Vc=1.5, rc=0.5, r0=1.0), XV, _nucleation),
    "log_time": (
        pm.log_time_growth(tau0=0.1),
        dict(a=1.0, b=0.3),
        XT,
        lambda t, p: p["a"] + p["b"] * np.log(t / 0.1),
    ),
    "power_law_growth": (
        pm.power_law_growth(),
        dict(k=0.8, alpha=1.2, gamma=0.25),
        XVT,
        lambda X, p: p["k"] * X[:, 0] ** p["alpha"] * X[:, 1] ** p["gamma"],
    ),
    "ising": (pm.ising_tanh(), dict(A=1.0, c0=0.25, c1=0.15, c2=0.1, c3=-0.05), XJ, _ising),
}


@pytest.mark.parametrize("case", list(CASES))
def test_mean_function_matches_numpy(x64, case):
    model, params, X, ref = CASES[case]
    got = model(jnp.asarray(X), {k: jnp.asarray(v) for k, v in params.items()})
    assert got.shape == (len(X),)
    want = ref(np.asarray(X, np.float64), {k: np.asarray(v, np.float64) for k, v in params.items()})
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_default_priors_cover_the_names_and_give_finite_means(case):
    model = CASES[case][0]
    assert model.names == tuple(sorted(CASES[case][1]))
    X = CASES[case][2]
    f = model.mean_draws(model.sample_prior(jax.random.key(3), 16), X)
    assert f.shape == (16, len(X))
    assert bool(jnp.all(jnp.isfinite(f)))


def _grads(model, x, params):
    """d f / d x and d f / d every parameter at one point."""
    p = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
    gx = jax.grad(lambda x: model.fn(x, p))(jnp.atleast_1d(jnp.asarray(x, jnp.float32)))
    gp = jax.grad(lambda p: model.fn(jnp.atleast_1d(jnp.asarray(x, jnp.float32)), p))(p)
    return gx, gp


BREAKS = {
    # model, params, points below / exactly at / just beyond / far beyond the breakpoint
    "second_order": (pm.second_order(), dict(xc=0.5, beta=0.1, S0=1.0, C=0.0), "xc"),
    "first_order": (pm.first_order(), dict(xc=0.5, S0=1.0, J=0.3, C=0.0), "xc"),
    "smeared": (pm.smeared(), dict(xc=0.5, S0=1.0, w=1e-3, C=0.0), "xc"),
    "pw1": (pm.piecewise_power_linear(), dict(t=1.0, beta=0.5, c=3.0), "t"),
    "pw3": (pm.piecewise_power_power(), dict(t=1.0, beta1=0.3, beta2=-0.5), "t"),
    "lines": (pm.linear_branches(), dict(t=0.5, yt=0.0, s1=1.0, s2=-1.0), "t"),
    "nucleation": (pm.nucleation_growth(), dict(Vc=1.0, rc=0.5, r0=1.0), "Vc"),
    "power_law": (pm.power_law(), dict(a=1.0, b=0.4, c=0.0), None),
}


@pytest.mark.parametrize("case", list(BREAKS))
def test_gradients_finite_at_and_beyond_breakpoints(case):
    model, params, key = BREAKS[case]
    b = params[key] if key else 0.0
    points = [b - 0.1, b - 1e-7, b, b + 1e-7, b + 0.1, b + 2.0, 0.0]
    for x in points:
        gx, gp = _grads(model, x, params)
        assert bool(jnp.all(jnp.isfinite(gx))), (case, x, gx)
        for k, g in gp.items():
            assert bool(jnp.all(jnp.isfinite(g))), (case, x, k, g)


def test_second_order_gradient_values_below_and_beyond_xc():
    model = pm.second_order()
    p = dict(xc=0.5, beta=0.4, S0=1.5, C=0.2)
    for x, want_dx in [(0.2, -1.5 * 0.4 * (1 - 0.4) ** (-0.6) / 0.5), (0.8, 0.0)]:
        gx, gp = _grads(model, x, p)
        np.testing.assert_allclose(gx[0], want_dx, rtol=1e-5)
        np.testing.assert_allclose(gp["C"], 1.0)
    gx, gp = _grads(model, 0.5, p)  # exactly at xc: the flat branch
    assert float(gx[0]) == 0.0 and float(gp["beta"]) == 0.0


def test_guards_at_zero_and_ising_near_the_pole():
    gpow = jax.grad(lambda b, e: pm.positive_power(b, e), argnums=(0, 1))
    for b in (0.0, -1.0, 1e-30, 1e-42):
        assert all(bool(jnp.isfinite(g)) for g in gpow(jnp.float32(b), jnp.float32(0.3)))
    assert float(pm.positive_power(jnp.float32(0.0), 0.3)) == 0.0
    assert bool(jnp.isfinite(jax.grad(pm.positive_log)(jnp.float32(0.0))))
    # g(J1) + g(J2) = 0 exactly at J = (0, 0) with c0 = 0: the pole of 1/tanh
    model = pm.ising_tanh(eps=1e-4)
    p = dict(A=1.0, c0=0.0, c1=1.0, c2=0.0, c3=0.0)
    for x in ([0.0, 0.0], [1e-9, 0.0], [-1e-9, 0.0], [0.3, -0.3]):
        gx, gp = _grads(model, x, p)
        assert bool(jnp.all(jnp.isfinite(gx))) and all(bool(jnp.isfinite(g)) for g in gp.values())
    f = model(jnp.array([[0.0, 0.0], [-1e-9, 0.0]]), p)
    np.testing.assert_allclose(f, [1e4, -1e4], rtol=1e-5)


def test_vector_priors_and_ordered_positions():
    m = pm.two_minima()
    assert isinstance(m.priors["x0"], pm.OrderedUniform) and m.priors["x0"].n == 2
    s = m.sample_prior(jax.random.key(0), 50)
    assert s["A"].shape == s["w"].shape == s["x0"].shape == (50, 2) and s["y0"].shape == (50,)
    assert np.all(np.diff(np.asarray(s["x0"]), axis=1) > 0)


def test_prior_overrides_and_unknown_names():
    m = pm.second_order(xc=dist.Uniform(0.2, 0.8))
    assert m.priors["xc"].low == 0.2 and isinstance(m.priors["beta"], dist.Uniform)
    with pytest.raises(ValueError, match=r"unknown prior name\(s\) \['x_c'\]"):
        pm.second_order(x_c=dist.Uniform(0.2, 0.8))
    with pytest.raises(ValueError, match="unknown prior"):
        pm.two_minima(B=dist.Normal(0.0, 1.0))
    with pytest.raises(TypeError):  # the type checker or resolve_priors, whichever runs first
        pm.smeared(w=0.05)
    with pytest.raises(ValueError, match="n >= 1"):
        pm.gaussian_peaks(0)
    with pytest.raises(ValueError, match="tau0"):
        pm.log_time_growth(tau0=0.0)


def test_input_shape_errors_and_one_d_inputs():
    m = pm.smeared()
    p = dict(xc=0.5, S0=1.0, w=0.05, C=0.0)
    np.testing.assert_allclose(m(jnp.linspace(0, 1, 4), p), m(jnp.linspace(0, 1, 4)[:, None], p))
    with pytest.raises(ValueError, match=r"expects inputs of shape \(n, 1\)"):
        m(jnp.ones((4, 2)), p)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        pm.ising_tanh()(jnp.ones(4), dict(A=1.0, c0=1.0, c1=0.0, c2=0.0, c3=0.0))


def test_first_order_jump_size():
    m = pm.first_order()
    p = dict(xc=0.5, S0=1.0, J=0.3, C=0.1)
    below, above = m(jnp.array([0.5 - 1e-6, 0.5]), p)
    np.testing.assert_allclose(below - above, 0.3, atol=1e-4)
    assert math.isclose(float(above), 0.1, rel_tol=1e-6)
