"""One schema, one fold, one replay: a journal written by either host driver resumes in the other.

(a) An agent's journal (seed points, model-phase ingests, one point left pending) resumed by a
:class:`HostRunner` rebuilds the agent's state bit for bit, measures the pending point first
under its id and continues to the end. (b) A runner's journal cut after a commit (a kill) resumed
by :meth:`Agent.resume` is the runner's state at that commit, bit for bit, and suggests valid new
points. Mismatched settings are refused either way.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_same_state

from jaxscope.campaign import make_config
from jaxscope.host import Agent, HostRunner
from jaxscope.host.journal import read_journal
from jaxscope.instruments.base import SimulatorInstrument
from jaxscope.instruments.toy import ThreeGaussians

# its module fixtures are built once: one worker runs the file (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_interchange")

NUM_INIT, NUM_STEPS, SEED, K = 3, 6, 0, 3


@pytest.fixture(scope="module")
def sim():
    return ThreeGaussians(noise=0.01, size=8)


@pytest.fixture(scope="module")
def config(sim):
    return make_config(sim.candidates, acquisition="ucb", mode="map", map_steps=20)


def kinds(records, kind):
    return [r for r in records if r["kind"] == kind]


def test_agent_journal_resumes_in_a_runner(tmp_path, sim, config):
    path = tmp_path / "journal.jsonl"  # the runner's journal name in its folder
    agent = Agent(config, sim, capacity=NUM_STEPS, seed=SEED, num_init=NUM_INIT, journal=path)
    lab = SimulatorInstrument(sim, seed=1)
    for s in agent.suggest(NUM_INIT):  # random phase
        agent.ingest(s.id, lab.measure(s.x[None])[0])
    a, b = agent.suggest(2)  # decided from state 0
    agent.ingest(b.id, lab.measure(b.x[None])[0])
    c, d = agent.suggest(2)  # decided from state 1, with `a` pending (fantasised)
    agent.ingest(c.id, lab.measure(c.x[None])[0])
    agent.ingest(a.id, lab.measure(a.x[None])[0])  # at state 2, with the decision of state 0
    assert list(agent.pending) == [d.id] and int(agent.state.step) == 3
    agent.journal.close()
    n = int(agent.state.obs.count)

    def runner():
        return HostRunner(
            config, sim, tmp_path, num_steps=NUM_STEPS, num_init=NUM_INIT, seed=SEED,
            progress=False,
        )  # fmt: skip

    with runner() as r:
        # the replay rebuilds the agent's state exactly (its decisions, from their moments)
        assert_same_state(r.run(None, max_steps=0), agent.state)
        assert list(r.log.pending) == [d.id] and r.num_measured == n
        state = r.run(SimulatorInstrument(sim, seed=2, start=r.num_measured))
    records = read_journal(path)
    starts = [s["settings"] for s in kinds(records, "start")]
    assert [s["driver"] for s in starts] == ["agent", "runner"] and set(starts[0]) == set(starts[1])
    assert int(state.step) == NUM_STEPS and int(state.obs.count) == NUM_INIT + NUM_STEPS
    # the final observations start with exactly the agent's measured points
    X, y = np.asarray(state.obs.X), np.asarray(state.obs.y)
    assert X[:n].tobytes() == np.asarray(agent.state.obs.X[:n]).tobytes()
    assert y[:n].tobytes() == np.asarray(agent.state.obs.y[:n]).tobytes()
    # the pending suggestion is measured next, under its id, and never requested again
    assert X[n].tobytes() == d.x.tobytes()
    commits = kinds(records, "commit")  # the seed commit, the agent's 3 steps, then d
    assert [c["decision"] for c in commits[1:5]] == [1, 2, 1, None] and commits[4]["ids"] == [d.id]
    assert [q["id"] for q in kinds(records, "request")].count(d.id) == 1
    ids = [m["id"] for m in kinds(records, "measurement")]
    assert len(ids) == len(set(ids)) == NUM_INIT + NUM_STEPS
    # and the runner's own journal resumes again (a complete run: nothing appended)
    before = path.read_bytes()
    with runner() as r:
        assert_same_state(r.run(None), state)
    assert path.read_bytes() == before


def test_agent_writes_the_runner_schema_and_a_kill_inside_ingest_loses_nothing(
    tmp_path, sim, config
):
    """The agent's journal: the runner's ``start`` keys, a seed ``commit`` when the model phase
    starts, one ``commit`` per model-phase ingest naming the decision it records with (``null``
    for a random-phase point ingested after the model phase started). A kill between an
    ingest's ``measurement`` and its ``commit`` is completed on resume, bit for bit."""
    path = tmp_path / "agent.jsonl"

    def play(agent):
        lab = SimulatorInstrument(sim, seed=1)
        seeds = agent.suggest(NUM_INIT + 1)
        for s in seeds[:NUM_INIT]:
            agent.ingest(s.id, lab.measure(s.x[None])[0])
        (t,) = agent.suggest(1)  # the model phase starts with seeds[-1] still out
        agent.ingest(seeds[-1].id, lab.measure(seeds[-1].x[None])[0])
        agent.ingest(t.id, lab.measure(t.x[None])[0])
        return seeds, t

    kw = dict(capacity=NUM_STEPS, seed=SEED, num_init=NUM_INIT)
    a = Agent(config, sim, journal=path, **kw)
    seeds, t = play(a)
    a.journal.close()
    rec = read_journal(path)
    with HostRunner(config, sim, tmp_path / "r", num_steps=1, num_init=1, progress=False) as r:
        assert set(rec[0]["settings"]) == set(r.settings)  # one set of start keys
    commits = kinds(rec, "commit")
    assert commits[0] == {**commits[0], "step": -1, "ids": [s.id for s in seeds[:NUM_INIT]]}
    assert [c["ids"] for c in commits[1:]] == [[seeds[-1].id], [t.id]]
    assert [c["decision"] for c in commits[1:]] == [None, 1]  # decision 1 proposed t
    assert [c["step"] for c in commits[1:]] == [0, 1] and commits[2]["index"] == [t.index]
    # killed after the last measurement line, before its commit
    lines = path.read_bytes().splitlines(keepends=True)
    assert rec[-1]["kind"] == "commit" and rec[-2]["kind"] == "measurement"
    path.write_bytes(b"".join(lines[:-1]))
    b = Agent.resume(path, config, sim, **kw)
    ref = Agent(config, sim, **kw)  # uninterrupted, no journal
    play(ref)
    assert_same_state(b.state, ref.state)
    assert kinds(read_journal(path), "commit")[-1]["ids"] == [t.id]  # completed on resume
    assert [s.index for s in b.suggest(2)] == [s.index for s in ref.suggest(2)]
    assert_same_state(b.records[-1].state, ref.records[-1].state)


def test_runner_journal_resumes_in_an_agent(tmp_path, sim, config):
    run_dir = tmp_path / "run"
    with HostRunner(
        config, sim, run_dir, num_steps=NUM_STEPS, num_init=NUM_INIT, seed=SEED, progress=False
    ) as r:
        inst = SimulatorInstrument(sim, seed=1)
        at_k = r.run(inst, max_steps=K)
        r.run(inst)
    # a kill right after step K's commit: the journal up to that line
    lines = (run_dir / "journal.jsonl").read_bytes().splitlines(keepends=True)
    records = read_journal(run_dir / "journal.jsonl")
    cut = next(i for i, e in enumerate(records) if e["kind"] == "commit" and e["step"] == K - 1)
    path = tmp_path / "agent.jsonl"
    path.write_bytes(b"".join(lines[: cut + 1]))

    agent = Agent.resume(path, config, sim, capacity=NUM_STEPS, seed=SEED, num_init=NUM_INIT)
    n = int(at_k.obs.count)
    st = agent.state
    assert int(st.step) == K and int(st.obs.count) == n == NUM_INIT + K
    assert np.asarray(st.obs.X[:n]).tobytes() == np.asarray(at_k.obs.X[:n]).tobytes()
    assert np.asarray(st.obs.y[:n]).tobytes() == np.asarray(at_k.obs.y[:n]).tobytes()
    assert_same_state(st, at_k)  # the whole state: the same keys, decisions and records
    assert not agent.pending and len(agent.done) == n
    # it goes on: valid, new, distinct points under new ids
    new = agent.suggest(2)
    C = np.asarray(sim.candidates)
    idx = [s.index for s in new]
    assert len(set(idx)) == 2 and not np.asarray(st.measured)[idx].any()
    assert all(s.x.tobytes() == C[s.index].tobytes() and np.isfinite(s.acq) for s in new)
    assert not {s.id for s in new} & {e.get("id") for e in records}
    agent.ingest(new[0].id, 0.25)
    assert int(agent.state.step) == K + 1 and float(agent.state.obs.y[n]) == 0.25
    after = read_journal(path)
    assert [s["settings"]["driver"] for s in kinds(after, "start")] == ["runner", "agent"]
    assert kinds(after, "commit")[-1]["ids"] == [new[0].id]
    # the mixed journal resumes again in an agent, which has the same state and pending point
    again = Agent.resume(path, config, sim, capacity=NUM_STEPS, seed=SEED, num_init=NUM_INIT)
    assert_same_state(again.state, agent.state)
    assert list(again.pending) == [new[1].id]


def test_mismatched_settings_are_refused_across_drivers(tmp_path, sim, config):
    path = tmp_path / "journal.jsonl"
    agent = Agent(config, sim, capacity=NUM_STEPS, seed=SEED, num_init=NUM_INIT, journal=path)
    agent.suggest(NUM_INIT)
    agent.journal.close()
    with pytest.raises(ValueError, match=r"written with settings .*\['num_init'\]"):
        HostRunner(config, sim, tmp_path, num_steps=NUM_STEPS, num_init=NUM_INIT + 1,
                   seed=SEED, progress=False)  # fmt: skip
    q2 = make_config(sim.candidates, acquisition="ucb", mode="map", map_steps=20, q=2)
    with pytest.raises(ValueError, match=r"\['q'\]"):
        HostRunner(q2, sim, tmp_path, num_steps=NUM_STEPS, num_init=NUM_INIT, seed=SEED,
                   progress=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"\['meta'\]"):
        HostRunner(config, sim, tmp_path, num_steps=NUM_STEPS, num_init=NUM_INIT, seed=SEED,
                   progress=False, meta={"problem": "other"})  # fmt: skip
    assert len(read_journal(path)) == 1 + NUM_INIT  # refusals wrote nothing
    # a runner's journal, resumed by an agent with another seed
    with HostRunner(config, sim, tmp_path / "run", num_steps=1, num_init=NUM_INIT, seed=SEED,
                    progress=False) as r:  # fmt: skip
        r.run(SimulatorInstrument(sim, seed=1), max_steps=0)
    with pytest.raises(ValueError, match=r"written with settings .*\['seed'\]"):
        Agent.resume(tmp_path / "run" / "journal.jsonl", config, sim, capacity=1,
                     seed=SEED + 1, num_init=NUM_INIT)  # fmt: skip
