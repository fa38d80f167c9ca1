"""``jaxscope campaign``: outputs consistent with the journal and the ground truth; resume."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from jaxscope.cli import main
from jaxscope.cli.campaign import make_problem
from jaxscope.host.journal import read_journal

# its module fixtures are built once: one worker runs the file (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_campaign_cli")

ARGS = [
    "campaign",
    "--problem",
    "three_gaussians",
    "--size",
    "8",
    "--steps",
    "3",
    "--num-init",
    "3",
    "--seed",
    "2",
    "--no-progress",
    "--no-cache",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("campaign")
    assert main(ARGS + ["--out", str(out)]) == 0
    return out


def test_outputs_match_journal_and_truth(run_dir):
    records = read_journal(run_dir / "journal.jsonl")
    meas = [r for r in records if r["kind"] == "measurement"]
    commits = [r for r in records if r["kind"] == "commit"]
    assert len(meas) == 3 + 3 and [c["step"] for c in commits] == [-1, 0, 1, 2]
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["steps"] == 3 and m["measurements"] == 6 and m["failures"] == 0
    # best measured value and point: the journal's maximum
    ys = np.asarray([r["y"] for r in meas])
    assert m["best_measured"]["y"] == pytest.approx(float(np.float32(ys.max())))
    assert m["best_measured"]["x"] == pytest.approx(meas[int(ys.argmax())]["x"])
    # regret per step from the ground truth at the measured points (independent of the runner)
    sim = make_problem("three_gaussians", 2, 8)
    truth = np.asarray(sim.truth(jnp.asarray([r["x"] for r in meas], jnp.float32)))
    best = [truth[: 3 + t + 1].max() for t in range(3)]
    np.testing.assert_allclose(
        m["per_step"]["regret"], float(sim.optimum) - np.asarray(best), rtol=1e-5, atol=1e-6
    )
    assert len(m["per_step"]["rmse"]) == 3 and all(np.isfinite(m["per_step"]["rmse"]))
    assert m["timing"]["first_step_s"] > 0
    for name in ("campaign.png", "metrics.png"):
        assert name in m["figures"]
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_resumes_without_measuring_again(run_dir, capsys):
    before = (run_dir / "journal.jsonl").read_bytes()
    assert main(ARGS + ["--out", str(run_dir)]) == 0
    after = (run_dir / "journal.jsonl").read_bytes()
    assert after == before  # complete run: nothing appended, nothing measured
    assert "three_gaussians: 3 steps" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # other settings in the same folder: a clear error
        main(ARGS + ["--out", str(run_dir), "--acquisition", "maxvar"])
    assert "--overwrite" in capsys.readouterr().err


def test_bad_campaign_options_exit_with_a_clear_message(tmp_path, capsys):
    """--out naming a file, more steps than candidates, another run's folder: each is refused
    with a message that names the problem (and the --overwrite hint only where it applies)."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a run")
    cases = [
        (["--out", str(a_file)], "is a file, not a folder"),
        (["--steps", "70", "--out", str(tmp_path / "r1")], "has only 64 candidates"),
    ]
    for extra, message in cases:
        with pytest.raises(SystemExit) as e:
            main(ARGS + extra)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "--overwrite" not in err, err
    other = tmp_path / "other"
    assert main(ARGS + ["--out", str(other)]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*ARGS[:-4], "--seed", "5", "--no-progress", "--no-cache", "--out", str(other)])
    assert "--overwrite" in capsys.readouterr().err
    assert a_file.read_text() == "not a run"  # nothing was written over the file
