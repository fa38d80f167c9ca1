"""Scans: NSID-like HDF5 files give exact coordinates, units and values; NaNs and explicit masks
mark the measured pixels; channel axes, rectangular images, scattered points and clear errors;
the real PTO file when it is present."""

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from jaxscope.images import Scan, load_scan, scan_from_array, scan_from_points

DATA = Path(os.environ.get("JAXSCOPE_DATA", Path(__file__).parents[2] / ".." / "shared" / "data"))


def _nsid(path, data, *, units="V", quantity="Amplitude", spectral=None, xy_units=("m", "m")):
    """A pycroscopy-NSID-like file: main dataset + attached dimension scales (y rows, x cols)."""
    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_0")
        d = g.create_dataset("Channel_0", data=data)
        d.attrs.update(units=units, quantity=quantity, data_type="IMAGE")
        H, W = data.shape[:2]
        axes = [
            ("y", 1e-8 * np.arange(H) + 2e-8, xy_units[0]),
            ("x", 5e-9 * np.arange(W), xy_units[1]),
        ]
        if spectral is not None:
            axes.append(("Voltage", spectral, "V"))
        for i, (name, values, unit) in enumerate(axes):
            s = g.create_dataset(name, data=values)
            s.make_scale(name)
            kind = b"SPECTRAL" if name == "Voltage" else b"SPATIAL"  # bytes: must be decoded
            s.attrs.update(units=np.bytes_(unit), quantity=name, dimension_type=kind)
            d.dims[i].attach_scale(s)
    return path


def test_nsid_image_coordinates_units_and_values_exact(tmp_path):
    img = np.random.RandomState(0).randn(5, 7).astype(np.float32)
    s = load_scan(_nsid(tmp_path / "a.h5", img))
    assert isinstance(s, Scan) and s.data.shape == (1, 5, 7) and s.data.dtype == np.float64
    np.testing.assert_array_equal(s.data[0], img.astype(np.float64))
    np.testing.assert_array_equal(s.y, 1e-8 * np.arange(5) + 2e-8)
    np.testing.assert_array_equal(s.x, 5e-9 * np.arange(7))
    assert s.units == ("V",) and s.quantities == ("Amplitude",) and s.axis_units == ("m", "m")
    assert s.mask.shape == (5, 7) and s.mask.all()
    # the same file by its path, and a list of two paths stacks channels
    p = "Measurement_000/Channel_0/Channel_0"
    two = load_scan(tmp_path / "a.h5", [p, p])
    assert two.data.shape == (2, 5, 7) and two.units == ("V", "V")


def test_nsid_spectral_stack_is_channels_and_channels_selects(tmp_path):
    cube = np.random.RandomState(1).rand(4, 6, 3)
    s = load_scan(_nsid(tmp_path / "b.h5", cube, units="a.u.", spectral=[0.0, 1.5, -1.5]))
    assert s.data.shape == (3, 4, 6) and s.units == ("a.u.",) * 3
    np.testing.assert_array_equal(s.data, np.moveaxis(cube, -1, 0))
    assert "1.5 V" in s.quantities[1] and s.axis_units == ("m", "m")
    sub = load_scan(tmp_path / "b.h5", channels=[2, 0])
    np.testing.assert_array_equal(sub.data, np.moveaxis(cube, -1, 0)[[2, 0]])
    assert load_scan(tmp_path / "b.h5", channels=slice(1, None)).data.shape == (2, 4, 6)


def test_plain_hdf5_without_scales_has_pixel_coordinates_and_takes_a_mask(tmp_path):
    img = np.arange(12.0).reshape(3, 4)
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["scan/height"] = img
    m = img % 2 == 0
    s = load_scan(tmp_path / "p.h5", mask=m)
    np.testing.assert_array_equal(s.y, [0, 1, 2])
    np.testing.assert_array_equal(s.x, [0, 1, 2, 3])
    assert s.quantities == ("height",) and s.units == ("",) and s.axis_units == ("", "")
    np.testing.assert_array_equal(s.mask, m)
    np.testing.assert_array_equal(s.data[0][m], img[m])


def test_npy_nans_become_the_mask(tmp_path):
    img = np.arange(35.0).reshape(5, 7)
    img[1, 2] = img[4, 6] = np.nan
    np.save(tmp_path / "a.npy", img)
    s = load_scan(tmp_path / "a.npy")
    assert s.mask.shape == (5, 7) and s.mask.sum() == 33 and not s.mask[1, 2]
    np.testing.assert_array_equal(s.data[0][s.mask], img[np.isfinite(img)])
    np.testing.assert_array_equal(s.y, np.arange(5.0))
    np.testing.assert_array_equal(s.x, np.arange(7.0))
    assert s.units == ("",) and s.axis_units == ("", "")


def test_explicit_mask_array_or_file_ignores_values_outside(tmp_path):
    img = np.arange(35.0).reshape(5, 7)
    m = np.zeros((5, 7), bool)
    m[::2, ::3] = True
    np.save(tmp_path / "a.npy", img)
    np.save(tmp_path / "m.npy", m)
    for mask in (m, tmp_path / "m.npy", str(tmp_path / "m.npy")):
        s = load_scan(tmp_path / "a.npy", mask=mask)
        np.testing.assert_array_equal(s.mask, m)
        assert np.isnan(s.data[0][~m]).all()
        np.testing.assert_array_equal(s.data[0][m], img[m])


def test_channel_axis_first_or_last_gives_the_same_scan():
    cube = np.random.RandomState(2).randn(3, 20, 24)
    a = scan_from_array(cube, channel_axis=0)
    b = scan_from_array(np.moveaxis(cube, 0, -1), channel_axis=-1)
    c = scan_from_array(np.moveaxis(cube, 0, -1))  # the only small axis
    for s in (b, c):
        np.testing.assert_array_equal(s.data, a.data)
        np.testing.assert_array_equal(s.mask, a.mask)
        assert s.quantities == a.quantities and s.units == a.units


def test_per_channel_masks_when_channels_differ():
    cube = np.ones((2, 4, 5))
    cube[1, 0, 0] = np.nan
    s = scan_from_array(cube, channel_axis=0, units=["V", "deg"])
    assert s.mask.shape == (2, 4, 5) and s.mask[0].all() and not s.mask[1, 0, 0]
    assert s.common_mask.shape == (4, 5) and s.common_mask.sum() == 19
    assert s.units == ("V", "deg")


def test_points_on_pixel_centres_reproduce_the_array_and_average_duplicates():
    img = np.random.RandomState(3).randn(5, 7)
    rc = np.argwhere(np.ones((5, 7), bool)).astype(float)
    s = scan_from_points(rc, img.ravel(), (5, 7))
    np.testing.assert_array_equal(s.data[0], img)
    # physical coordinates on a 2 nm × 3 nm pitch, with one pixel measured twice
    y0, x0 = 1e-6, -2e-6
    pts = np.stack([y0 + 2e-9 * rc[:, 0], x0 + 3e-9 * rc[:, 1]], 1)
    pts = np.vstack([pts, pts[8] + 4e-10])  # a repeat, jittered within the pixel
    vals = np.append(img.ravel(), img.ravel()[8] + 2.0)
    ext = (y0, y0 + 8e-9, x0, x0 + 18e-9)
    p = scan_from_points(pts, vals, (5, 7), extent=ext, axis_units=("m", "m"))
    i, j = divmod(8, 7)
    assert p.data[0, i, j] == pytest.approx(img[i, j] + 1.0)
    mask = np.ones((5, 7), bool)
    mask[i, j] = False
    np.testing.assert_allclose(p.data[0][mask], img[mask], rtol=0, atol=0)
    np.testing.assert_allclose(p.y, y0 + 2e-9 * np.arange(5), rtol=1e-12)
    np.testing.assert_allclose(p.x, x0 + 3e-9 * np.arange(7), rtol=1e-12)
    q = scan_from_points(pts, vals, extent=ext, pixel=(2e-9, 3e-9))
    np.testing.assert_array_equal(q.data, p.data)
    # unmeasured pixels are NaN and masked
    few = scan_from_points(rc[:10], img.ravel()[:10], (5, 7))
    assert few.mask.sum() == 10 and np.isnan(few.data[0, 4, 6])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda t: load_scan(t / "missing.npy"), "file not found"),
        (lambda t: load_scan(t / "a.h5", "no/such"), "no dataset 'no/such'.*Channel_0"),
        (lambda t: load_scan(t / "two.h5"), "3 2-D/3-D datasets.*first.*g/third.*second"),
        (lambda t: load_scan(t / "two.h5", ["first", "g/third"]), "different image shapes"),
        (lambda t: scan_from_array(np.zeros((2, 3, 4, 5))), "2-D.*3-D"),
        (lambda t: scan_from_array(np.zeros((5, 7)), np.ones((7, 5), bool)), "mask shape"),
        (lambda t: scan_from_array(np.full((5, 7), np.nan)), "no measured pixels"),
        (lambda t: scan_from_array(np.zeros((5, 7)), np.eye(5, 7, dtype=bool) & False), "no meas"),
        (lambda t: scan_from_array(np.where(np.eye(5, 7), 1.0, np.nan)[:2]), "only 2 measured"),
        (lambda t: scan_from_array(np.zeros((5, 7)), y=[0, 1, np.nan, 3, 4]), "non-finite y"),
        (lambda t: scan_from_points([[0, 0], [np.inf, 1]], [1, 2]), "non-finite coordinates"),
        (lambda t: scan_from_points([[0, 0], [1, 9]], [1, 2], (5, 7)), "outside the extent"),
        (lambda t: scan_from_points([[0, 0]] * 3, [1, 2, 3], extent=(0, 1, 0, 1)), "shape= or p"),
        (lambda t: scan_from_array(np.zeros((32, 32, 20))), "channel_axis"),
    ],
)
def test_clear_errors(tmp_path, call, match):
    _nsid(tmp_path / "a.h5", np.zeros((5, 7)))
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["first"] = np.zeros((3, 4))
        f["second"] = np.zeros((3, 4))
        f["g/third"] = np.zeros((4, 3))
    with pytest.raises(ValueError, match=match):
        call(tmp_path)


def test_real_pto_file_four_channels_with_units():
    path = DATA / "PTO_Funakubo0001.h5"
    if not path.is_file():
        pytest.skip(f"real data not present: {path}")
    paths = [f"Measurement_000/Channel_{k}/Channel_{k}/Channel_{k}" for k in range(4)]
    s = load_scan(path, paths)
    assert s.data.shape == (4, 256, 256) and s.mask.shape == (256, 256) and s.mask.all()
    assert s.units == ("m", "m", "m", "deg") and s.axis_units == ("m", "m")
    assert s.quantities == (
        "HeightRetrace",
        "AmplitudeRetrace",
        "DeflectionRetrace",
        "PhaseRetrace",
    )
    assert s.x[0] == 0 and s.x[-1] == pytest.approx(1e-6) and s.y[-1] == pytest.approx(1e-6)
    assert -90.5 < np.nanmin(s.data[3]) and np.nanmax(s.data[3]) < 270.5  # phase in degrees
    with pytest.raises(ValueError, match="4 2-D/3-D datasets"):
        load_scan(path)
