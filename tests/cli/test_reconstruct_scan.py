"""``jaxscope reconstruct --input``: a user's scan (.npy / HDF5, NaN holes, --subsample, --mask,
--channels) is reconstructed in its own units; the saved metrics agree with a NumPy
recomputation from the saved arrays (predictive σ_y for the coverage); bad options fail
clearly. 32 × 40 images, few MAP steps: the file runs in well under a minute."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from scipy.special import erf

from jaxscope.cli import main

# its module fixtures are built once: one worker runs the file (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_reconstruct_scan")

H, W, NOISE = 32, 40, 0.02
FAST = ["--map-steps", "10", "--samples", "8", "--no-cache"]


def _field() -> np.ndarray:
    """(2, H, W) smooth channels plus measurement noise of sd NOISE."""
    yy, xx = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    rng = np.random.default_rng(0)
    smooth = np.stack([np.sin(yy / 5) + np.cos(xx / 7), 0.5 * np.cos((yy + xx) / 8)])
    return smooth + NOISE * rng.standard_normal((2, H, W))


def _run(args: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["reconstruct", *args, *FAST])
    return code, buf.getvalue()


def _load(out):
    rec = json.loads((out / "metrics.json").read_text())
    a = np.load(out / "arrays.npz")
    return rec, {k: a[k] for k in a.files}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("scan_inputs")
    full = _field()
    np.save(d / "full.npy", full)
    sparse = full.copy()
    keep = np.random.default_rng(1).random((H, W)) < 0.3
    keep[10:16, 12:20] = False  # a rectangular hole
    sparse[:, ~keep] = np.nan
    np.save(d / "sparse.npy", sparse)
    scaled = full.copy()
    scaled[1] *= 1e-9
    np.save(d / "scaled.npy", scaled)
    mask = np.random.default_rng(2).random((H, W)) < 0.3
    np.save(d / "mask.npy", mask)
    np.save(d / "bad_mask.npy", np.ones((W, H), bool))
    import h5py

    with h5py.File(d / "scan.h5", "w") as f:
        for c, unit in enumerate(("m", "V")):
            ds = f.create_dataset(f"Measurement_000/Channel_{c}/Channel_{c}", data=full[c])
            ds.attrs["units"] = unit
    return {"dir": d, "full": full, "sparse": sparse, "keep": keep, "mask": mask}


@pytest.fixture(scope="module")
def runs(files, tmp_path_factory):
    d = files["dir"]
    sub = ["--subsample", "0.3", "--seed", "4"]
    specs = {
        "holes": ["--input", str(d / "sparse.npy"), "--method", "exact", "--seed", "1"],
        "sub": ["--input", str(d / "full.npy"), "--method", "exact", *sub],
        "grid": ["--input", str(d / "full.npy"), "--method", "grid", *sub],
        "scaled": ["--input", str(d / "scaled.npy"), "--method", "exact", *sub],
        "h5": [
            "--input",
            str(d / "scan.h5"),
            "--method",
            "exact",
            *sub,
            "--dataset",
            "Measurement_000/Channel_0/Channel_0",
            "--dataset",
            "Measurement_000/Channel_1/Channel_1",
        ],  # fmt: skip
        "masked": [
            "--input",
            str(d / "full.npy"),
            "--mask",
            str(d / "mask.npy"),
            "--channels",
            "1",
        ],  # fmt: skip
    }
    out = {}
    for name, args in specs.items():
        o = tmp_path_factory.mktemp(name)
        code, text = _run([*args, "--out", str(o)])
        out[name] = (code, o, text)
    return out


@pytest.mark.parametrize("name", ["holes", "sub", "grid", "scaled", "h5", "masked"])
def test_exit_code_and_files(runs, name):
    code, out, text = runs[name]
    assert code == 0
    names = {p.name for p in out.iterdir()}
    assert {"reconstruct.png", "metrics.json", "arrays.npz"} <= names
    truth_known = name in ("sub", "grid", "scaled", "h5")
    assert ("calibration.png" in names) == truth_known
    for png in names & {"reconstruct.png", "calibration.png"}:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rec, a = _load(out)
    assert ("truth" in a) == truth_known and (rec["metrics"] is not None) == truth_known
    assert "held-out RMSE" in text if truth_known else "held-out" not in text


def test_measured_pixels_are_kept(runs, files):
    _, out, _ = runs["holes"]
    rec, a = _load(out)
    assert rec["method"] == "exact" and rec["shape"] == [2, H, W]
    assert a["mean"].shape == a["std"].shape == a["std_y"].shape == a["mask"].shape == (2, H, W)
    np.testing.assert_array_equal(a["mask"], np.broadcast_to(files["keep"], (2, H, W)))
    assert np.isnan(a["data"][~a["mask"]]).all()
    np.testing.assert_array_equal(a["data"][a["mask"]], files["sparse"][a["mask"]])
    for c in range(2):
        m = a["mask"][c]
        resid = a["mean"][c][m] - files["sparse"][c][m]
        sd = np.sqrt(rec["params"][c]["noise"])  # the fitted noise sd
        assert np.sqrt(np.mean(resid**2)) < sd and np.abs(resid).max() < 4 * sd
        # ... and much closer than the spread of the channel
        assert np.sqrt(np.mean(resid**2)) < 0.2 * np.nanstd(files["sparse"][c])
        assert (a["std_y"][c] > a["std"][c]).all()
    assert rec["num_measured"] == [int(files["keep"].sum())] * 2


@pytest.mark.parametrize("name", ["sub", "grid", "h5"])
def test_json_metrics_equal_recomputation_from_saved_arrays(runs, files, name):
    _, out, _ = runs[name]
    rec, a = _load(out)
    assert rec["method"] == ("grid" if name == "grid" else "exact")
    np.testing.assert_array_equal(a["truth"], files["full"])
    n_keep = round(0.3 * H * W)
    assert a["mask"].reshape(2, -1).sum(1).tolist() == [n_keep, n_keep]
    assert rec["settings"]["subsample"] == 0.3 and rec["settings"]["seed"] == 4
    assert set(rec["timings"]) == {"load_s", "reconstruct_s", "total_s"}
    k = np.asarray(rec["metrics"][0]["calibration_k"])
    assert k[0] == 0.5 and k[-1] == 3.0
    for c, m in enumerate(rec["metrics"]):
        held = ~a["mask"][c]
        err = np.abs(a["mean"][c] - a["truth"][c])[held]
        sy = a["std_y"][c][held]
        assert m["num_heldout"] == held.sum() == H * W - n_keep
        np.testing.assert_allclose(m["rmse"], np.sqrt(np.mean(err**2)), rtol=1e-9)
        np.testing.assert_allclose(m["coverage"], np.mean(err <= 2 * sy), atol=1e-12)
        np.testing.assert_allclose(m["calibration"], [np.mean(err <= t * sy) for t in k])
        np.testing.assert_allclose(m["calibration_gaussian"], erf(k / np.sqrt(2)))
        # std_y is the predictive σ: noise-free σ² plus the fitted noise variance
        np.testing.assert_allclose(
            a["std_y"][c] ** 2 - a["std"][c] ** 2, rec["params"][c]["noise"], rtol=1e-6
        )
        assert m["rmse"] < 0.1 * files["full"][c].std()
        assert 0.8 <= m["coverage"] <= 1.0


def test_subsample_is_seeded_and_hdf5_matches_npy(runs):
    _, a_sub = _load(runs["sub"][1])
    _, a_grid = _load(runs["grid"][1])
    rec_h5, a_h5 = _load(runs["h5"][1])
    np.testing.assert_array_equal(a_sub["mask"], a_grid["mask"])  # same --seed, same pixels
    np.testing.assert_array_equal(a_sub["mask"], a_h5["mask"])
    np.testing.assert_allclose(a_h5["mean"], a_sub["mean"], rtol=1e-6, atol=1e-6)
    assert rec_h5["units"] == ["m", "V"]
    assert rec_h5["settings"]["dataset"] == [
        "Measurement_000/Channel_0/Channel_0",
        "Measurement_000/Channel_1/Channel_1",
    ]


def test_units_scale_through(runs):
    rec, a = _load(runs["sub"][1])
    rec_s, a_s = _load(runs["scaled"][1])
    np.testing.assert_array_equal(a_s["mask"], a["mask"])
    rng = np.ptp(a["mean"][1])
    np.testing.assert_allclose(a_s["mean"][1] / 1e-9, a["mean"][1], rtol=0, atol=1e-4 * rng)
    np.testing.assert_allclose(a_s["std_y"][1] / 1e-9, a["std_y"][1], rtol=1e-3)
    np.testing.assert_allclose(a_s["mean"][0], a["mean"][0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(rec_s["params"][1]["noise"], 1e-18 * rec["params"][1]["noise"],
                               rtol=1e-3)  # fmt: skip
    np.testing.assert_allclose(rec_s["metrics"][1]["rmse"], 1e-9 * rec["metrics"][1]["rmse"],
                               rtol=1e-3)  # fmt: skip


def test_mask_and_channels(runs, files):
    _, out, _ = runs["masked"]
    rec, a = _load(out)
    assert a["mean"].shape == (1, H, W)
    np.testing.assert_array_equal(a["mask"][0], files["mask"])
    np.testing.assert_array_equal(a["data"][0][files["mask"]], files["full"][1][files["mask"]])
    assert rec["settings"]["channels"] == [1] and rec["settings"]["mask"].endswith("mask.npy")
    # channel 1 (amplitude 0.5) was picked, not channel 0 (amplitude ~2)
    resid = a["mean"][0] - files["full"][1]
    assert np.sqrt(np.mean(resid**2)) < 0.1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--input", "{d}/full.npy", "--subsample", "0"], "--subsample must be in (0, 1]"),
        (["--input", "{d}/full.npy", "--subsample", "1.5"], "--subsample must be in (0, 1]"),
        (["--input", "{d}/full.npy", "--dataset", "a/b"], "--dataset needs an HDF5 --input"),
        (["--dataset", "a/b"], "--dataset need(s) --input"),
        (["--input", "{d}/full.npy", "--mask", "{d}/bad_mask.npy"], "mask shape"),
        (["--input", "{d}/full.npy", "--method", "cholesky"], "invalid choice: 'cholesky'"),
        (["--input", "{d}/full.npy", "--channels", "0,x"], "--channels"),
        (["--input", "{d}/scan.h5", "--dataset", "nope"], "no dataset 'nope'"),
        (["--input", "{d}/missing.npy"], "not found"),
        (["--input", "{d}/full.npy", "--noise", "0.1"], "--noise"),
        (["--input", "{d}/full.npy", "--kernel", "radial:matern99"], "unknown kernel"),
    ],
)
def test_bad_options_exit_with_a_message(files, extra, message, tmp_path, capsys):
    args = [s.format(d=files["dir"]) for s in extra]
    with pytest.raises(SystemExit) as e:
        main(["reconstruct", "--no-cache", "--out", str(tmp_path / "o"), *args])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
