"""``jaxscope reconstruct``: printed and saved metrics agree with a NumPy recomputation from the
saved arrays; the PNG is a valid image of the documented size; bad options fail clearly."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest

from jaxscope.cli import build_parser, main

# its module fixtures are built once: one worker runs the file (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_main")

ARGS = ["reconstruct", "--size", "32", "--fraction", "0.3", "--seed", "3", "--samples", "32"]
ARGS += ["--noise", "0.05"]  # the synthetic surface is noise-free unless --noise is given


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reconstruct")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(ARGS + ["--out", str(out), "--no-cache"])
    return code, out, buf.getvalue()


def test_exit_code_and_files(run):
    code, out, _ = run
    assert code == 0
    assert {p.name for p in out.iterdir()} >= {"reconstruct.png", "metrics.json", "arrays.npz"}


def test_json_metrics_equal_recomputation_from_saved_arrays(run):
    _, out, _ = run
    rec = json.loads((out / "metrics.json").read_text())
    a = np.load(out / "arrays.npz")
    truth, mean, std = (a[k].astype(np.float64) for k in ("truth", "mean", "std"))
    idx = a["indices"]
    assert truth.shape == mean.shape == std.shape == (32, 32)
    assert rec["size"] == 32 and rec["num_measured"] == len(idx) == round(0.3 * 32 * 32)
    m = rec["metrics"]
    err = mean - truth
    np.testing.assert_allclose(m["rmse"], np.sqrt(np.mean(err**2)), rtol=1e-4)
    np.testing.assert_allclose(m["truth_std"], truth.std(), rtol=1e-4)
    np.testing.assert_allclose(m["calibration"], np.mean(np.abs(err) <= 2 * std), atol=1.5 / 1024)
    assert 0.8 <= m["calibration"] <= 1.0 and m["rmse"] < 0.25 * truth.std()
    # the measurements are the truth at the measured pixels plus noise of sd 0.05
    resid = a["measured"] - truth.ravel()[idx]
    assert abs(resid.std() / 0.05 - 1) < 0.2
    assert a["samples"].shape == (32, 32, 32)
    # a noisy run also scores a fresh re-measurement with the predictive σ_y (noise included)
    std_y, remeasured = a["std_y"].astype(np.float64), a["remeasured"]
    np.testing.assert_allclose(std_y**2 - std**2, rec["hyperparameters"]["noise"], rtol=1e-4)
    assert abs((remeasured - truth).std() / 0.05 - 1) < 0.1
    cal_y = np.mean(np.abs(mean - remeasured) <= 2 * std_y)
    np.testing.assert_allclose(m["calibration_predictive"], cal_y, atol=1.5 / 1024)
    assert 0.85 <= m["calibration_predictive"] <= 1.0
    assert set(rec["hyperparameters"]) == {"lengthscale", "variance", "noise", "mean"}
    assert (
        rec["kernel"] == "matern32" and rec["seed"] == 3 and rec["command"].startswith("jaxscope")
    )


def test_printed_values_match_json(run):
    _, out, text = run
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    rmse = float(re.search(r"RMSE ([0-9.]+)", text).group(1))
    cal = float(re.search(r"calibration ([0-9.]+)", text).group(1))
    assert rmse == pytest.approx(m["rmse"], abs=1e-6)
    assert cal == pytest.approx(m["calibration"], abs=1e-6)


def test_png_is_a_valid_image_of_expected_size(run):
    _, out, _ = run
    data = (out / "reconstruct.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1500, 340)  # 15 × 3.4 inches at 100 dpi
    import matplotlib.image as mpimg

    img = mpimg.imread(out / "reconstruct.png")
    assert img.shape[:2] == (340, 1500)
    # five panels with content: each fifth of the image has many distinct colours
    for k in range(5):
        panel = img[60:300, 300 * k + 30 : 300 * k + 270, :3].reshape(-1, 3)
        assert len(np.unique(panel, axis=0)) > 50, k


def test_synthetic_default_adds_no_noise(tmp_path, capsys):
    out = tmp_path / "clean"
    args = ["reconstruct", "--size", "16", "--fraction", "0.3", "--samples", "1"]
    assert main(args + ["--map-steps", "10", "--no-cache", "--out", str(out)]) == 0
    rec = json.loads((out / "metrics.json").read_text())
    a = np.load(out / "arrays.npz")
    assert rec["noise_std"] == 0.0 and "calibration_predictive" not in rec["metrics"]
    np.testing.assert_array_equal(a["measured"], a["truth"].ravel()[a["indices"]])
    assert "std_y" not in a.files and "predictive" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--fraction", "1.5"], "fraction"),
        (["--kernel", "bessel"], "unknown kernel"),
        (["--size", "2"], "size"),
        (["--noise", "-1"], "--noise"),
        (["--method", "exact"], "need(s) --input"),
        (["--subsample", "0.5"], "need(s) --input"),
    ],
)
def test_bad_options_exit_with_a_message(extra, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["reconstruct", "--no-cache", "--out", str(tmp_path)] + extra)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_subcommands_are_registered(capsys):
    with pytest.raises(SystemExit):
        main([])  # a subcommand is required
    assert "reconstruct" in capsys.readouterr().err
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"reconstruct", "campaign"} <= set(sub.choices)
