"""Kill a host-driven campaign (SIGKILL, and a crash after any journal record) and resume it:
no measurement is lost or repeated and the final state equals the uninterrupted run's, bit for bit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxscope.campaign import make_config
from jaxscope.host import HostRunner
from jaxscope.host.journal import read_journal
from jaxscope.instruments.base import SimulatorInstrument
from jaxscope.instruments.toy import ThreeGaussians

# its module fixtures are built once: one worker runs the file (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_resume")

NUM_INIT, NUM_STEPS, SEED = 3, 8, 0
HERE = os.path.dirname(os.path.abspath(__file__))


def build(directory, delay=0.0, config=None):
    """The campaign under test (also run in the subprocess)."""
    sim = ThreeGaussians(noise=0.01, size=8)
    config = config or make_config(sim.candidates, acquisition="ucb", mode="map", map_steps=20)
    runner = HostRunner(
        config,
        sim,
        directory,
        num_steps=NUM_STEPS,
        num_init=NUM_INIT,
        seed=SEED,
        checkpoint_every=2,
        progress=False,
    )
    inst = SimulatorInstrument(sim, seed=1, start=runner.num_measured, delay=delay)
    return runner, inst


def leaves(state):
    out = []
    for a in jax.tree.leaves(state):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a = jax.random.key_data(a)
        out.append(np.asarray(a))
    return out


def assert_same_state(a, b):
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def events(records):
    """Journal content without wall-clock fields. Nothing is deduplicated: a request left
    unanswered by a kill is pending in the fold and measured on resume under its id, never
    requested again, so the resumed journal must equal the uninterrupted one line for line."""
    return [{k: v for k, v in r.items() if k not in ("time", "duration", "seq")} for r in records]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: its final state, journal records and config (shared compile)."""
    d = tmp_path_factory.mktemp("reference")
    runner, inst = build(d)
    with runner:
        state = runner.run(inst)
    return state, read_journal(d / "journal.jsonl"), runner.config, d


def test_sigkill_mid_run_then_resume(tmp_path, reference):
    ref_state, ref_records, config, _ = reference
    env = dict(os.environ)
    cache = jax.config.jax_compilation_cache_dir
    if cache:
        env["JAX_COMPILATION_CACHE_DIR"] = cache
    code = (
        f"import sys; sys.path.insert(0, {HERE!r}); from test_resume import build; "
        f"r, i = build({str(tmp_path)!r}, delay=0.15); r.run(i)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    journal = tmp_path / "journal.jsonl"
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            recs = read_journal(journal) if journal.exists() else []
            if sum(r["kind"] == "commit" for r in recs) >= 4:  # seed phase + 3 steps
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.2)  # land somewhere inside the next step
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    before = journal.read_bytes()
    killed = read_journal(journal)
    done = [r for r in killed if r["kind"] == "commit"]
    assert 4 <= len(done) < NUM_STEPS + 1, "the kill must land mid-run"
    measured_before = {r["id"]: r for r in killed if r["kind"] == "measurement"}

    runner, inst = build(tmp_path, config=config)
    with runner:
        assert runner.num_measured == len(measured_before)
        assert runner.checkpoints.latest_step() >= 2  # resumes from a checkpoint + the journal
        state = runner.run(inst)
    after = read_journal(journal)
    # append-only: the killed run's complete lines are an exact prefix of the final journal
    assert journal.read_bytes()[: before.rfind(b"\n") + 1] == before[: before.rfind(b"\n") + 1]
    # nothing lost, nothing measured twice: every journaled measurement is in the buffer once
    meas = [r for r in after if r["kind"] == "measurement"]
    assert len(meas) == NUM_INIT + NUM_STEPS == int(state.obs.count)
    for r in measured_before.values():
        assert r in meas
    assert inst.counter - inst.calls == len(measured_before)  # resumed instrument: new points only
    # same final state and same journal as the uninterrupted run
    assert_same_state(state, ref_state)
    assert events(after) == events(ref_records)


@pytest.mark.parametrize("cut", ["request", "measurement", "commit"])
def test_crash_after_any_record_resumes_exactly(tmp_path, reference, cut):
    """Cut the reference journal right after a record of each kind (a crash at that instant,
    before any checkpoint) and resume from the journal alone."""
    ref_state, ref_records, config, ref_dir = reference
    lines = (ref_dir / "journal.jsonl").read_bytes().splitlines(keepends=True)
    pos = [i for i, r in enumerate(ref_records) if r["kind"] == cut and r["step"] == 4][0]
    (tmp_path / "journal.jsonl").write_bytes(b"".join(lines[: pos + 1]))
    runner, inst = build(tmp_path, config=config)
    with runner:
        before = runner.num_measured
        state = runner.run(inst)
    assert inst.counter - before == NUM_INIT + NUM_STEPS - before
    assert_same_state(state, ref_state)
    assert events(read_journal(tmp_path / "journal.jsonl")) == events(ref_records)


def test_resume_refuses_other_settings(tmp_path, reference):
    runner, _ = build(tmp_path, config=reference[2])
    runner.close()
    sim = ThreeGaussians(noise=0.01, size=8)
    with pytest.raises(ValueError, match="written with settings"):
        HostRunner(
            reference[2],
            sim,
            tmp_path,
            num_steps=NUM_STEPS,
            num_init=NUM_INIT,
            seed=SEED + 1,
            progress=False,
        )
    shutil.rmtree(tmp_path / "checkpoints", ignore_errors=True)


def test_finished_run_with_a_torn_last_line_resumes(tmp_path, reference):
    """A finished run whose last journal line (the final commit) was torn by a kill after the
    last checkpoint was written: the journal is the truth, so the run passes over the checkpoint
    that is ahead of it, commits the step again from the journaled measurement (nothing is
    measured again) and ends in the uninterrupted state."""
    ref_state, ref_records, config, ref_dir = reference
    shutil.copytree(ref_dir, tmp_path / "run")
    journal = tmp_path / "run" / "journal.jsonl"
    data = journal.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    assert read_journal(journal)[-1]["kind"] == "commit"
    journal.write_bytes(data[: last + (len(data) - last) // 2])  # half a line, no newline
    runner, inst = build(tmp_path / "run", config=config)
    assert runner.checkpoints.latest_step() == NUM_STEPS  # ahead of the journal's commits
    with runner:
        state = runner.run(inst)
    assert inst.calls == 0  # nothing measured again
    assert_same_state(state, ref_state)
    assert events(read_journal(journal)) == events(ref_records)
