"""Hypothesis learning through the ask/tell agent: the same decisions as the campaign's
``decide``, the learner's trace advancing one row per ingest, exact replay, one program."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
import pytest
from conftest import count_compilations

from jaxscope.campaign import decide, hypothesis_config
from jaxscope.host.agent import Agent, replay
from jaxscope.instruments import CombiLibrary
from jaxscope.instruments.base import SimulatorInstrument

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("test_hypothesis_agent"),
]  # one worker: fixtures once
NUM_INIT = 4


@pytest.fixture(scope="module")
def run():
    sim = CombiLibrary.draw(jax.random.key(2), law="second_order")
    config = hypothesis_config(sim, max_steps=8, num_warmup=60, num_samples=60, num_chains=1,
                               num_keep=40)  # fmt: skip
    agent = Agent(config, sim, capacity=16, seed=0, num_init=NUM_INIT)
    inst = SimulatorInstrument(sim, seed=1)
    for s in agent.suggest(NUM_INIT):
        agent.ingest(s.id, inst.measure(s.x[None])[0])
    picks, decisions = [], []
    for i in range(3):
        (s,) = agent.suggest(1)
        if i == 2:  # the compiled campaign's decision from the same state: the same point
            decisions.append(eqx.filter_jit(decide)(agent.state, config, sim))
        picks.append(s)
        with count_compilations() as log:
            agent.ingest(s.id, inst.measure(s.x[None])[0])
        if i == 2:
            decisions.append(len(log))
    return sim, config, agent, picks, decisions


def test_agent_decisions_are_the_campaign_decisions(run):
    sim, config, agent, picks, (d, _) = run
    # suggest() of pick 3 ran decide() on the state before it, as the check did
    assert picks[2].index == int(d.index[0])
    assert np.asarray(picks[2].x).tobytes() == np.asarray(d.x[0]).tobytes()
    for rec in agent.records:
        assert np.array_equal(replay(rec, config, sim), np.asarray(rec.index))


def test_learner_trace_advances_per_decision_and_scores_the_laws(run):
    sim, config, agent, picks, (_, compiles) = run
    model = agent.state.model
    # the model's start (a warm-up fit) and one update per later decision: 1 + 3
    assert int(model.step) == 4
    tr = model.trace
    sel = np.asarray(tr.selected)
    assert np.all(sel[:4] >= 0) and np.all(sel[4:] == -1)
    probs = np.asarray(tr.probs[:4])
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    visits = np.asarray(model.record[:, 0])  # 3 warm-up visits each, then one for the choice
    assert visits.sum() == 10 and visits.min() == 3
    assert len({p.index for p in picks}) == 3  # never the same candidate twice
    assert compiles == 0  # ingest (record) reuses its program
