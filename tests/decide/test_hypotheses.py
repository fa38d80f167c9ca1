"""The hypothesis-selection engine: padded stacking, one program, restarts, rules, the true law.

Small NUTS sizes; one learner and its compiled init/update are shared by the module's tests.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from conftest import count_compilations
from jaxscope.probmodels import ProbModel

from jaxscope.decide import HypothesisLearner, HypothesisSet, StackedFamily
from jaxscope.gp import Observations, Standardizer, StructuredFamily

# its module fixtures are built once: one worker runs the file (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_hypotheses")


def _second_order(x, p):
    b = 1.0 - x[0] / p["xc"]
    ok = b > 0
    return jnp.where(ok, p["S0"] * jnp.where(ok, b, 1.0) ** p["beta"], 0.0) + p["C"]


def _smeared(x, p):
    return p["C"] + p["S0"] * jax.nn.sigmoid((p["xc"] - x[0]) / p["w"])


PHYSICS = {
    "second_order": ProbModel(_second_order, {
        "xc": dist.Uniform(0.3, 0.7), "beta": dist.Uniform(0.1, 1.0),
        "S0": dist.LogNormal(0.0, 0.5), "C": dist.Normal(0.0, 1.0)}),
    "smeared": ProbModel(_smeared, {
        "xc": dist.Uniform(0.3, 0.7), "w": dist.HalfNormal(0.05),
        "S0": dist.LogNormal(0.0, 0.5), "C": dist.Normal(0.0, 1.0)}),
    "linear": ProbModel(lambda x, p: p["a"] + p["b"] * x[0], {
        "a": dist.Normal(0.0, 1.0), "b": dist.Normal(0.0, 1.0)}),
}  # fmt: skip
CANDS = jnp.linspace(0.0, 1.0, 50)[:, None]


def truth(x):
    x = np.asarray(x)
    return 1.2 * np.clip(1 - x / 0.5, 0, None) ** 0.35 + 0.1


def _obs(idx, capacity=24, seed=0):
    rs = np.random.RandomState(seed)
    X = np.asarray(CANDS)[idx]
    return Observations.empty(capacity, 1).extend(X, truth(X[:, 0]) + 0.03 * rs.randn(len(idx)))


@pytest.fixture(scope="module")
def learner():
    hs = HypothesisSet.from_physics(PHYSICS, kernel=None)
    return HypothesisLearner(hs, CANDS, num_warmup=150, num_samples=150, num_keep=60)


@pytest.fixture(scope="module")
def compiled():
    init = eqx.filter_jit(lambda s, k, o: s.init(k, o))
    update = eqx.filter_jit(lambda s, st, o, k: s.update(st, o, k))
    return init, update


def test_padded_density_equals_each_family_density():
    hs = HypothesisSet.from_physics(PHYSICS, kernel="matern52")
    obs = _obs(np.arange(0, 50, 5))
    scaler = Standardizer.fit(obs)
    obs_s = scaler.apply(obs)
    rs = np.random.RandomState(0)
    pu = hs.physics_sizes[0]
    assert pu == 4 and list(hs.num_params()) == [4, 4, 2]
    for h, fam in enumerate(hs.families):
        fam = fam.scaled(scaler)
        u_dict = {k: jnp.asarray(0.3 * rs.randn()) for k in fam.names}
        names_phys = sorted(fam.physics.priors)
        used = len(names_phys)
        pad = 0.3 * rs.randn(pu - used)
        flat = jnp.concatenate([
            jnp.stack([u_dict[k] for k in names_phys]), jnp.asarray(pad),
            jnp.stack([u_dict[k] for k in sorted(fam.residual)]),
        ])  # fmt: skip
        stacked = StackedFamily(hs, jnp.asarray(h), scaler.shift, scaler.scale)
        got = float(stacked.log_density_unconstrained({"u": flat}, obs_s))
        ref = float(fam.log_density_unconstrained(u_dict, obs_s))
        ref += float(np.sum(-0.5 * pad**2 - 0.5 * np.log(2 * np.pi)))
        assert got == pytest.approx(ref, rel=1e-5, abs=1e-4)
        # the flat vector maps back to the family's constrained values
        vals = hs.physics_values(h, flat)
        want = fam.constrain(u_dict)
        for k in names_phys:
            assert float(vals[k]) == pytest.approx(float(want[k]), rel=1e-6)


def test_shared_residual_is_required():
    fams = (StructuredFamily(PHYSICS["linear"]), StructuredFamily(PHYSICS["linear"], kernel=None))
    with pytest.raises(ValueError, match="share the residual"):
        HypothesisSet(fams, ("a", "b"))
    with pytest.raises(ValueError, match="hypothesis_rule"):
        HypothesisLearner(HypothesisSet.from_physics(PHYSICS), CANDS, hypothesis_rule="greedy")


def test_learner_finds_the_true_law_and_updates_without_recompiling(learner, compiled):
    init, update = compiled
    idx = [0, 5, 10, 15, 20, 25, 30, 40, 49]
    obs = _obs(idx)
    state = init(learner, jax.random.key(0), obs)
    probs = np.asarray(state.scores.probs)
    assert int(np.argmax(probs)) == 0 and probs[0] > 0.5  # second order, from 9 points
    assert int(state.step) == 1 and float(state.record[:, 0].sum()) == 3.0  # all fitted
    xc = np.asarray(learner.physics_samples(state, 0)["xc"])
    assert abs(np.median(xc) - 0.5) < 0.06
    obs = obs.add(CANDS[12], float(truth(CANDS[12, 0])[()]))
    state = update(learner, state, obs, jax.random.key(1))
    with count_compilations() as log:
        obs2 = obs.add(CANDS[35], float(truth(CANDS[35, 0])[()]))
        state2 = update(learner, state, obs2, jax.random.key(2))
        jax.block_until_ready(state2)
    assert len(log) == 0
    assert int(state2.step) == 3
    # warm-up ended: the visits are 3 each and the rewards the fraction of wins
    np.testing.assert_allclose(np.asarray(state2.record[:, 0]), [3, 3, 3])
    assert float(np.asarray(state2.record[:, 1]).sum()) == pytest.approx(1.0)
    tr = state2.trace
    assert list(np.asarray(tr.selected[:3])) == [int(s) for s in np.asarray(tr.selected[:3])]
    assert np.all(np.asarray(tr.selected[3:]) == -1)
    # the newest point's log density was scored under the previous fit (finite, accumulated)
    lpd = np.asarray(tr.lpd_new[:3])
    assert np.all(np.isfinite(lpd[1:])) and np.all(lpd[0] == 0.0)
    # predictive in original units, from the selected hypothesis
    pred = learner.predictive(state2, CANDS)
    assert np.sqrt(np.mean((np.asarray(pred.mean.mean(0)) - truth(CANDS[:, 0])) ** 2)) < 0.08


def test_restarts_run_exactly_as_many_times_as_allowed(compiled):
    """With ``stuck_nats`` below zero every chain counts as stuck: the loop restarts
    ``num_restarts`` times, no more."""
    init, _ = compiled
    hs = HypothesisSet.from_physics({"linear": PHYSICS["linear"]}, kernel=None)
    obs = _obs([0, 10, 20, 30, 40, 49])
    for n in (0, 2):
        lr = HypothesisLearner(
            hs, CANDS, num_warmup=50, num_samples=50, num_keep=20, num_restarts=n,
            stuck_nats=-1e9,
        )  # fmt: skip
        state = init(lr, jax.random.key(0), obs)
        assert list(np.asarray(state.scores.restarts)) == [n]
    lr = HypothesisLearner(hs, CANDS, num_warmup=50, num_samples=50, num_keep=20, num_restarts=2)
    assert list(np.asarray(init(lr, jax.random.key(0), obs).scores.restarts)) == [0]


def test_rules_pick_as_specified(learner, compiled):
    init, _ = compiled
    state = init(learner, jax.random.key(0), _obs([0, 10, 20, 30, 40, 49]))
    state = eqx.tree_at(lambda s: s.record, state, jnp.asarray([[3, -0.2], [3, 0.6], [3, 0.1]]))
    probs = jnp.asarray([0.7, 0.2, 0.1])
    state = eqx.tree_at(lambda s: s.scores.probs, state, probs)
    keys = jax.random.split(jax.random.key(5), 4000)
    for rule, want in [
        ("eps_greedy", [0.4 / 3, 1 - 0.4 + 0.4 / 3, 0.4 / 3]),
        ("softmax", np.exp([-0.2, 0.6, 0.1]) / np.exp([-0.2, 0.6, 0.1]).sum()),
        ("thompson", [0.7, 0.2, 0.1]),
    ]:
        lr = dataclasses.replace(learner, hypothesis_rule=rule)
        picks = np.asarray(jax.vmap(lambda k, lr=lr: lr.choose(k, state))(keys))
        freq = np.bincount(picks, minlength=3) / len(picks)
        np.testing.assert_allclose(freq, want, atol=0.03)
