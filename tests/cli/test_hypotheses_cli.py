"""``jaxscope campaign --problem combi_library``: hypothesis learning by default, per-step law
probabilities printed and saved, consistent with the hidden truth and the journal."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from jaxscope.cli import main
from jaxscope.cli.campaign import add_arguments, make_problem, resolve_defaults
from jaxscope.host.journal import read_journal


def _args(*argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return resolve_defaults(p.parse_args(list(argv)))


def test_defaults_by_problem():
    a = _args("--problem", "combi_library")
    assert (a.mode, a.acquisition, a.steps, a.num_init) == ("hypotheses", "maxvar", 12, 4)
    b = _args("--problem", "branin")
    assert (b.mode, b.acquisition, b.steps, b.num_init) == ("map", "ei", 40, 10)
    c = _args("--problem", "combi_library", "--mode", "map", "--steps", "5")
    assert (c.mode, c.acquisition, c.steps) == ("map", "ei", 5)


@pytest.mark.slow
def test_combi_library_runs_hypothesis_learning(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["campaign", "--problem", "combi_library", "--steps", "3", "--seed", "3",
            "--no-progress", "--no-cache", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    h = m["hypotheses"]
    assert m["mode"] == "hypotheses" and m["measurements"] == 4 + 3
    assert h["laws"] == ["second_order", "first_order", "smeared"]
    assert len(h["per_step"]) == 3 + 1  # init and each step
    for row in h["per_step"]:
        assert sum(row["probs"].values()) == pytest.approx(1.0, abs=1e-3)
        assert row["chosen"] in h["laws"]
    last = h["per_step"][-1]["probs"]
    assert h["final_choice"] == max(last, key=last.get)
    sim = make_problem("combi_library", 3, 48)  # the hidden truth, independently
    assert h["truth"]["law"] == sim.law
    assert h["truth"]["xc"] == pytest.approx(float(sim.params["xc"]), rel=1e-6)
    assert h["xc"]["q05"] <= h["xc"]["mean"] <= h["xc"]["q95"]
    # the table printed per step
    assert "P(second_order)" in printed and f"final choice: {h['final_choice']}" in printed
    meas = [r for r in read_journal(out / "journal.jsonl") if r["kind"] == "measurement"]
    assert len(meas) == 7 and np.all(np.isfinite([r["y"] for r in meas]))
