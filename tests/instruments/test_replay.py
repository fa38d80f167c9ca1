"""Replay instruments: an NSID file written here from the PFM twin's loops is read back and
replayed exactly (truth = the twin's own loop area, scaled by the file's voltage unit), the
zero-bias structure image is the cube's zero-crossing readout, bad files and cubes are refused
by name, and the measured PbTiO3 map (when present on this machine) replays with the shoelace
areas of its raw spectra."""

from __future__ import annotations

import os

import equinox as eqx
import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxscope.instruments import PFMTwin, SpectralReplay, beps_replay, read_nsid, zero_bias_image

VMAX = 8.5
# the measured map: $JAXSCOPE_BEPS_PTO, else the team's data folder beside the clone
REAL = os.environ.get("JAXSCOPE_BEPS_PTO", os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data", "BEPS_PTO_50x50.h5"))  # fmt: skip


def _shoelace(v, r):
    return 0.5 * np.abs(np.sum(v * np.roll(r, -1, -1) - np.roll(v, -1) * r, -1))


def _write_nsid(path, cube, volts, *, extra=False):
    """The sidpy/pyNSID layout: a main dataset with DIMENSION_LABELS and attached scales."""
    with h5py.File(path, "w") as f:
        g = f.create_group("Channel_000/generic")
        ds = g.create_dataset("generic", data=cube)
        ds.attrs["DIMENSION_LABELS"] = np.array(["X", "Y", "Voltage"], dtype=object)
        for k, (name, vals) in enumerate(
            (
                ("X", np.arange(cube.shape[0]) * 1e-8),
                ("Y", np.arange(cube.shape[1]) * 1e-8),
                ("Voltage", volts),
            )  # fmt: skip
        ):
            s = g.create_dataset(name, data=vals)
            s.make_scale(name)
            ds.dims[k].attach_scale(s)
        if extra:
            d2 = g.create_dataset("other", data=cube[..., :2])
            d2.attrs["DIMENSION_LABELS"] = np.array(["X", "Y", "Z"], dtype=object)


@pytest.fixture(scope="module")
def twin_and_file(tmp_path_factory):
    twin = PFMTwin.create(jax.random.key(3), size=20, window=8, noise=0.0)
    pix = np.stack(np.meshgrid(np.arange(20), np.arange(20), indexing="ij"), -1).reshape(-1, 2)
    spec = eqx.filter_jit(lambda s, X: jax.vmap(s.clean_spectrum)(X))
    off = np.asarray(spec(twin, jnp.asarray(pix, jnp.float32)))[:, 1].reshape(20, 20, 64)
    path = tmp_path_factory.mktemp("nsid") / "beps.h5"
    _write_nsid(path, off.astype(np.float64), np.asarray(twin.axis, np.float64) * VMAX)
    return twin, off, path


def test_read_nsid_returns_the_dataset_and_its_scales(twin_and_file):
    twin, off, path = twin_and_file
    data, axes = read_nsid(path)
    assert list(axes) == ["X", "Y", "Voltage"]
    np.testing.assert_array_equal(data, off.astype(np.float64))
    np.testing.assert_allclose(axes["Voltage"], np.asarray(twin.axis) * VMAX)
    np.testing.assert_allclose(axes["X"], np.arange(20) * 1e-8)


def test_replay_truth_is_the_twins_loop_area_in_file_units(twin_and_file):
    twin, off, path = twin_and_file
    rep = beps_replay(path, window=8)
    np.testing.assert_array_equal(rep.candidates, twin.candidates)
    X = rep.candidates
    np.testing.assert_allclose(rep.truth(X), VMAX * np.asarray(twin.truth(X)), rtol=1e-4,
                               atol=1e-6)  # fmt: skip
    ij = np.asarray(X).astype(int)
    v = np.asarray(twin.axis, np.float64) * VMAX
    np.testing.assert_allclose(rep.truth(X), _shoelace(v, off[ij[:, 0], ij[:, 1]]), rtol=1e-4)


def test_replay_returns_the_recording_whatever_the_key(twin_and_file):
    _, off, path = twin_and_file
    rep = beps_replay(path, window=8)
    x = rep.candidates[17]
    r, c = np.asarray(x).astype(int)
    for k in (0, 1, 99):
        np.testing.assert_array_equal(rep.spectrum(jax.random.key(k), x), off[r, c])
    ys = rep.measure_batch(jax.random.key(5), rep.candidates[:10])
    np.testing.assert_allclose(ys, rep.truth(rep.candidates[:10]), rtol=1e-6)


def test_structure_image_is_the_zero_bias_readout(twin_and_file):
    _, off, path = twin_and_file
    rep = beps_replay(path, window=8)
    assert rep.image.shape == (20, 20, 2)
    np.testing.assert_allclose(rep.image[..., 0], off[..., 0], rtol=1e-6)
    np.testing.assert_allclose(rep.image[..., 1], off[..., 32], rtol=1e-6)
    # patches index the derived image exactly: candidate i's window starts at its pixel - w/2
    P = rep.patches(normalize="none")
    r, c = np.asarray(P.coords[40]).astype(int)
    np.testing.assert_allclose(P.patches[40], rep.image[r - 4 : r + 4, c - 4 : c + 4], rtol=1e-6)


def test_zero_bias_image_without_exact_zeros_uses_the_sign_changes():
    v = np.array([0.1, 1.0, 0.2, -0.9, -0.1, 0.3])  # sign changes after steps 2 and 4
    cube = np.arange(2 * 2 * 6, dtype=float).reshape(2, 2, 6)
    img = np.asarray(zero_bias_image(cube, v))
    np.testing.assert_array_equal(img[..., 0], cube[..., 2])
    np.testing.assert_array_equal(img[..., 1], cube[..., 4])


def test_bad_cubes_and_files_are_refused_by_name(twin_and_file, tmp_path):
    _, off, path = twin_and_file
    v = np.linspace(-1, 1, 64)
    bad = off.copy()
    bad[3, 5, 10] = np.nan
    with pytest.raises(ValueError, match=r"non-finite.*\(3, 5\)"):
        SpectralReplay.from_cube(bad, v, window=8)
    with pytest.raises(ValueError, match="square"):
        SpectralReplay.from_cube(off[:, :18], v, window=8)
    with pytest.raises(ValueError, match="axis has shape"):
        SpectralReplay.from_cube(off, v[:63], window=8)
    with pytest.raises(ValueError, match="unknown scalarizer"):
        SpectralReplay.from_cube(off, v, window=8, scalarizer="peak_ratio")
    with pytest.raises(ValueError, match="larger than the image"):
        SpectralReplay.from_cube(off, v, window=32)
    with pytest.raises(FileNotFoundError, match="no file"):
        read_nsid(tmp_path / "absent.h5")
    two = tmp_path / "two.h5"
    _write_nsid(two, off, v, extra=True)
    with pytest.raises(ValueError, match="2 datasets"):
        read_nsid(two)
    with pytest.raises(KeyError, match="no dataset"):
        read_nsid(two, dataset="nope")


@pytest.mark.skipif(not os.path.exists(REAL), reason="measured BEPS data not on this machine")
def test_measured_pto_map_replays_its_raw_loop_areas():
    with h5py.File(REAL, "r") as f:
        raw = f["Channel_000/generic/generic"][()]
        volts = f["Channel_000/generic/Voltage"][()]
    rep = beps_replay(REAL, window=16)
    assert rep.candidates.shape == (35 * 35, 2)
    ij = np.asarray(rep.candidates).astype(int)
    want = _shoelace(volts, raw[ij[:, 0], ij[:, 1]])
    np.testing.assert_allclose(rep.truth(rep.candidates), want, rtol=2e-3, atol=1e-7)
    np.testing.assert_allclose(rep.image[..., 1], raw[..., 32], rtol=1e-5, atol=1e-9)
