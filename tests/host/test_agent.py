"""Ask/tell agent: ids, kriging-believer fantasies of pending points, failures, errors, replay."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compilations

from jaxscope.campaign import decide, make_config
from jaxscope.gp import default_jitter
from jaxscope.host.agent import Agent, replay
from jaxscope.host.journal import read_journal
from jaxscope.instruments.base import SimulatorInstrument
from jaxscope.instruments.toy import ThreeGaussians

# its module fixtures are built once: one worker runs the file (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_agent")

NUM_INIT = 4


@pytest.fixture(scope="module")
def sim():
    return ThreeGaussians(noise=0.01, size=8)


@pytest.fixture(scope="module")
def config(sim):
    return make_config(sim.candidates, acquisition="maxvar", mode="map", map_steps=20)


def seeded(sim, config, **kw):
    agent = Agent(config, sim, capacity=20, seed=0, num_init=NUM_INIT, **kw)
    inst = SimulatorInstrument(sim, seed=1)
    for s in agent.suggest(NUM_INIT):
        agent.ingest(s.id, inst.measure(s.x[None])[0])
    return agent, inst


def rbf_posterior_var(X, Xs, p, dtype):
    """Independent NumPy posterior variance of an RBF GP (float64) of the default family: one
    lengthscale per dimension, unit variance, noise variance above BoTorch's floor of 1e-4."""
    ls, var, noise = np.asarray(p["lengthscale"], np.float64), 1.0, float(p["noise"]) + 1e-4
    k = lambda A, B: var * np.exp(-0.5 * (((A[:, None] - B[None]) / ls) ** 2).sum(-1))
    K = k(X, X) + (noise + default_jitter(dtype)) * np.eye(len(X))
    Ks = k(X, Xs)
    return var - np.einsum("ij,ij->j", Ks, np.linalg.solve(K, Ks))


def test_pending_points_are_fantasized(sim, config):
    agent, _ = seeded(sim, config)
    C = np.asarray(sim.candidates, np.float64)
    (first,) = agent.suggest(1)
    batch = agent.suggest(2)  # `first` is pending: believed at its predictive mean
    ids = [first.id] + [s.id for s in batch]
    assert len(set(ids)) == 3 and len(agent.pending) == 3
    rec = agent.records[-1]
    X = np.asarray(agent.state.obs.X[: int(agent.state.obs.count)], np.float64)
    allowed = ~np.asarray(agent.state.measured)
    allowed[first.index] = False
    fantasies = [first.index]
    for s in batch:  # each pick maximises the variance given real data + all fantasies so far
        v = rbf_posterior_var(np.concatenate([X, C[fantasies]]), C, rec.params, np.float32)
        assert allowed[s.index]
        assert v[s.index] >= v[allowed].max() * (1 - 1e-3)
        allowed[s.index] = False
        fantasies.append(s.index)
    # ignoring the pending point would have chosen differently
    v0 = rbf_posterior_var(X, C, rec.params, np.float32)
    a0 = ~np.asarray(agent.state.measured)
    a0[first.index] = False
    assert int(np.argmax(np.where(a0, v0, -np.inf))) != batch[0].index


def test_first_pick_is_the_campaign_decision(sim, config):
    agent, _ = seeded(sim, config)
    agent.suggest(1)  # starts the model state
    agent.ingest(*next(iter([(k, 0.1) for k in agent.pending])))
    d = eqx.filter_jit(decide)(agent.state, config, sim)
    (s,) = agent.suggest(1)
    assert s.index == int(d.index[0]) and s.acq == float(d.acq[0])
    assert np.asarray(s.x).tobytes() == np.asarray(d.x[0]).tobytes()


def test_ingest_records_through_campaign_record(sim, config):
    agent, inst = seeded(sim, config)
    s1, s2 = agent.suggest(2)
    y2, y1 = inst.measure(s2.x[None])[0], inst.measure(s1.x[None])[0]
    agent.ingest(s2.id, y2)  # out of order is fine
    agent.ingest(s1.id, y1)
    st = agent.state
    n = int(st.obs.count)
    assert n == NUM_INIT + 2 and int(st.step) == 2
    assert np.asarray(st.obs.X[n - 2 : n]).tobytes() == np.stack([s2.x, s1.x]).tobytes()
    assert np.allclose(np.asarray(st.obs.y[n - 2 : n]), [y2, y1])
    assert list(np.asarray(st.history.index[:2, 0])) == [s2.index, s1.index]
    best = agent.best(3)
    ys = [v["y"] for v in agent.done.values()]
    assert [b["y"] for b in best] == sorted(ys, reverse=True)[:3]
    assert best[0]["x"].tobytes() == np.asarray(sim.candidates[best[0]["index"]]).tobytes()


def test_errors_lose_nothing(sim, config, tmp_path):
    agent, inst = seeded(sim, config, journal=tmp_path / "agent.jsonl")
    s1, s2 = agent.suggest(2)
    count, pending = int(agent.state.obs.count), dict(agent.pending)

    def unchanged():
        assert int(agent.state.obs.count) == count and agent.pending.keys() == pending.keys()

    for bad, match in [
        (float("nan"), "finite scalar"),
        (np.inf, "finite scalar"),
        (np.ones(2), "finite scalar"),
    ]:
        with pytest.raises(ValueError, match=match):
            agent.ingest(s1.id, bad)
        unchanged()
    with pytest.raises(ValueError, match="unknown suggestion id 'nope'"):
        agent.ingest("nope", 1.0)
    unchanged()
    agent.ingest(s1.id, 0.5)
    with pytest.raises(ValueError, match="already ingested"):
        agent.ingest(s1.id, 0.7)
    assert int(agent.state.obs.count) == count + 1 and float(agent.state.obs.y[count]) == 0.5
    agent.register_failure(s2.id, "tip crash")
    with pytest.raises(ValueError, match="registered as failed"):
        agent.ingest(s2.id, 1.0)
    with pytest.raises(ValueError, match="registered as failed"):
        agent.register_failure(s2.id, "again")
    assert agent.failures == {s2.id: "tip crash"}
    later = agent.suggest(2)
    assert s2.index not in [s.index for s in later]  # a failed point is not proposed again
    rec = read_journal(tmp_path / "agent.jsonl")
    fails = [r for r in rec if r["kind"] == "failure"]
    assert len(fails) == 1 and fails[0]["reason"] == "tip crash" and fails[0]["id"] == s2.id
    meas = [r for r in rec if r["kind"] == "measurement"]
    assert len(meas) == NUM_INIT + 1 and meas[-1]["y"] == 0.5
    with pytest.raises(ValueError, match="max_pending"):
        agent.suggest(agent.max_pending)


def test_every_decision_replays_exactly(sim, config):
    agent, inst = seeded(sim, config)
    a = agent.suggest(1)
    b = agent.suggest(2)
    agent.ingest(b[1].id, inst.measure(b[1].x[None])[0])
    with count_compilations() as log:  # more data, other pending points: same program
        agent.suggest(2)
    assert len(log) == 0
    assert len(agent.records) == 4
    assert agent.records[0].state is None  # the random phase is recorded too
    for rec in agent.records:
        assert np.array_equal(replay(rec, config, sim), np.asarray(rec.index))
    # the record holds the scores of the first pick; that pick is their argmax
    rec = agent.records[2]
    assert int(np.argmax(np.asarray(rec.scores))) == int(rec.index[0])
    assert a[0].index not in np.asarray(rec.index)  # pending points are excluded


def test_agent_rejects_bad_config(sim):
    with pytest.raises(ValueError, match="q=1"):
        Agent(make_config(sim.candidates, q=2), sim, capacity=5)
    # Thompson batches: joint draws from the belief after each fantasy (one fantasy engine)
    ts, _ = seeded(sim, make_config(sim.candidates, acquisition="thompson", map_steps=20))
    picks = [s.index for s in ts.suggest(3)]
    assert len(set(picks)) == 3 and not np.asarray(ts.state.measured)[picks].any()
    agent = Agent(make_config(sim.candidates), jnp.asarray(sim.candidates), capacity=5)
    with pytest.raises(ValueError, match="positive"):
        agent.suggest(0)


def _play(agent, script, value):
    """Drive an agent: ("s", n) suggests n; ("i", k) ingests the k-th pending point with
    ``value(suggestion id, x)``; ("f", k) registers it as failed. Returns the suggestions."""
    out = []
    for op, k in script:
        if op == "s":
            out += [(s.id, s.index) for s in agent.suggest(k)]
            continue
        sid = list(agent.pending)[k]
        if op == "i":
            agent.ingest(sid, value(sid, agent.pending[sid]["x"]))
        else:
            agent.register_failure(sid, "tip crash", exclude=k % 2 == 0)
    return out


def _snapshot(agent):
    st = agent.state
    leaves = [  # the whole state, the surrogate state included (keys through their data)
        np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
                   else x).tobytes()
        for x in jax.tree.leaves(st)
    ]  # fmt: skip
    return (
        {k: (v["index"], v.get("y"), v.get("failed")) for k, v in agent.done.items()},
        {k: v["index"] for k, v in agent.pending.items()},
        np.asarray(st.obs.X).tobytes(),
        np.asarray(st.obs.y).tobytes(),
        np.asarray(st.measured).tobytes(),
        agent.failed.tobytes(),
        agent._counter,
        leaves,
    )


def test_resume_from_journal_continues_exactly(sim, config, tmp_path):
    """An agent rebuilt from its journal equals the one that wrote it: same measurements,
    failures and pending points, and the same next suggestions after more events."""
    path = tmp_path / "agent.jsonl"
    first = [("s", 2), ("i", 0), ("s", 1), ("f", 0), ("s", 3), ("i", 1), ("i", 0)]
    later = [("s", 1), ("i", 0), ("i", 0), ("s", 2), ("f", 1)]
    a, inst = seeded(sim, config, journal=path)
    _play(a, first, lambda sid, x: inst.measure(x[None])[0])
    assert len(a.pending) == 2  # the resumed agent must carry pending points too
    b = Agent.resume(path, config, sim, capacity=20, seed=0, num_init=NUM_INIT)
    assert _snapshot(b) == _snapshot(a)
    # the journal-less reference goes on uninterrupted; b goes on with the same values
    ref, inst = seeded(sim, config)
    _play(ref, first, lambda sid, x: inst.measure(x[None])[0])
    ref_next = _play(ref, later, lambda sid, x: inst.measure(x[None])[0])
    b_next = _play(b, later, lambda sid, x: ref.done[sid]["y"])
    assert b_next == ref_next and len(b_next) == 3
    assert _snapshot(b) == _snapshot(ref)
    # the journal now holds both sessions; resuming it again gives the same agent
    c = Agent.resume(path, config, sim, capacity=20, seed=0, num_init=NUM_INIT)
    assert _snapshot(c) == _snapshot(ref)


def test_resume_refuses_another_agent(sim, config, tmp_path):
    path = tmp_path / "agent.jsonl"
    a, inst = seeded(sim, config, journal=path)
    _play(a, [("s", 2), ("i", 0)], lambda sid, x: inst.measure(x[None])[0])
    with pytest.raises(ValueError, match="settings"):
        Agent.resume(path, config, sim, capacity=20, seed=1, num_init=NUM_INIT)
    other = make_config(sim.candidates, acquisition="ucb", mode="map", map_steps=20)
    with pytest.raises(ValueError, match="the replay chose"):
        Agent.resume(path, other, sim, capacity=20, seed=0, num_init=NUM_INIT)


def test_resume_drops_the_unwritten_part_of_an_interrupted_batch(sim, config, tmp_path):
    path = tmp_path / "agent.jsonl"
    a, _ = seeded(sim, config, journal=path)
    batch = a.suggest(3)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-2]))  # killed after writing the batch's first request
    b = Agent.resume(path, config, sim, capacity=20, seed=0, num_init=NUM_INIT)
    assert {k: v["index"] for k, v in b.pending.items()} == {batch[0].id: batch[0].index}
    (nxt,) = b.suggest(1)
    assert nxt.id not in {s.id for s in batch}  # ids are never reused
