"""The campaign defaults are the quality benchmark's choice, and every reader agrees on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jaxscope.campaign import CAMPAIGN_DEFAULTS, make_config
from jaxscope.cli.campaign import resolve_defaults
from jaxscope.cli.main import build_parser
from jaxscope.decide import MAPGP, acquisition
from jaxscope.gp import GPModel, unit_grid
from jaxscope.instruments import HYPOTHESIS_PROBLEMS, IMAGE_PROBLEMS, PROBLEMS

# problems whose question is which law holds (issue 9), not where the optimum is, and the
# digital twins (issue 10: structure–property campaigns with their own deep-kernel defaults)
OPTIMIZATION_PROBLEMS = tuple(
    p for p in PROBLEMS if p not in HYPOTHESIS_PROBLEMS and p not in IMAGE_PROBLEMS
)

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "quality.json"


@pytest.fixture(scope="module")
def quality():
    with open(RESULTS) as f:
        return {r["name"]: r for r in json.load(f)["records"]}


def test_defaults_are_the_benchmark_choice(quality):
    """``default_campaign_choice`` chose, from candidates measured against BoTorch's loop on
    every simulated problem, the settings the library ships; the chosen one is at least as good
    as BoTorch on every problem, with ≥ 20 seeds each."""
    choice = quality["default_campaign_choice"]
    assert sorted(choice["problems"]) == sorted(OPTIMIZATION_PROBLEMS)
    assert choice["met_on_every_problem"][choice["chosen"]]
    want = choice["chosen_options"]
    assert CAMPAIGN_DEFAULTS["acquisition"] == want["acq"]
    assert CAMPAIGN_DEFAULTS["priors"] == want["priors"]
    assert CAMPAIGN_DEFAULTS["refit_from"] == want["refit_from"]
    assert CAMPAIGN_DEFAULTS["mode"] == want["mode"]
    assert CAMPAIGN_DEFAULTS["penalty"] == want["penalty"]
    assert CAMPAIGN_DEFAULTS["num_init"] == choice["budget"]["num_init"]
    assert CAMPAIGN_DEFAULTS["steps"] == choice["budget"]["steps"]
    # the chosen candidate scored lowest among those met everywhere
    ok = [c for c, met in choice["met_on_every_problem"].items() if met]
    assert min(ok, key=lambda c: choice["relative_regret"][c]) == choice["chosen"]
    for name in OPTIMIZATION_PROBLEMS:
        rec = quality[f"vs_botorch_{name}"]
        assert rec["seeds"] >= 20 and rec["met"], name
        assert rec["jaxscope_options"] == want
        assert rec["jaxscope_regret"] <= rec["botorch_regret"] + rec["regret_sem"]


def test_every_reader_uses_the_defaults():
    """make_config, make_policy, MAPGP, GPModel.for_candidates and the command line agree."""
    C = unit_grid(4, 2)
    cfg = make_config(C)
    assert cfg.policy.rules == (acquisition.get(CAMPAIGN_DEFAULTS["acquisition"]),)
    assert cfg.policy.penalties == ()  # "none"
    assert isinstance(cfg.surrogate, MAPGP) and CAMPAIGN_DEFAULTS["mode"] == "map"
    assert cfg.surrogate.refit_from == CAMPAIGN_DEFAULTS["refit_from"]
    assert cfg.surrogate.model == GPModel.for_candidates(C, priors=CAMPAIGN_DEFAULTS["priors"])
    # the defaults resolve per problem: the default problem is an optimisation one
    args = resolve_defaults(build_parser().parse_args(["campaign"]))
    assert args.acquisition == CAMPAIGN_DEFAULTS["acquisition"]
    assert args.penalty == CAMPAIGN_DEFAULTS["penalty"]
    assert args.mode == CAMPAIGN_DEFAULTS["mode"]
    assert args.steps == CAMPAIGN_DEFAULTS["steps"]
    assert args.num_init == CAMPAIGN_DEFAULTS["num_init"]
