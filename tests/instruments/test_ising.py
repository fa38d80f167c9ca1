"""J1–J2 Ising simulator against exact results.

References (independent of the Monte Carlo code, NumPy only):
* brute-force enumeration of all 2^16 states of a 4×4 periodic lattice, any J2;
* Kaufman's (1949) exact partition function of the L×L periodic lattice at J2 = 0, itself
  checked against the enumeration; energy and specific heat by finite differences in beta.
"""

from __future__ import annotations

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxscope.instruments import T_CRITICAL, IsingSimulator
from jaxscope.instruments.ising import (
    energy_per_spin,
    from_sublattices,
    run_chain,
    specific_heat,
    sweep,
    to_sublattices,
)

# its module fixtures are built once: one worker runs the file (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_ising")


# --- exact references ---------------------------------------------------------------------------
def _log2cosh(y):
    a = np.abs(y)
    return a + np.log1p(np.exp(-2 * a))


def _log2sinh_abs(y):
    a = np.abs(y)
    return a + np.log1p(-np.exp(-2 * a))


def kaufman_logz(beta: float, L: int) -> float:
    """log Z of the L×L periodic nearest-neighbour Ising model (J = 1), Kaufman 1949."""
    K = beta
    k = np.arange(2 * L)
    c = np.cosh(2 * K) / np.tanh(2 * K) - np.cos(np.pi * k / L)
    gam = np.arccosh(np.maximum(c, 1.0))
    gam[0] = 2 * K + np.log(np.tanh(K))  # signed: negative above Tc
    logs, signs = [], []
    for g in (gam[1::2], gam[0::2]):
        y = L * g / 2
        logs += [np.sum(_log2cosh(y)), np.sum(_log2sinh_abs(y))]
        signs += [1.0, np.prod(np.sign(y))]
    logs = np.array(logs)
    top = logs.max()
    total = np.sum(np.array(signs) * np.exp(logs - top))
    return np.log(0.5) + (L * L / 2) * np.log(2 * np.sinh(2 * K)) + top + np.log(total)


def kaufman_e_c(T: float, L: int, h: float = 1e-4) -> tuple[float, float]:
    """Exact energy and specific heat per spin, J2 = 0."""
    b, N = 1.0 / T, L * L
    fp, f0, fm = (kaufman_logz(b + d, L) for d in (h, 0.0, -h))
    return -(fp - fm) / (2 * h) / N, b**2 * (fp - 2 * f0 + fm) / h**2 / N


def enumerate_e_c(T: float, L: int, g: float) -> tuple[float, float]:
    """Exact energy and specific heat per spin by summing over all 2^(L*L) states."""
    N = L * L
    s = (((np.arange(2**N)[:, None] >> np.arange(N)) & 1) * 2 - 1).reshape(-1, L, L).astype(float)
    # bonds written out explicitly (right, down; the two diagonals going down)
    E = np.zeros(len(s))
    for i in range(L):
        for j in range(L):
            si = s[:, i, j]
            E -= si * (s[:, i, (j + 1) % L] + s[:, (i + 1) % L, j])
            E += g * si * (s[:, (i + 1) % L, (j + 1) % L] + s[:, (i + 1) % L, (j - 1) % L])
    w = -E / T
    w = np.exp(w - w.max())
    w /= w.sum()
    mean = np.sum(w * E)
    return mean / N, np.sum(w * (E - mean) ** 2) / T**2 / N


def test_kaufman_reference_matches_enumeration():
    for T in (1.5, 2.269, 3.0):
        np.testing.assert_allclose(kaufman_e_c(T, 4), enumerate_e_c(T, 4, 0.0), rtol=1e-6)


# --- Monte Carlo statistics, one compiled program per lattice size -------------------------------
@partial(jax.jit, static_argnums=(3, 4, 5))
def chain_stats(keys, T, g, L, n_sweeps, n_burn):
    """Per chain: mean energy per spin and specific heat; vmapped over conditions × chains."""

    def one(k, t, gg):
        e, _ = run_chain(k, t, gg, L, n_sweeps, n_burn)
        return jnp.mean(e), specific_heat(e, t, L * L)

    over_chains = jax.vmap(one, in_axes=(0, None, None))
    return jax.vmap(over_chains, in_axes=(None, 0, 0))(keys, T, g)


def _mean_se(a):
    a = np.asarray(a, np.float64)
    return a.mean(-1), a.std(-1, ddof=1) / np.sqrt(a.shape[-1])


def test_j1j2_chain_matches_enumeration_4x4():
    """Energy and specific heat of the J1–J2 model, 3 temperatures × 3 couplings, L = 4."""
    conds = [(T, g) for T in (1.5, 2.5, 4.0) for g in (0.0, 0.3, 0.8)]
    T = jnp.array([c[0] for c in conds])
    g = jnp.array([c[1] for c in conds])
    keys = jax.random.split(jax.random.key(0), 16)
    e, c = chain_stats(keys, T, g, 4, 2000, 200)
    e_mean, e_se = _mean_se(e)
    c_mean, c_se = _mean_se(c)
    for i, (t, gg) in enumerate(conds):
        e_ex, c_ex = enumerate_e_c(t, 4, gg)
        assert abs(e_mean[i] - e_ex) < 5 * e_se[i] + 2e-3, (t, gg, e_mean[i], e_ex, e_se[i])
        assert abs(c_mean[i] - c_ex) < 5 * c_se[i] + 0.03 * c_ex, (t, gg, c_mean[i], c_ex)


@pytest.fixture(scope="module")
def l16_stats():
    """L = 16 chains: a temperature scan at J2 = 0 plus low/high-temperature limits."""
    Ts = np.round(np.arange(1.95, 2.751, 0.05), 3)
    extra = [(1.0, 0.0), (50.0, 0.0), (0.8, 0.3), (0.8, 0.8)]
    T = jnp.array(list(Ts) + [t for t, _ in extra])
    g = jnp.array([0.0] * len(Ts) + [gg for _, gg in extra])
    keys = jax.random.split(jax.random.key(1), 6)
    e, c = chain_stats(keys, T, g, 16, 400, 100)
    return Ts, np.asarray(e), np.asarray(c)


def test_energy_limits_l16(l16_stats):
    Ts, e, _ = l16_stats
    e_lim = e[len(Ts) :].mean(-1)
    # ordered ferromagnet: -2 per spin (2 bonds per spin); exact at T = 1: -1.99716
    assert abs(e_lim[0] - kaufman_e_c(1.0, 16)[0]) < 3e-3 and abs(e_lim[0] + 2) < 0.01
    assert abs(e_lim[1]) < 0.08  # T = 50: disordered, exact -0.040
    assert abs(e_lim[1] - kaufman_e_c(50.0, 16)[0]) < 0.03
    assert abs(e_lim[2] - (-2 + 2 * 0.3)) < 0.02  # ferro ground state with J2 = 0.3
    assert abs(e_lim[3] - (-2 * 0.8)) < 0.02  # columnar stripes for J2 = 0.8


def test_specific_heat_peaks_near_tc_l16(l16_stats):
    Ts, _, c = l16_stats
    c_mean, c_se = _mean_se(c[: len(Ts)])
    exact = np.array([kaufman_e_c(t, 16)[1] for t in Ts])
    t_peak_exact = Ts[np.argmax(exact)]
    t_peak_mc = Ts[np.argmax(c_mean)]
    assert abs(t_peak_exact - T_CRITICAL) < 0.1  # finite-size shift at L = 16: +0.05
    assert abs(t_peak_mc - t_peak_exact) <= 0.1 + 1e-9, (t_peak_mc, t_peak_exact)
    assert abs(t_peak_mc - T_CRITICAL) < 0.2
    assert c_mean.max() > 2.5 * c_mean[0] and c_mean.max() > 2.5 * c_mean[-1]
    away = np.abs(Ts - t_peak_exact) >= 0.2  # off-critical: short chains are unbiased enough
    np.testing.assert_array_less(np.abs(c_mean - exact)[away], (5 * c_se + 0.1 * exact)[away])


def test_sweep_energy_bookkeeping_matches_recomputation(x64):
    """The tracked ΔE of accepted flips equals the change of the recomputed energy."""
    L, g = 8, 0.3
    s = jnp.where(jax.random.bernoulli(jax.random.key(2), 0.5, (L, L)), 1.0, -1.0)
    assert jnp.array_equal(from_sublattices(to_sublattices(s)), s)
    S, E, M = to_sublattices(s), L * L * energy_per_spin(s, g), jnp.sum(s)
    step = jax.jit(sweep)
    for k in jax.random.split(jax.random.key(3), 5):
        S, dE, dM = step(k, S, jnp.asarray(1 / 2.5), jnp.asarray(g))
        E, M = E + dE, M + dM
        lattice = from_sublattices(S)
        np.testing.assert_allclose(E, L * L * energy_per_spin(lattice, g), atol=1e-9)
        np.testing.assert_allclose(M, jnp.sum(lattice), atol=1e-9)
    assert not jnp.array_equal(lattice, s)  # spins did flip


@pytest.fixture(scope="module")
def small_sims():
    return {
        n: IsingSimulator(L=8, n_sweeps=n, n_burn=20, grid=(5, 3), truth_chains=16)
        for n in (25, 100)
    }


def test_simulator_deterministic_and_vmappable(small_sims):
    sim = small_sims[25]
    X = sim.candidates[::3]
    keys = jax.random.split(jax.random.key(4), X.shape[0])
    batched = eqx.filter_jit(jax.vmap(lambda k, x: sim.measure(k, x)))
    one = eqx.filter_jit(lambda k, x: sim.measure(k, x))
    y = batched(keys, X)
    loop = jnp.stack([one(k, x) for k, x in zip(keys, X, strict=True)])
    np.testing.assert_allclose(y, loop, rtol=1e-5)
    np.testing.assert_array_equal(batched(keys, X), y)  # same key, same value
    other = batched(jax.random.split(jax.random.key(5), X.shape[0]), X)
    assert not np.allclose(other, y)


def test_noise_scales_with_sweeps_and_truth_is_exact_expectation(small_sims):
    x = jnp.array([3.0, 0.0])
    keys = jax.random.split(jax.random.key(6), 48)
    spread = eqx.filter_jit(lambda s, ks: jnp.std(jax.vmap(lambda k: s.measure(k, x))(ks)))
    sd = {n: float(spread(s, keys)) for n, s in small_sims.items()}
    assert 1.4 < sd[25] / sd[100] < 2.9, sd  # ≈ sqrt(100 / 25) = 2
    sim = small_sims[100]
    truth = eqx.filter_jit(lambda s, X: s.truth(X))
    t1, t2 = truth(sim, x[None]), truth(sim, x[None])
    np.testing.assert_array_equal(t1, t2)  # deterministic
    c_exact = kaufman_e_c(3.0, 8)[1]
    assert abs(float(t1[0]) - c_exact) < 0.15 * c_exact, (float(t1[0]), c_exact)


def test_cost_model(small_sims):
    for n, sim in small_sims.items():
        a, b = jnp.array([2.0, 0.1]), jnp.array([3.5, 0.7])
        np.testing.assert_allclose(sim.cost(a, b), 0.01 * (20 + n) + 1.5 / 1.0, rtol=1e-6)
        np.testing.assert_allclose(sim.cost(a, a), 0.01 * (20 + n), rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="even"):
        IsingSimulator(L=7)
    with pytest.raises(ValueError, match="positive"):
        IsingSimulator(bounds=((0.0, 3.0), (0.0, 1.0)))
