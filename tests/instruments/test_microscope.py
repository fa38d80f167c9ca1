"""The Microscope protocol: coordinate frames, wire encoding, simulated microscopes (every
simulator), the Instrument adapter, and the journal a compiled campaign leaves when it fails."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from netutil import pfm_twin

from jaxscope.campaign import init_random, make_config, run
from jaxscope.host import RecordingInstrument, read_journal
from jaxscope.instruments import (
    PROBLEMS,
    Axis,
    CallbackProblem,
    Data,
    DiffractionTwin,
    EELSTwin,
    InstrumentError,
    MicroscopeInstrument,
    ScanFrame,
    SimulatedMicroscope,
    SimulatorInstrument,
    ThreeGaussians,
    as_callback,
    make_simulator,
)
from jaxscope.instruments.frames import box_to_normalized, normalized_to_box
from jaxscope.instruments.microscope import validate_points, validate_waveform
from jaxscope.instruments.pfm import beps_waveform
from jaxscope.instruments.simulated import request_keys
from jaxscope.instruments.wire import decode_array, encode_array
from jaxscope.runtime.jit import jit

pytestmark = pytest.mark.xdist_group("test_network")  # shares the twin with the network tests


# --- coordinate frames -----------------------------------------------------------------------
@pytest.mark.parametrize("origin", ["top-left", "bottom-left"])
def test_frames_known_values_and_round_trips(origin):
    f = ScanFrame((5, 9), size_m=(4e-6, 8e-6), center_m=(1e-6, -2e-6), origin=origin)
    corners = [[0, 0], [0, 8], [4, 0], [4, 8], [2, 4]]  # (row, col)
    n = f.convert(corners, "pixel", "normalized")
    top = 1.0 if origin == "top-left" else -1.0  # y of row 0
    np.testing.assert_allclose(n, [[-1, top], [1, top], [-1, -top], [1, -top], [0, 0]])
    m = f.convert(corners, "pixel", "metre")  # x = cx ± w/2, y = cy ± h/2
    np.testing.assert_allclose(m[0], [1e-6 - 4e-6, -2e-6 + top * 2e-6])
    np.testing.assert_allclose(m[4], [1e-6, -2e-6])
    np.testing.assert_allclose(f.convert([[0.5, 0.25]], "normalized", "pixel"),
                               [[(1 - top * 0.25) * 2, 1.5 * 4]])  # fmt: skip
    P = np.random.default_rng(0).uniform(-3, 12, (50, 2))
    for a, b in [("pixel", "metre"), ("normalized", "pixel"), ("metre", "normalized")]:
        np.testing.assert_allclose(f.convert(f.convert(P, a, b), b, a), P, rtol=1e-12,
                                   atol=1e-12 * np.abs(P).max())  # fmt: skip
    np.testing.assert_allclose(f.bounds("pixel"), [[0, 4], [0, 8]], atol=1e-12)


def test_flipping_the_origin_mirrors_the_rows():
    top, bottom = ScanFrame((5, 9)), ScanFrame((5, 9), origin="bottom-left")
    P = np.array([[1.0, 2.0], [3.5, 7.0]])
    flipped = bottom.convert(top.convert(P, "pixel", "normalized"), "normalized", "pixel")
    np.testing.assert_allclose(flipped, [[3.0, 2.0], [0.5, 7.0]])  # row -> H - 1 - row


def test_frame_and_box_errors_and_box_map():
    f = ScanFrame((4, 4))
    for bad, msg in [
        (lambda: f.convert([[0, 0]], "pixel", "inch"), "unknown frame 'inch'"),
        (lambda: f.convert([[0, 0, 0]], "pixel", "metre"), r"shape \(n, 2\)"),
        (lambda: f.convert([[np.nan, 0]], "pixel", "metre"), "finite"),
        (lambda: ScanFrame((1, 4)), "H, W >= 2"),
        (lambda: ScanFrame((4, 4), origin="centre"), "unknown origin"),
        (lambda: ScanFrame((4, 4), size_m=(0.0, 1.0)), "size_m"),
        (lambda: box_to_normalized([[0.0]], [[1.0, 0.0]]), "hi > lo"),
    ]:
        with pytest.raises(ValueError, match=msg):
            bad()
    B = [[0.0, 1.0], [-5.0, 15.0]]
    np.testing.assert_allclose(box_to_normalized([[0.25, 0.0]], B), [[-0.5, -0.5]])
    X = np.random.default_rng(1).uniform(0, 1, (20, 2))
    np.testing.assert_allclose(normalized_to_box(box_to_normalized(X, B), B), X, rtol=1e-12)
    assert ScanFrame.from_dict(f.to_dict()) == f


# --- wire encoding ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "uint32", "bool"])
def test_wire_round_trip_is_bit_exact(dtype):
    a = (np.random.default_rng(2).normal(size=(3, 0, 2)).astype(dtype), np.arange(7).astype(dtype))
    for x in a:
        y = decode_array(encode_array(x))
        assert y.dtype == x.dtype and y.shape == x.shape and y.tobytes() == x.tobytes()


def test_wire_refuses_malformed_arrays():
    good = encode_array(np.zeros(3))
    for bad, msg in [
        ({**good, "dtype": "object"}, "not allowed"),
        ({**good, "shape": [4]}, "expected 32"),
        ({**good, "shape": [-3]}, "non-negative"),
        ({**good, "extra": 1}, "exactly the keys"),
        ({**good, "shape": [1 << 20, 1 << 20]}, "exceeds the limit"),
    ]:
        with pytest.raises(ValueError, match=msg):
            decode_array(bad)
    with pytest.raises(TypeError, match="complex128"):
        encode_array(np.zeros(2, complex))


# --- simulated microscopes -------------------------------------------------------------------
@pytest.fixture(scope="module")
def pfm():
    return SimulatedMicroscope(pfm_twin(), seed=5)


def test_twin_noise_is_keyed_by_request_id(pfm):
    twin = pfm.sim
    X = np.asarray(twin.candidates, np.float64)[[0, 50, 99]]
    ids = ["m000001", "m000002", "m000003"]
    a = pfm.acquire_spectrum(X, ids=ids).values
    pfm.acquire_spectrum(X[:1])  # a call in between changes nothing
    b = pfm.acquire_spectrum(X, ids=ids).values
    assert a.tobytes() == b.tobytes()
    base = jax.random.fold_in(jax.random.key(5), 1)  # the id stream (module docstring)
    keys = [jax.random.fold_in(base, int(k)) for k in request_keys(ids)]
    want = [
        float(twin.measure(k, jnp.asarray(x, jnp.float32))) for k, x in zip(keys, X, strict=True)
    ]
    np.testing.assert_allclose(a, want, rtol=1e-5)  # eager vs compiled rounding
    other = pfm.acquire_spectrum(X, ids=["z1", "z2", "z3"]).values
    assert not np.allclose(other, a, rtol=1e-4)
    loops = pfm.acquire_spectrum(X, "spectrum", ids=ids)
    np.testing.assert_allclose([twin.scalarize(jnp.asarray(s)) for s in loops.values], a, rtol=1e-5)


def test_twin_data_carry_axes_units_and_image(pfm):
    info = pfm.describe()
    assert info.modes == ("scalar", "spectrum") and info.frame == "pixel"
    assert info.spectrum["shape"] == [2, 64] and info.units == ("px", "px")
    d = pfm.acquire_spectrum([[3.0, 4.0]], "spectrum")
    assert [(a.name, a.units) for a in d.axes] == [("point", ""), ("field", ""),
                                                   ("voltage", "V/Vmax")]  # fmt: skip
    np.testing.assert_array_equal(d.axes[2].values, np.asarray(beps_waveform()[0]))
    assert d.quantity == "piezoresponse" and Data.from_dict(d.to_dict()).values.tobytes() == \
        d.values.tobytes()  # fmt: skip
    img = pfm.acquire_image([[2, 17], [0, 19]], pixels=(4, 2), channels=["vertical"])
    image = np.asarray(pfm.sim.image)
    np.testing.assert_array_equal(img.values[..., 0], image[[2, 7, 12, 17]][:, [0, 19], 0])
    with pytest.raises(ValueError, match="unknown image channel"):
        pfm.acquire_image(channels=["height"])
    with pytest.raises(ValueError, match="axes"):
        Data(np.zeros((2, 3)), (Axis("a"),)).check()


def test_every_simulator_is_a_microscope():
    # one simulator of every class (the twins: the PFM twin above, EELS/4D-STEM below)
    small = {"sparse_scan": {"size": 8}, "three_gaussians": {"size": 8}}
    for name in ("three_gaussians", "ising", "sparse_scan", "branin", "combi_library",
                 "domain_writing"):  # fmt: skip
        assert name in PROBLEMS
        sim = make_simulator(name, key=jax.random.key(0), **small.get(name, {}))
        info = SimulatedMicroscope(sim).describe()
        assert info.frame == "box" and info.modes == ("scalar",) and info.dim == sim.dim
        np.testing.assert_array_equal(np.asarray(info.bounds), np.asarray(sim.bounds, float))
    toy = ThreeGaussians(noise=0.0, size=8)
    scope = SimulatedMicroscope(toy)
    x = np.asarray(toy.candidates[:4], np.float64)
    np.testing.assert_allclose(scope.acquire_spectrum(x).values, toy.truth(jnp.asarray(x)),
                               rtol=1e-5)  # noise-free: the truth  # fmt: skip
    img = scope.acquire_image(pixels=(3, 3))
    grid = np.stack(np.meshgrid([0, 0.5, 1], [0, 0.5, 1], indexing="ij"), -1).reshape(-1, 2)
    np.testing.assert_allclose(img.values.ravel(), toy.truth(jnp.asarray(grid)), rtol=1e-5)


# the twins of tests/instruments/test_eels.py and test_stem4d.py (built once in a suite run)
@pytest.mark.parametrize(
    "twin, shape, axes",
    [
        (lambda: EELSTwin.create(jax.random.key(1), size=48, window=8, max_aspect=1.0), [128],
         [("energy", "eV")]),
        (lambda: DiffractionTwin.create(jax.random.key(2), size=40, window=8, noise=0.02),
         [32, 32], [("ky", "detector px"), ("kx", "detector px")]),
    ],
)  # fmt: skip
def test_other_twins_give_spectra(twin, shape, axes):
    sim = twin()
    scope = SimulatedMicroscope(sim, seed=1)
    info = scope.describe()
    assert info.channels == ("haadf",) and info.spectrum["shape"] == shape
    X = np.asarray(sim.candidates, np.float64)[:2]
    d = scope.acquire_spectrum(X, "spectrum", ids=["a", "b"])
    assert d.values.shape == (2, *shape) and [(a.name, a.units) for a in d.axes[1:]] == axes
    again = scope.acquire_spectrum(X[::-1], "spectrum", ids=["b", "a"]).values
    assert again[::-1].tobytes() == d.values.tobytes()  # noise follows the id, not the order
    assert not np.array_equal(d.values[0], d.values[1])


def test_limits_are_checked(pfm):
    info = pfm.describe()
    with pytest.raises(ValueError, match=r"xy\[1, 0\] = -1 is outside the bounds \[0, 19\]"):
        pfm.acquire_spectrum([[1.0, 1.0], [-1.0, 2.0]])
    with pytest.raises(ValueError, match="inf"):
        pfm.move_probe([np.inf, 1.0])
    with pytest.raises(ValueError, match="batch limit 2"):
        validate_points(SimulatedMicroscope(pfm.sim, max_batch=2).describe(), np.ones((3, 2)))
    with pytest.raises(ValueError, match="1..4096 samples"):
        validate_waveform(info, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="unknown protocol"):
        pfm.acquire_spectrum([[1.0, 1.0]], "eels")
    with pytest.raises(ValueError, match="2 request ids for 1 points"):
        pfm.acquire_spectrum([[1.0, 1.0]], ids=["a", "b"])
    before = pfm.status()["stimuli"]
    out = pfm.apply_stimulus([4.0, 5.0], [0.0, 0.5, -0.5])
    assert out.values.tolist() == [0.0, 0.5, -0.5] and pfm.status()["stimuli"] == before + 1
    np.testing.assert_array_equal(pfm.position(), [4.0, 5.0])


def test_microscope_instrument_adapter(pfm):
    X = np.asarray(pfm.sim.candidates, np.float64)[:3]
    inst = MicroscopeInstrument(pfm)
    assert inst.dim == 2 and inst.accepts_ids and inst.bounds.tolist() == [[0, 19], [0, 19]]
    y = inst.measure(X, ids=["p", "q", "r"])
    assert y.tobytes() == pfm.acquire_spectrum(X, ids=["p", "q", "r"]).values.tobytes()
    off_max = MicroscopeInstrument(pfm, "spectrum", lambda d: d.values[:, 1].max(-1))
    loops = pfm.acquire_spectrum(X, "spectrum", ids=["p", "q", "r"]).values
    assert off_max.measure(X, ids=["p", "q", "r"]).tolist() == loops[:, 1].max(-1).tolist()
    with pytest.raises(ValueError, match=r"shape \(3, 2, 64\) for 3 points"):
        MicroscopeInstrument(pfm, "spectrum", lambda d: d.values).measure(X)
    with pytest.raises(ValueError, match="give a scalarize function"):
        MicroscopeInstrument(pfm, "spectrum")
    with pytest.raises(TypeError, match="microscope"):
        MicroscopeInstrument(object())


# --- a compiled campaign that fails at call k leaves a journal of what it measured -----------
def test_compiled_campaign_failure_keeps_a_journal(tmp_path):
    sim = ThreeGaussians(noise=0.01, size=4)
    config = make_config(sim.candidates, acquisition="ucb", mode="fixed")
    state = jit(init_random)(jax.random.key(0), config, sim, 3, num_steps=6)
    path = tmp_path / "callback.jsonl"
    inst = RecordingInstrument(SimulatorInstrument(sim, seed=1, fail_calls={4}), path)
    with pytest.raises(jax.errors.JaxRuntimeError, match="simulated instrument failure on call 4"):
        run(state, config, CallbackProblem(sim.candidates, as_callback(inst)))
    inst.close()
    records = read_journal(path)
    meas = [r for r in records if r["kind"] == "measurement"]
    (fail,) = [r for r in records if r["kind"] == "failure"]
    assert [r["step"] for r in meas] == [0, 1, 2, 3] and fail["step"] == 4
    assert "InstrumentError" in fail["reason"] and issubclass(InstrumentError, RuntimeError)
    clean = SimulatorInstrument(sim, seed=1)  # the same points measured without the fault
    want = [float(clean.measure(np.asarray([r["x"]]))[0]) for r in meas]
    assert [r["y"] for r in meas] == want


def test_serve_command_options(tmp_path, monkeypatch):
    from jaxscope.cli import build_parser
    from jaxscope.cli.serve_cmd import TOKEN_ENV, read_token

    p = build_parser()
    args = p.parse_args(["serve", "--instrument", "pfm-twin", "--port", "0", "--size", "20"])
    assert args.host == "127.0.0.1" and args.max_batch == 1024
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert read_token(args) == "from-env"
    (tmp_path / "tok").write_text("from-file\n")
    args.token_file = str(tmp_path / "tok")
    assert read_token(args) == "from-file"
    args.token = "from-flag"
    assert read_token(args) == "from-flag"
    (tmp_path / "empty").write_text("")
    args.token, args.token_file = None, str(tmp_path / "empty")
    with pytest.raises(ValueError, match="empty"):
        read_token(args)
    with pytest.raises(SystemExit):
        p.parse_args(["serve", "--instrument", "no-such", "--port", "0"])
