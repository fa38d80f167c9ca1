"""``jaxscope campaign --problem pfm_twin``: a deep-kernel campaign by default, its figure, and
measurements that are the twin's scalarised loops at the chosen pixels."""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np
import pytest

from jaxscope.cli import main
from jaxscope.cli.campaign import add_arguments, make_problem, resolve_defaults
from jaxscope.host.journal import read_journal


def _args(*argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return resolve_defaults(p.parse_args(list(argv)))


def test_image_problems_default_to_dkl():
    for name in ("pfm_twin", "eels_twin", "stem4d_twin"):
        a = _args("--problem", name)
        assert (a.mode, a.acquisition, a.steps, a.num_init) == ("dkl", "ei", 50, 3)
    assert _args("--problem", "pfm_twin", "--mode", "map").mode == "map"


@pytest.mark.slow
def test_pfm_twin_runs_a_dkl_campaign(tmp_path):
    out = tmp_path / "run"
    argv = ["campaign", "--problem", "pfm_twin", "--size", "24", "--steps", "2", "--seed", "1",
            "--no-progress", "--no-cache", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["mode"] == "dkl" and m["measurements"] == 3 + 2 and m["candidates"] == 81
    assert "dkl.png" in m["figures"] and (out / "dkl.png").stat().st_size > 10_000
    sim = make_problem("pfm_twin", 1, 24)
    meas = [r for r in read_journal(out / "journal.jsonl") if r["kind"] == "measurement"]
    X = np.array([r["x"] for r in meas], np.float32)
    # every measured pixel is a candidate; the values scatter around the twin's noise-free loop area
    C = np.asarray(sim.candidates)
    assert all(np.any(np.all(C == x, axis=1)) for x in X)
    y, t = np.array([r["y"] for r in meas]), np.asarray(sim.truth(jax.numpy.asarray(X)))
    assert np.all(
        np.abs(y - t) < 6 * max(float(np.std(np.asarray(sim.truth(sim.candidates)))), 1e-3)
    )
