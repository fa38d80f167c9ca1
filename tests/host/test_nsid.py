"""A campaign journal exported to NSID/HDF5: read back by sidpy/pyNSID themselves (main datasets,
dimensions, units, values, settings), by our reader (the same records; the imported journal is
the original byte for byte and replays/resumes to the same state), edits refused by name; real
NSID files from the team's data folder load as replay instruments (skipped when absent)."""

from __future__ import annotations

import json
import os
import shutil

import h5py
import numpy as np
import pytest
from conftest import assert_same_state
from recorded_run import NUM_INIT, STEPS, recorded_run

from jaxscope.host import HostRunner, host_view, replay_state
from jaxscope.host.journal import read_journal
from jaxscope.host.nsid import (
    COORDINATES,
    MEASUREMENT,
    export_nsid,
    import_nsid,
    measurement_table,
    read_nsid_journal,
)

pytestmark = pytest.mark.xdist_group("test_nsid")

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
BEPS, PTO = (os.path.join(DATA, f) for f in ("BEPS_PTO_50x50.h5", "PTO_Funakubo0001.h5"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A `jaxscope campaign` run (its journal has the command's settings) and its export."""
    out, records, sim, config = recorded_run(tmp_path_factory)
    h5 = tmp_path_factory.mktemp("nsid") / "run.h5"
    export_nsid(out, h5, quantity="height", units="nm", coordinate_names=["row", "col"],
                coordinate_units=["um", "um"], config=config)  # fmt: skip
    return out, records, h5, sim, config


def test_export_reads_back_the_same_records_and_settings(run, tmp_path):
    out, records, h5, _, _ = run
    got = read_nsid_journal(h5)
    assert got.records == records  # every kind, every field, floats bit for bit
    assert got.settings == records[0]["settings"] and got.settings["meta"]["problem"] == (
        "three_gaussians"
    )
    assert got.config["surrogate"] == "MAPGP" and got.config["rules"][0]["name"] == (
        "upper_confidence_bound"
    )
    ms = [r for r in records if r["kind"] == "measurement"]
    assert len(ms) == NUM_INIT + STEPS
    np.testing.assert_array_equal(got.measurements["y"], [r["y"] for r in ms])
    assert list(got.measurements["id"]) == [r["id"] for r in ms]
    assert list(got.measurements["step"]) == [-1] * NUM_INIT + list(range(STEPS))
    req = {r["id"]: r["time"] for r in records if r["kind"] == "request"}
    np.testing.assert_array_equal(got.measurements["request_time"], [req[r["id"]] for r in ms])
    assert np.all(got.measurements["duration"] >= 0)
    # imported: the original journal, byte for byte, then refused a second time
    path = import_nsid(h5, tmp_path / "restored")
    assert path.read_bytes() == (out / "journal.jsonl").read_bytes()
    with pytest.raises(FileExistsError, match="already holds a journal"):
        import_nsid(h5, tmp_path / "restored")


def test_sidpy_and_pynsid_read_the_export(run):
    from pyNSID.io import hdf_utils  # test-only dependencies (the dev extra)

    _, records, h5, _, _ = run
    table = measurement_table(records)
    with h5py.File(h5, "r") as f:
        mains = hdf_utils.get_all_main(f)
        assert sorted(m.name for m in mains) == sorted(
            [f"/{MEASUREMENT}/measurement", f"/{COORDINATES}/coordinates"]
        )
        assert all(hdf_utils.check_if_main(m) for m in mains)
        y = hdf_utils.read_h5py_dataset(f[f"{MEASUREMENT}/measurement"])
        X = hdf_utils.read_h5py_dataset(f[f"{COORDINATES}/coordinates"])
        np.testing.assert_array_equal(np.asarray(y), table["y"])
        np.testing.assert_array_equal(np.asarray(X), table["x"])
        assert (y.quantity, y.units, y.data_type.name) == ("height", "nm", "POINT_CLOUD")
        assert (y.modality, y.source, y.title) == (
            "autonomous experiment", "jaxscope", "three_gaussians: measured height"
        )  # fmt: skip
        (point,) = y._axes.values()
        assert (point.name, point.quantity, point.units, point.dimension_type.name) == (
            "point", "measurement number", "index", "POINT_CLOUD"
        )  # fmt: skip
        np.testing.assert_array_equal(point.values, np.arange(len(table["y"])))
        assert [a.name for a in X._axes.values()] == ["point", "axis"]
        assert X._axes[1].dimension_type.name == "CHANNEL" and X.units == "um"
        # the campaign's settings come back as the sidpy dataset's metadata
        md = y.metadata
        assert json.loads(md["settings"]) == records[0]["settings"]
        assert int(md["seed"]) == 0 and int(md["q"]) == 1 and md["surrogate"] == "MAPGP"
        assert md["meta"]["problem"] == "three_gaussians" and int(md["meta"]["size"]) == 8
        assert json.loads(md["coordinate_names"]) == ["row", "col"]


def test_imported_journal_replays_and_resumes_to_the_same_state(run, tmp_path):
    out, records, h5, sim, config = run
    restored = tmp_path / "restored"
    import_nsid(h5, restored)
    view = host_view(sim)
    kw = dict(num_steps=STEPS, seed=0)
    a = replay_state(records, config, view, **kw).state
    b = replay_state(read_journal(restored / "journal.jsonl"), config, view, **kw).state
    assert int(a.step) == STEPS
    assert_same_state(a, b)
    # a runner resumes the imported folder (no checkpoints there: the journal is the truth)
    meta = dict(records[0]["settings"]["meta"])
    with HostRunner(config, sim, restored, num_steps=STEPS, num_init=NUM_INIT, seed=0,
                    progress=False, meta=meta) as runner:  # fmt: skip
        assert_same_state(runner.run(None), a)


def test_edits_and_bad_inputs_are_refused(run, tmp_path):
    out, records, h5, _, _ = run
    edited = tmp_path / "edited.h5"
    shutil.copy(h5, edited)
    third = [r for r in records if r["kind"] == "measurement"][2]
    with h5py.File(edited, "r+") as f:
        f[f"{MEASUREMENT}/measurement"][2] += 1.0
    with pytest.raises(ValueError, match=f"value of measurement {third['id']} \\(point 2\\)"):
        read_nsid_journal(edited)
    with pytest.raises(ValueError, match="not a jaxscope journal export"):
        read_nsid_journal(_plain_h5(tmp_path))
    with pytest.raises(ValueError, match="not an HDF5 file"):
        read_nsid_journal(out / "journal.jsonl")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_nsid(out, h5)
    with pytest.raises(ValueError, match="units must be non-empty"):
        export_nsid(out, tmp_path / "a.h5", units="")
    with pytest.raises(ValueError, match="3 coordinate names"):
        export_nsid(out, tmp_path / "a.h5", coordinate_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="no measurement"):
        export_nsid(records[:1], tmp_path / "a.h5")
    with pytest.raises(FileNotFoundError, match="no journal"):
        export_nsid(tmp_path / "nothing", tmp_path / "a.h5")
    assert not (tmp_path / "a.h5").exists()


def test_an_agent_journal_with_a_failure_exports_and_re_decides(run, tmp_path):
    from jaxscope.host import Agent
    from jaxscope.host.counterfactual import counterfactual
    from jaxscope.instruments.base import SimulatorInstrument

    _, _, _, sim, config = run
    path = tmp_path / "agent.jsonl"
    agent = Agent(config, sim, capacity=STEPS, seed=2, num_init=NUM_INIT, journal=path)
    lab = SimulatorInstrument(sim, seed=5)
    for s in agent.suggest(NUM_INIT):
        agent.ingest(s.id, lab.measure(s.x[None])[0])
    lost = agent.suggest(1)[0]
    agent.register_failure(lost.id, "tip crash")
    for _ in range(2):
        (s,) = agent.suggest(1)
        agent.ingest(s.id, lab.measure(s.x[None])[0])
    agent.journal.close()
    records = read_journal(path)
    got = read_nsid_journal(export_nsid(path, tmp_path / "agent.h5"))
    assert got.records == records and got.settings["driver"] == "agent"
    with h5py.File(tmp_path / "agent.h5", "r") as f:
        fail = {k: f[f"jaxscope/failures/{k}"][()] for k in ("id", "reason", "exclude", "index")}
    assert [v.decode() for v in fail["id"]] == [lost.id] and fail["reason"][0] == b"tip crash"
    assert fail["exclude"].tolist() == [1] and fail["index"].tolist() == [lost.index]
    # each suggestion was made from the state right before its commit, nothing pending: the
    # counterfactual with the agent's own config makes the agent's choices (the failed point
    # excluded), with the same acquisition values
    cf = counterfactual(got.records, config, sim)
    assert cf.summary["steps"] == 2 and cf.summary["agreement"] == 1.0
    assert all(lost.index not in s["chosen"] for s in cf.steps)
    assert [s["chosen_acq"] for s in cf.steps] == [s["recorded_acq"] for s in cf.steps]


def _plain_h5(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3.0)
    return path


@pytest.mark.skipif(not os.path.exists(BEPS), reason="measured BEPS data not on this machine")
def test_measured_beps_map_loads_as_a_replay_like_pynsid_reads_it():
    from pyNSID.io import hdf_utils

    from jaxscope.instruments import beps_replay, read_nsid

    data, axes = read_nsid(BEPS)
    with h5py.File(BEPS, "r") as f:
        (main_ds,) = hdf_utils.get_all_main(f)
        peer = hdf_utils.read_h5py_dataset(main_ds)
        np.testing.assert_array_equal(np.asarray(peer), data)
        assert [a.name for a in peer._axes.values()] == list(axes)
        np.testing.assert_array_equal(peer._axes[2].values, axes["Voltage"])
        assert (peer._axes[2].units, peer.data_type.name) == ("V", "SPECTRAL_IMAGE")
    rep = beps_replay(BEPS, window=16)
    assert rep.candidates.shape == (35 * 35, 2)
    r, c = np.asarray(rep.candidates[100]).astype(int)
    np.testing.assert_allclose(rep.clean_spectrum(rep.candidates[100]), data[r, c], rtol=1e-6)


@pytest.mark.skipif(not os.path.exists(PTO), reason="measured PFM images not on this machine")
def test_measured_pfm_image_loads_as_an_image_replay():
    from pyNSID.io import hdf_utils

    from jaxscope.images import load_scan
    from jaxscope.instruments import SparseScanSimulator

    path = "Measurement_000/Channel_0/Channel_0/Channel_0"
    scan = load_scan(PTO, path)
    with h5py.File(PTO, "r") as f:
        peer = hdf_utils.read_h5py_dataset(f[path])
        np.testing.assert_array_equal(np.asarray(peer), scan.data[0])
        assert (
            (peer.units, peer.quantity)
            == (scan.units[0], "HeightRetrace")
            == ("m", "HeightRetrace")
        )
    image = scan.data[0] / np.std(scan.data[0])  # a height image in units of its spread
    sim = SparseScanSimulator(image, noise=0.0)
    C = np.asarray(sim.candidates)
    rc = np.floor(C * 256).astype(int)
    np.testing.assert_array_equal(np.asarray(sim.truth(sim.candidates)),
                                  image[rc[:, 0], rc[:, 1]].astype(np.float32))  # fmt: skip
