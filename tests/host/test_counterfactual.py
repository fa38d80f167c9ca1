"""Counterfactual decisions on a recorded journal: the recorded config reproduces every recorded
choice and acquisition value bit for bit (and the replayed state); another rule equals a direct
``decide`` on the state the existing replay rebuilds, and its values the closed-form EI; another
model equals a fold written here with the campaign's public ``init``/``decide``/``record``; the
command writes the same numbers as JSON + a figure; bad input is refused by name."""

from __future__ import annotations

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compilations
from recorded_run import STEPS, recorded_run
from scipy.stats import norm

from jaxscope.campaign import init, make_config
from jaxscope.cli.main import main
from jaxscope.cli.replay_cmd import campaign_setup
from jaxscope.host import host_view, replay_state
from jaxscope.host.counterfactual import counterfactual
from jaxscope.host.session import decide_jit, record_jit, state_key

pytestmark = pytest.mark.xdist_group("test_nsid")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return recorded_run(tmp_path_factory)


def commits(records):
    return [r for r in records if r["kind"] == "commit" and r["step"] >= 0]


def test_the_recorded_config_reproduces_every_decision(run):
    _, records, sim, config = run
    cf = counterfactual(records, config, sim)
    assert cf.summary["agreement"] == 1.0 and cf.summary["median_rank"] == 1.0
    assert cf.summary["mean_gap"] == 0.0 and cf.summary["truth_gain"] == 0.0
    for s, c in zip(cf.steps, commits(records), strict=True):
        assert s["chosen"] == s["recorded"] == c["index"]
        assert s["chosen_acq"] == c["acq"]  # float32 values through JSON: exactly
        assert not s["forced"] and s["rank"] == [1]
    want = replay_state(records, config, host_view(sim), num_steps=STEPS, seed=0).state
    for x, y in zip(jax.tree.leaves(cf.state), jax.tree.leaves(want), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def test_another_rule_is_a_direct_decide_on_the_replayed_state(run):
    _, records, sim, config = run
    ei = make_config(sim.candidates, acquisition="ei", mode="map")
    cut = commits(records)[1]["seq"] + 1
    with count_compilations() as first:
        counterfactual(records[:cut], ei, sim, rule=0)  # two steps: compiles what it needs
    with count_compilations() as log:
        cf = counterfactual(records, ei, sim, rule=0)  # five steps: nothing more
    assert first and not log
    view = host_view(sim)
    seen = [r for r in records if r["kind"] == "measurement"]
    for s, c in zip(cf.steps, commits(records), strict=True):
        # the state before this commit, rebuilt by the existing replay of the recorded config
        before = [r for r in records if r["seq"] < c["seq"]]
        st = replay_state(before, config, view, num_steps=STEPS, seed=0).state
        st = eqx.tree_at(lambda t: t.policy.rule, st, jnp.asarray(0, jnp.int32))
        d = decide_jit(st, ei, view)  # the same inputs, compiled once
        assert s["chosen"] == np.asarray(d.index).tolist()
        scores = np.asarray(d.scores, np.float64)
        assert s["rank"][0] == 1 + int(np.sum(scores > scores[c["index"][0]]))
        # closed-form EI (scipy) from its predictive and the best value measured so far
        best = max(r["y"] for r in seen if r["step"] < c["step"])  # committed before it
        for who in ("chosen", "recorded"):
            m, sd = s[f"mean_{who}"], s[f"sd_{who}"]
            z = (m - best) / sd
            np.testing.assert_allclose(s[f"score_{who}"], sd * (norm.pdf(z) + z * norm.cdf(z)),
                                       rtol=2e-3, atol=1e-7)  # fmt: skip
        assert s["gap"] >= 0.0  # the chosen point maximises the rule


def test_another_model_is_a_fold_of_init_decide_record(run):
    _, records, sim, _ = run
    fixed = make_config(sim.candidates, acquisition="maxvar", mode="fixed")
    cf = counterfactual(records, fixed, sim, rule=0)
    view = host_view(sim)
    C = np.asarray(sim.candidates)
    values = {r["id"]: r["y"] for r in records if r["kind"] == "measurement"}
    seed_commit = next(r for r in records if r["kind"] == "commit" and r["step"] == -1)
    ids = seed_commit["ids"]
    idx0 = [r["index"] for r in records if r["kind"] == "measurement" and r["id"] in ids]
    state = init(fixed, view, C[idx0], np.asarray([values[i] for i in ids], np.float32),
                 num_steps=STEPS, key=state_key(0))  # fmt: skip
    for s, c in zip(cf.steps, commits(records), strict=True):
        d = decide_jit(state, fixed, view)
        assert s["chosen"] == np.asarray(d.index).tolist()
        var = np.asarray(d.pred.var)[0]
        np.testing.assert_allclose(s["chosen_acq"][0], var.max(), rtol=1e-6)  # maxvar: the max
        i = jnp.asarray(c["index"], jnp.int32)
        d = eqx.tree_at(lambda t: (t.index, t.x), d, (i, jnp.asarray(C[c["index"]])))
        state = record_jit(state, fixed, d, jnp.asarray([values[k] for k in c["ids"]]), view)
    assert cf.summary["agreement"] < 1.0  # maximum variance is not UCB here


def test_command_writes_the_same_numbers_and_a_figure(run, tmp_path):
    out, records, sim, _ = run
    h5 = tmp_path / "run.h5"
    argv = ["counterfactual", str(out), "--acquisition", "ei", "--out", str(tmp_path / "cf"),
            "--export-nsid", str(h5)]  # fmt: skip
    assert main(argv) == 0
    got = json.loads((tmp_path / "cf" / "counterfactual.json").read_text())
    want = counterfactual(records, make_config(sim.candidates, acquisition="ei"), sim, rule=0)
    assert got["summary"] == pytest.approx(want.summary)
    assert [s["chosen"] for s in got["steps"]] == [s["chosen"] for s in want.steps]
    assert got["recorded"] == {"acquisition": "ucb", "mode": "map", "penalty": "none"}
    assert got["counterfactual"]["acquisition"] == "ei"
    assert (tmp_path / "cf" / "counterfactual.png").stat().st_size > 10_000
    # the export it wrote is a campaign: the counterfactual of the .h5 is the same
    assert main(["counterfactual", str(h5), "--acquisition", "ei", "--out",
                 str(tmp_path / "cf2")]) == 0  # fmt: skip
    again = json.loads((tmp_path / "cf2" / "counterfactual.json").read_text())
    assert again["steps"] == got["steps"]
    assert main(["export", str(out), "--out", str(tmp_path / "e.h5")]) == 0
    with pytest.raises(SystemExit) as err:  # an existing file needs --overwrite
        main(["export", str(out), "--out", str(tmp_path / "e.h5")])
    assert err.value.code == 2


def test_bad_input_is_refused_by_name(run, tmp_path):
    out, records, sim, config = run
    from jaxscope.instruments.toy import ThreeGaussians

    with pytest.raises(ValueError, match="had 64 candidates in 2 dimensions"):
        counterfactual(records, config, ThreeGaussians(size=6))
    with pytest.raises(ValueError, match="rule 3 out of range"):
        counterfactual(records, config, sim, rule=3)
    with pytest.raises(ValueError, match="chose q = 1 point\\(s\\) per step, the config chooses 2"):
        counterfactual(records, make_config(sim.candidates, q=2), sim)
    with pytest.raises(ValueError, match="no start line"):
        counterfactual(records[1:], config, sim)
    with pytest.raises(ValueError, match="not written by `jaxscope campaign`"):
        campaign_setup({**records[0]["settings"], "meta": {}})
    with pytest.raises(SystemExit) as err:
        main(["counterfactual", str(tmp_path / "absent")])
    assert err.value.code == 2
