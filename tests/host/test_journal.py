"""Journal (append-only, fsync'ed JSON lines) and orbax state checkpoints."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxscope.gp.observations import Observations
from jaxscope.host.checkpoint import StateCheckpointer
from jaxscope.host.journal import Journal, JournalError, read_journal


def test_values_round_trip_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    x32 = rng.normal(size=3).astype(np.float32)
    x64 = rng.normal(size=3)
    y32 = np.float32(1.0) / np.float32(3.0)
    with Journal(tmp_path / "j.jsonl") as j:
        j.append("measurement", step=0, id="a", x=x32, y=y32)
        j.append("measurement", step=1, id="b", x=jnp.asarray(x64, jnp.float32), y=x64[0])
    r = read_journal(tmp_path / "j.jsonl")
    assert [e["seq"] for e in r] == [0, 1]
    assert np.array_equal(np.asarray(r[0]["x"], np.float32), x32)
    assert np.float32(r[0]["y"]).tobytes() == y32.tobytes()
    assert np.float64(r[1]["y"]).tobytes() == np.float64(x64[0]).tobytes()
    assert np.array_equal(np.asarray(r[1]["x"], np.float32), x64.astype(np.float32))


def test_append_only_and_fsync_per_record(tmp_path, monkeypatch):
    path = tmp_path / "j.jsonl"
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    j = Journal(path)
    before = b""
    for i in range(5):
        n_sync = len(synced)
        j.append("measurement", step=i, id=f"s{i}", x=[i / 10, 0.5], y=float(i) ** 0.5)
        # durable when append returns: fsync was called on this journal's descriptor
        assert synced[n_sync:] == [j._fh.fileno()]
        now = path.read_bytes()
        assert now.startswith(before) and now.count(b"\n") == i + 1
        before = now
    j.close()
    # reopening appends after the existing records, never rewrites them
    with Journal(path) as j2:
        assert len(j2) == 5
        j2.append("stop", step=5, reason="done")
    assert path.read_bytes().startswith(before)
    assert [r["seq"] for r in read_journal(path)] == list(range(6))


def test_torn_tail_is_ignored_and_cut(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.append("measurement", step=0, id="a", x=[0.1], y=1.0)
    good = path.read_bytes()
    with open(path, "ab") as fh:  # a kill in the middle of a write
        fh.write(b'{"id":"b","kind":"measurem')
    assert len(read_journal(path)) == 1
    with Journal(path) as j:
        assert len(j) == 1
        j.append("measurement", step=1, id="b", x=[0.2], y=2.0)
    data = path.read_bytes()
    assert data.startswith(good) and data.count(b"\n") == 2
    assert [r["id"] for r in read_journal(path)] == ["a", "b"]


def test_corruption_and_bad_input_are_refused(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.append("measurement", step=0, id="a", x=[0.1], y=1.0)
        size = path.stat().st_size
        with pytest.raises(ValueError, match="NaN"):
            j.append("measurement", step=1, id="b", x=[0.2], y=float("nan"))
        with pytest.raises(ValueError, match="unknown journal record kind"):
            j.append("teleport", step=1)
        assert path.stat().st_size == size  # nothing half-written
    line = json.loads(path.read_text())
    line["y"] = 2.0  # an edit that keeps valid JSON
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(JournalError, match="checksum"):
        read_journal(path)


def test_checkpoint_round_trip_exact(tmp_path, dtype):
    obs = Observations.empty(6, 2, dtype).extend(
        jnp.asarray([[0.1, 0.2], [0.3, 0.7]], dtype), jnp.asarray([1.0 / 3.0, -2.5], dtype)
    )
    state = {"obs": obs, "key": jax.random.fold_in(jax.random.key(7), 3), "step": jnp.int32(4)}
    template = {
        "obs": Observations.empty(6, 2, dtype),
        "key": jax.random.key(0),
        "step": jnp.int32(0),
    }
    with StateCheckpointer(tmp_path / "ck", max_to_keep=2) as ck:
        for s in (1, 2, 3):
            ck.save(s, state, meta={"journal_seq": 10 * s})
        assert ck.all_steps() == [2, 3]
    # a fresh manager (new process after a kill) sees the committed steps
    with StateCheckpointer(tmp_path / "ck") as ck:
        step, restored, meta = ck.restore(template)
    assert step == 3 and meta == {"journal_seq": 30}
    assert restored["obs"].X.dtype == dtype
    for a, b in zip(jax.tree.leaves(state["obs"]), jax.tree.leaves(restored["obs"]), strict=True):
        assert a.dtype == b.dtype and np.asarray(a).tobytes() == np.asarray(b).tobytes()
    assert np.array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(state["key"]))
    # the restored key draws the same numbers
    assert float(jax.random.uniform(restored["key"])) == float(jax.random.uniform(state["key"]))


def test_checkpoint_errors(tmp_path):
    template = {"a": jnp.zeros(3)}
    with StateCheckpointer(tmp_path / "ck") as ck:
        with pytest.raises(FileNotFoundError):
            ck.restore(template)
        ck.save(0, {"a": jnp.ones(3)})
        with pytest.raises(ValueError, match=r"checkpoint array 0 is float32\[3\]"):
            ck.restore({"a": jnp.zeros(4)})
        with pytest.raises(ValueError, match="template state has"):
            ck.restore({"a": jnp.zeros(3), "b": jnp.zeros(1)})
