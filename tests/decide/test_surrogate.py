"""The surrogate seam: a surrogate written here (Bayesian linear regression on fixed features,
closed-form posterior) runs unchanged in the compiled runner, the host runner and the agent, and
every choice each runner makes is the argmax of an independent NumPy posterior."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxscope.campaign import decide, init_random, make_config, run
from jaxscope.decide import Surrogate
from jaxscope.gp import Predictive
from jaxscope.host import Agent, HostRunner, read_journal
from jaxscope.instruments import SimulatorInstrument, ThreeGaussians

ALPHA, NOISE = 1.0, 0.05**2  # prior precision of the weights, noise variance (known)
N_INIT, STEPS = 4, 5


def features(X):
    """Quadratic features of 2-D points: 1, x, y, x², y², xy."""
    X = jnp.atleast_2d(X)
    x, y = X[:, 0], X[:, 1]
    return jnp.stack([jnp.ones_like(x), x, y, x * x, y * y, x * y], axis=1)


class BLRState(eqx.Module):
    precision: jax.Array  # A = αI + ΦᵀΦ/σ²
    rhs: jax.Array  # b = Φᵀy/σ²


class BayesianLinearRegression(Surrogate):
    """f(x) = φ(x)ᵀw, w ~ N(0, α⁻¹I), y = f + N(0, σ²): the posterior is N(A⁻¹b, A⁻¹)."""

    def _fit(self, obs):
        F = features(obs.X) * obs.mask[:, None]
        A = ALPHA * jnp.eye(F.shape[1], dtype=F.dtype) + F.T @ F / NOISE
        return BLRState(A, F.T @ jnp.where(obs.mask, obs.y, 0.0) / NOISE)

    def init(self, key, obs):
        return self._fit(obs)

    def update(self, state, obs, key):
        return self._fit(obs)

    def condition(self, state, X, y):
        F = features(X)
        return BLRState(state.precision + F.T @ F / NOISE, state.rhs + F.T @ y / NOISE)

    def predictive(self, state, X, *, key=None, num_draws=0):
        F = features(X)
        cov = jnp.linalg.inv(state.precision)
        mean = F @ (cov @ state.rhs)
        var = jnp.sum((F @ cov) * F, axis=1)
        draws = None
        if num_draws:
            L = jnp.linalg.cholesky(cov)
            w = cov @ state.rhs + jax.random.normal(key, (num_draws, F.shape[1]), F.dtype) @ L.T
            draws = w @ F.T
        return Predictive(mean=mean[None], var=var[None], draws=draws)


def numpy_ucb(X, y, C, beta=4.0):
    """Independent closed form (float64): UCB of the BLR posterior at the candidates."""
    X, y, C = (np.asarray(a, np.float64) for a in (X, y, C))
    f = lambda Z: np.stack(
        [np.ones(len(Z)), Z[:, 0], Z[:, 1], Z[:, 0] ** 2, Z[:, 1] ** 2, Z[:, 0] * Z[:, 1]], 1
    )
    F, Fc = f(X), f(C)
    cov = np.linalg.inv(ALPHA * np.eye(6) + F.T @ F / NOISE)
    mean = Fc @ cov @ F.T @ y / NOISE
    var = np.einsum("ij,jk,ik->i", Fc, cov, Fc)
    return mean + np.sqrt(beta) * np.sqrt(var), mean, var


def check_choice(index, X, y, C, excluded, where):
    ucb, _, _ = numpy_ucb(X, y, C)
    ucb = np.where(excluded, -np.inf, ucb)
    # ties within float32 rounding either way
    assert ucb[index] >= ucb.max() - 1e-4 * (1 + abs(ucb.max())), where


@pytest.fixture(scope="module")
def sim():
    return ThreeGaussians(noise=0.05, size=8)


@pytest.fixture(scope="module")
def config(sim):
    return make_config(sim.candidates, surrogate=BayesianLinearRegression(), acquisition="ucb")


def test_predictive_is_the_closed_form_posterior(sim, config):
    s = init_random(jax.random.key(0), config, sim, N_INIT, num_steps=1)
    d = eqx.filter_jit(decide)(s, config, sim)
    X, y = s.obs.arrays()
    _, mean, var = numpy_ucb(X, y, sim.candidates)
    np.testing.assert_allclose(d.pred.mean[0], mean, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(d.pred.var[0], var, rtol=1e-3, atol=1e-6)


def test_compiled_runner(sim, config):
    s0 = init_random(jax.random.key(1), config, sim, N_INIT, num_steps=STEPS)
    final = run(s0, config, sim)
    X, y = final.obs.arrays()
    C = np.asarray(sim.candidates)
    excluded = np.asarray(s0.measured).copy()
    for t in range(STEPS):
        i = int(final.history.index[t, 0])
        check_choice(i, X[: N_INIT + t], y[: N_INIT + t], C, excluded, f"compiled step {t}")
        excluded[i] = True
    assert len(set(np.asarray(final.history.index[:, 0]).tolist())) == STEPS


def test_host_runner(sim, config, tmp_path):
    with HostRunner(
        config, sim, tmp_path, num_steps=STEPS, num_init=N_INIT, seed=2, progress=False
    ) as runner:
        state = runner.run(SimulatorInstrument(sim, seed=3))
    records = read_journal(tmp_path / "journal.jsonl")
    values = {r["id"]: r["y"] for r in records if r["kind"] == "measurement"}
    index = {r["id"]: r["index"] for r in records if r["kind"] == "measurement"}
    commits = [r for r in records if r["kind"] == "commit"]
    C = np.asarray(sim.candidates)
    ids = list(commits[0]["ids"])  # the seed points
    for c in commits[1:]:
        X = C[[index[i] for i in ids]]
        y = np.asarray([values[i] for i in ids])
        excluded = np.zeros(len(C), bool)
        excluded[[index[i] for i in ids]] = True
        check_choice(c["index"][0], X, y, C, excluded, f"host step {c['step']}")
        ids += c["ids"]
    assert int(state.step) == STEPS and len(commits) == STEPS + 1


def test_agent_with_pending_points(sim, config):
    agent = Agent(config, sim, capacity=10, seed=4, num_init=N_INIT)
    inst = SimulatorInstrument(sim, seed=5)
    for s in agent.suggest(N_INIT):
        agent.ingest(s.id, inst.measure(s.x[None])[0])
    C = np.asarray(sim.candidates)
    for _ in range(3):  # one point at a time: the posterior's UCB argmax
        (s,) = agent.suggest(1)
        X, y = agent.state.obs.arrays()
        check_choice(s.index, X, y, C, np.asarray(agent.state.measured), "agent")
        agent.ingest(s.id, inst.measure(s.x[None])[0])
    # a batch of two: the second pick believes the first at its posterior mean (hyperparameters
    # of this surrogate are fixed, so the fantasy is the closed-form update with that value)
    a, b = agent.suggest(2)
    X, y = agent.state.obs.arrays()
    excluded = np.asarray(agent.state.measured).copy()
    check_choice(a.index, X, y, C, excluded, "agent batch, first")
    _, mean, _ = numpy_ucb(X, y, C)
    excluded[a.index] = True
    X2, y2 = np.vstack([X, C[a.index]]), np.append(y, mean[a.index])
    check_choice(b.index, X2, y2, C, excluded, "agent batch, second (fantasy)")
