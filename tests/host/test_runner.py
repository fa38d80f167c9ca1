"""Host-driven runner: chosen == measured, failures in the journal, hooks (veto/add/acquisition/stop)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compilations

from jaxscope.campaign import make_config, run
from jaxscope.host import HostRunner
from jaxscope.host.journal import read_journal
from jaxscope.instruments import CallbackProblem, as_callback
from jaxscope.instruments.base import SimulatorInstrument
from jaxscope.instruments.toy import ThreeGaussians

# its module fixtures are built once: one worker runs the file (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_runner")

NUM_INIT, NUM_STEPS = 3, 6


@pytest.fixture(scope="module")
def sim():
    return ThreeGaussians(noise=0.01, size=8)


@pytest.fixture(scope="module")
def config(sim):
    return make_config(sim.candidates, acquisition="ucb", mode="map", map_steps=20)


def kinds(records, *names):
    return [r for r in records if r["kind"] in names]


class Recorder:
    """An instrument that remembers every array it was asked to measure."""

    def __init__(self, inner):
        self.inner, self.dim, self.asked = inner, inner.dim, []

    def measure(self, X):
        self.asked.append(np.array(X, copy=True))
        return self.inner.measure(X)


def test_point_chosen_is_point_measured(tmp_path, sim, config):
    inst = Recorder(SimulatorInstrument(sim, seed=1))
    runner = HostRunner(
        config, sim, tmp_path, num_steps=NUM_STEPS, num_init=NUM_INIT, progress=False
    )
    state = runner.run(inst)
    records = runner.journal.records
    asked = np.concatenate(inst.asked)  # (num_init + steps, 2): what reached the instrument
    requested = np.asarray([r["x"] for r in kinds(records, "request")], np.float32)
    measured = np.asarray([r["x"] for r in kinds(records, "measurement")], np.float32)
    stored = np.asarray(state.obs.X[: int(state.obs.count)])
    chosen = np.asarray(state.history.x).reshape(-1, 2)
    C = np.asarray(sim.candidates)
    assert asked.shape == (NUM_INIT + NUM_STEPS, 2)
    # one value everywhere, bit for bit: instrument input, journal, buffer, history, candidates
    for other in (requested, measured, stored):
        assert other.tobytes() == asked.tobytes()
    assert chosen.tobytes() == asked[NUM_INIT:].tobytes()
    idx = np.asarray(state.history.index).ravel()
    assert C[idx].tobytes() == chosen.tobytes()
    # and each chosen point is the argmax of the acquisition the step computed (decide again)
    ys = np.asarray([r["y"] for r in kinds(records, "measurement")], np.float32)
    assert np.asarray(state.obs.y[: int(state.obs.count)]).tobytes() == ys.tobytes()
    y_inst = np.concatenate([y for _, y in inst.inner.history])
    assert y_inst.astype(np.float32).tobytes() == ys.tobytes()
    assert len(kinds(records, "commit")) == NUM_STEPS + 1  # seed phase + steps


def test_instrument_cannot_move_the_point(tmp_path, sim, config):
    class Mover:
        dim = 2

        def measure(self, X):
            X[0, 0] = 0.5  # tries to measure elsewhere
            return np.zeros(len(X))

    runner = HostRunner(
        config,
        sim,
        tmp_path,
        num_steps=1,
        num_init=NUM_INIT,
        progress=False,
        retries=0,
        max_attempts=3,
    )
    with pytest.raises(RuntimeError, match="not enough measurable candidates|no committed"):
        runner.run(Mover())
    fails = kinds(runner.journal.records, "failure")
    assert fails and all("read-only" in r["reason"] for r in fails)
    assert not kinds(runner.journal.records, "measurement")


def test_failures_are_journaled_and_campaign_continues(tmp_path, sim, config):
    # calls 0..: seed batch is call 0; step t is call t+1 unless failures intervene
    inst = SimulatorInstrument(sim, seed=1, fail_calls={2, 3, 5})
    runner = HostRunner(
        config, sim, tmp_path, num_steps=NUM_STEPS, num_init=NUM_INIT, progress=False, retries=1
    )
    runner.run(inst, max_steps=1)
    runner.run(inst, max_steps=1)  # a resume: restores the checkpoint (its first use compiles)
    with count_compilations() as log:  # exclusions and re-decisions change values, not shapes
        state = runner.run(inst)
    assert len(log) == 0
    records = read_journal(tmp_path / "journal.jsonl")
    fails = kinds(records, "failure")
    assert len(fails) == 3 and all("simulated instrument failure" in f["reason"] for f in fails)
    # call 2 failed, its retry (call 3) failed too: that candidate is excluded, never measured
    assert fails[0]["index"] == fails[1]["index"] and fails[0]["id"] != fails[1]["id"]
    dead = fails[0]["index"]
    assert not runner.mask[dead] and dead not in np.asarray(state.history.index)
    # call 5 failed once; the step decided again and measured that same point on call 6
    meas = {r["id"]: r for r in kinds(records, "measurement")}
    retried = [r for r in kinds(records, "request") if r["index"] == fails[2]["index"]]
    assert len(retried) == 2 and retried[1]["id"] in meas
    assert int(state.step) == NUM_STEPS and len(meas) == NUM_INIT + NUM_STEPS
    assert inst.calls == 1 + NUM_STEPS + 3


def test_nan_and_wrong_shape_are_failures(tmp_path, sim, config):
    class Flaky:
        dim, calls = 2, 0

        def measure(self, X):
            self.calls += 1
            if self.calls == 2:
                return np.array([np.nan])
            if self.calls == 3:
                return np.zeros(3)
            return np.asarray(sim.truth(jnp.asarray(X)))

    runner = HostRunner(config, sim, tmp_path, num_steps=2, num_init=NUM_INIT, progress=False)
    state = runner.run(Flaky())
    reasons = [r["reason"] for r in kinds(runner.journal.records, "failure")]
    assert len(reasons) == 2 and "non-finite" in reasons[0] and "shape (3,)" in reasons[1]
    assert int(state.step) == 2 and np.all(np.isfinite(np.asarray(state.obs.y)))


def test_hooks_veto_add_acquisition_stop(tmp_path, sim, config):
    C = np.asarray(sim.candidates)
    seen = {}

    def hook(ctx):
        # the journal on disk already holds the previous step's measurement and commit
        on_disk = read_journal(tmp_path / "journal.jsonl")
        last = [r for r in on_disk if r["kind"] == "commit"][-1]
        measured = {r["id"] for r in on_disk if r["kind"] == "measurement"}
        assert last["step"] == ctx.step - 1 and set(last["ids"]) <= measured
        seen["checked"] = seen.get("checked", 0) + 1
        if ctx.step == 0 and ctx.attempt == 0:
            seen["vetoed"] = int(ctx.index[0])
            ctx.veto(reason="operator: not there")
        if ctx.step == 1 and ctx.attempt == 0:
            ctx.add_points(C[[0]])
        if ctx.step == 2 and ctx.attempt == 0:
            ctx.set_acquisition("maxvar")
        if ctx.step == 3:
            var = np.asarray(ctx.decision.pred.var).mean(0)
            allowed = ctx.mask & ~np.asarray(ctx.state.measured)
            seen["maxvar"] = (var[ctx.index[0]], np.max(var[allowed]))
        if ctx.step == 4:
            ctx.stop("enough")

    runner = HostRunner(
        config, sim, tmp_path, num_steps=NUM_STEPS, num_init=NUM_INIT, hooks=[hook], progress=False
    )
    inst = SimulatorInstrument(sim, seed=1)
    state = runner.run(inst)
    rec = runner.journal.records
    assert seen["checked"] >= 5  # every decision came after the journal was on disk
    # veto: journaled, excluded, never measured
    (veto,) = kinds(rec, "veto")
    assert veto["index"] == seen["vetoed"] and veto["reason"] == "operator: not there"
    assert seen["vetoed"] not in np.asarray(state.history.index)
    # add: step 1 measured the added corner, under the add's id
    (add,) = kinds(rec, "add")
    commit1 = next(r for r in kinds(rec, "commit") if r["step"] == 1)
    assert commit1["ids"] == [add["id"]] and commit1["index"] == [0]
    assert np.asarray(state.history.x[1, 0]).tobytes() == C[0].tobytes()
    # acquisition: from step 2 on the policy is maxvar, and maxvar picks the max-variance point
    (acq,) = kinds(rec, "acquisition")
    assert acq["name"] == "maxvar" and acq["policy"] == 1 and len(runner.config.acquisitions) == 2
    assert [r["policy"] for r in kinds(rec, "commit")[1:]] == [0, 0, 1, 1]
    np.testing.assert_allclose(*seen["maxvar"], rtol=1e-5)  # ties broken either way
    # stop: step 4 was not measured; running again resumes to the end
    assert int(state.step) == 4 and kinds(rec, "stop")[0]["reason"] == "enough"
    runner.hooks = []
    state = runner.run(SimulatorInstrument(sim, seed=1, start=runner.num_measured))
    assert int(state.step) == NUM_STEPS
    runner.close()


def test_host_and_compiled_runners_agree(tmp_path, sim, config):
    """Two runners on the same step: the host loop and the compiled ``lax.scan`` (with the
    instrument behind ``pure_callback``) make the same choices and store the same data."""
    with HostRunner(config, sim, tmp_path, num_steps=3, num_init=NUM_INIT, progress=False) as r:
        s0 = r.run(SimulatorInstrument(sim, seed=1), max_steps=0)  # seed phase only
        host = r.run(SimulatorInstrument(sim, seed=1, start=r.num_measured))
    inst = SimulatorInstrument(sim, seed=1, start=NUM_INIT)
    problem = CallbackProblem(candidates=sim.candidates, fn=as_callback(inst))
    comp = run(s0, config, problem)
    assert np.array_equal(np.asarray(host.history.index), np.asarray(comp.history.index))
    assert np.asarray(host.obs.X).tobytes() == np.asarray(comp.obs.X).tobytes()
    assert np.asarray(host.obs.y).tobytes() == np.asarray(comp.obs.y).tobytes()
    for k in host.model.params:
        np.testing.assert_allclose(host.model.params[k], comp.model.params[k], rtol=1e-4)


def test_batch_partial_failure_keeps_the_good_value(tmp_path, sim):
    """q = 2: one row of a batch fails; its sibling's value is kept (not measured again)."""
    config = make_config(sim.candidates, acquisition="ucb", mode="map", map_steps=20, q=2)

    class HalfBroken:
        dim, calls = 2, 0

        def __init__(self):
            self.asked = []

        def measure(self, X):
            self.calls += 1
            self.asked += [tuple(x) for x in np.asarray(X)]
            y = np.array(sim.truth(jnp.asarray(X)))
            if self.calls == 2:
                y[1] = np.nan
            return y

    inst = HalfBroken()
    with HostRunner(config, sim, tmp_path, num_steps=3, num_init=NUM_INIT, progress=False) as r:
        state = r.run(inst)
        rec = r.journal.records
    meas = kinds(rec, "measurement")
    (fail,) = kinds(rec, "failure")
    assert "non-finite" in fail["reason"]
    commits = kinds(rec, "commit")[1:]
    committed = [i for c in commits for i in c["ids"]]
    # every measurement is committed exactly once; the kept value was not measured again
    assert sorted(committed) == sorted(m["id"] for m in meas if m["step"] >= 0)
    assert len(inst.asked) == len(set(inst.asked)) + 1  # only the failed point was re-asked
    kept = next(m for m in meas if m["step"] == 1)
    assert commits[1]["ids"][0] == kept["id"]  # queued first in the step's batch
    n = int(state.obs.count)
    assert n == NUM_INIT + 3 * 2 and np.all(np.isfinite(np.asarray(state.obs.y[:n])))
    np.testing.assert_array_equal(
        np.asarray(state.obs.y[:n]), np.asarray(sim.truth(state.obs.X[:n]))
    )
