"""One `jaxscope campaign` run shared by the NSID and counterfactual tests (built once a process:
its journal carries the command's settings, so the command's config can be rebuilt from it)."""

from __future__ import annotations

from jaxscope.cli.main import main
from jaxscope.cli.replay_cmd import campaign_setup
from jaxscope.host.journal import read_journal

STEPS, NUM_INIT = 5, 3
_RUNS: dict = {}


def recorded_run(tmp_path_factory):
    """``(run folder, records, sim, recorded config)`` of a 5-step UCB campaign on the 8×8
    three-Gaussians grid (3 random seed points)."""
    if "run" not in _RUNS:
        out = tmp_path_factory.mktemp("recorded") / "run"
        argv = ["campaign", "--problem", "three_gaussians", "--size", "8", "--steps",
                str(STEPS), "--num-init", str(NUM_INIT), "--acquisition", "ucb", "--out",
                str(out), "--no-progress"]  # fmt: skip
        assert main(argv) == 0
        records = read_journal(out / "journal.jsonl")
        sim, config, _, _ = campaign_setup(records[0]["settings"])
        _RUNS["run"] = (out, records, sim, config)
    return _RUNS["run"]
