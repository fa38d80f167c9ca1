"""Networked microscope (Pyro5 over loopback): refusals, injected faults, a campaign through
a server killed and restarted. Real server processes, at most three, always killed."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fault_server import NOISE_SEED
from netutil import NUM_INIT, NUM_STEPS, Server, fault_server_cmd, pfm_config, pfm_twin, serve_cmd
from Pyro5.api import Proxy

from jaxscope.host import HostRunner
from jaxscope.instruments import (
    InstrumentError,
    InstrumentUnavailable,
    MicroscopeInstrument,
    SimulatedMicroscope,
)
from jaxscope.instruments.client import RemoteMicroscope
from jaxscope.instruments.server import OBJECT_ID, MicroscopeServer
from jaxscope.instruments.wire import encode_array

pytestmark = pytest.mark.xdist_group("test_network")
TOKEN = "test-token-0123"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("fault_server") / "server.log"
    cmd = fault_server_cmd("--port", "0", "--token", TOKEN, "--slow", "1.2", "--max-batch",
                           "16", "--nan-ids", "m000007", "--drop-ids", "m000009",
                           "--slow-ids", "m000011", "--shape-ids", "m000013")  # fmt: skip
    s = Server(cmd, log).launch()
    pfm_twin()  # built while the server starts
    yield s.wait_ready()
    s.kill()


@pytest.fixture(scope="module")
def local():
    """The served microscope, in process: what every answer must equal (noise keyed by id)."""
    return SimulatedMicroscope(pfm_twin(), seed=NOISE_SEED)


def client(server, **kw) -> RemoteMicroscope:
    kw = {"timeout": 0.5, "retries": 6, "backoff": 0.05} | kw
    return RemoteMicroscope(port=server.port, token=TOKEN, **kw)


def test_wrong_or_missing_token_is_refused(server):
    with client(server) as good:
        before = good.status()["server"]["refused"]
        with pytest.raises(PermissionError, match="token"):
            RemoteMicroscope(port=server.port, token="wrong", timeout=2.0)
        with Proxy(f"PYRO:{OBJECT_ID}@127.0.0.1:{server.port}") as raw:
            with pytest.raises(PermissionError, match="token"):
                raw.status()  # no token at all
            with pytest.raises(PermissionError, match="token"):
                raw.acquire_spectrum(encode_array(np.zeros((1, 2))))  # points where the token goes
            with pytest.raises(AttributeError, match="no exposed"):
                raw._run(TOKEN, 0, print)  # only the protocol is exposed
        status = good.status()
        assert status["server"]["refused"] == before + 3 and good.reconnects == 0


def test_out_of_range_nonfinite_and_oversized_never_reach_the_instrument(server, local):
    with client(server) as scope:
        measured = scope.status()["measured"]
        cases = [
            ([[5.0, 19.5]], r"xy\[0, 1\] = 19.5 is outside the bounds \[0, 19\]"),
            ([[np.nan, 5.0]], r"xy\[0, 0\] is nan: points must be finite"),
            (np.full((17, 2), 5.0), "more than the batch limit 16"),
        ]
        for xy, msg in cases:
            with pytest.raises(ValueError, match=msg):
                scope.acquire_spectrum(xy)
        with pytest.raises(ValueError, match="outside the bounds"):
            scope.move_probe([-0.2, 5.0])
        with pytest.raises(ValueError, match="amplitude 2 exceeds the limit 1"):
            scope.apply_stimulus([5.0, 5.0], [0.0, 2.0])
        assert scope.status()["measured"] == measured  # nothing reached the microscope
        assert scope.transport_errors == 0  # refusals are not retried
        np.testing.assert_array_equal(scope.move_probe([2.5, 7.0]), [2.5, 7.0])
        np.testing.assert_array_equal(scope.position(), [2.5, 7.0])


def test_answers_equal_the_local_instrument_and_carry_axes(server, local):
    X = np.asarray(local.sim.candidates, np.float64)[[3, 17, 40]]
    ids = ["a-1", "a-2", "a-3"]
    with client(server, serializer="json") as scope:
        got = scope.acquire_spectrum(X, ids=ids)
        info = scope.describe()
    want = local.acquire_spectrum(X, ids=ids)
    assert got.values.dtype == want.values.dtype == np.float32
    np.testing.assert_array_equal(got.values, want.values)
    assert [a.name for a in got.axes] == ["point"] and info.frame == "pixel"
    assert info.bounds == ((0.0, 19.0), (0.0, 19.0)) and info.max_batch == 16
    assert info.scan.pixels == (20, 20) and info.channels == ("vertical", "lateral")
    with client(server) as scope:
        img = scope.acquire_image([[0, 15], [3, 18]], pixels=(4, 6), channels=["lateral"])
        loops = scope.acquire_spectrum(X[:2], "spectrum", ids=ids[:2])
    image = np.asarray(local.sim.image)
    np.testing.assert_array_equal(img.values[..., 0], image[0:16:5][:, 3:19:3, 1])
    assert [a.name for a in loops.axes] == ["point", "field", "voltage"]
    assert loops.axes[1].labels == ("on-field", "off-field") and loops.values.shape == (2, 2, 64)
    np.testing.assert_array_equal(
        loops.values, local.acquire_spectrum(X[:2], "spectrum", ids=ids[:2]).values
    )


def test_slow_and_dropped_answers_are_retried_with_the_same_ids(server, local):
    X = np.asarray(local.sim.candidates, np.float64)[[5, 6]]
    for ids in (["slow-1", "x-1"], ["drop-1", "x-2"]):
        with client(server) as scope:
            before = scope.status()["server"]
            got = scope.acquire_spectrum(X, ids=ids).values
            assert scope.transport_errors >= 1 and scope.reconnects >= 1
            after = scope.status()["server"]
        np.testing.assert_array_equal(got, local.acquire_spectrum(X, ids=ids).values)
        # the retries were answered from the first attempt: measured and charged once
        assert after["dose"] - before["dose"] == 2 and after["calls"] - before["calls"] == 1
        assert after["replayed"] > before["replayed"]


def test_nan_and_wrong_shape_answers(server, local):
    X = np.asarray(local.sim.candidates, np.float64)[[1, 2, 3]]
    # no slow ids here: a generous timeout, so a loaded box (the server compiling a new batch
    # size) cannot turn an answer into a transport error and hide what is counted below
    with client(server, timeout=10.0) as scope:
        inst = MicroscopeInstrument(scope)
        y = inst.measure(X, ids=["ok-1", "nan-1", "ok-2"])
        want = local.acquire_spectrum(X, ids=["ok-1", "nan-1", "ok-2"]).values
        assert np.isnan(y[1]) and y[[0, 2]].tolist() == want[[0, 2]].tolist()
        with pytest.raises(ValueError, match=r"shape \(4,\) for 3 points"):
            inst.measure(X, ids=["shape-1", "ok-3", "ok-4"])
        assert scope.transport_errors == 0


def test_instrument_errors_reach_the_client_clearly(server, local):
    X = np.asarray(local.sim.candidates, np.float64)[[4]]
    with client(server) as scope:
        with pytest.raises(InstrumentError, match="hardware fault: stage interlock open"):
            scope.acquire_spectrum(X, ids=["fail-1"])
        with pytest.raises(RuntimeError, match="VendorError: controller error 0x2f"):
            scope.acquire_spectrum(X, ids=["vendor-1"])
        with pytest.raises(ValueError, match="region corner"):
            scope.acquire_image([[0, 25], [0, 5]])
        with Proxy(f"PYRO:{OBJECT_ID}@127.0.0.1:{server.port}") as raw:
            raw._pyroSerializer = "marshal"
            with pytest.raises(PermissionError, match="serializer refused"):
                raw.status(TOKEN)
        assert scope.transport_errors == 0


def test_gone_server_is_unavailable_not_a_failure(server):
    with pytest.raises(InstrumentUnavailable, match="unavailable .*4 tries"):
        RemoteMicroscope(port=1, token=TOKEN, timeout=0.5, retries=3, backoff=0.01)


@pytest.mark.slow
def test_campaign_through_faults_loses_nothing(server, local, tmp_path):
    """Host runner against the fault server: ids m000007 (NaN) and m000013 (wrong shape) are
    journaled failures and decided again; m000009 (dropped) and m000011 (slow) are retried by
    the client, no failure; every value equals the local instrument's for its id."""
    with client(server) as scope, HostRunner(pfm_config(), local.sim, tmp_path, num_steps=NUM_STEPS,
                                             num_init=NUM_INIT, progress=False,
                                             checkpoint_every=100) as runner:  # fmt: skip
        state = runner.run(MicroscopeInstrument(scope), max_steps=8)
        records = runner.journal.records
    assert int(state.step) == 8
    fails = {r["id"]: r["reason"] for r in records if r["kind"] == "failure"}
    assert set(fails) == {"m000007", "m000013"}
    assert fails["m000007"] == "non-finite value nan" and "shape (2,)" in fails["m000013"]
    meas = [r for r in records if r["kind"] == "measurement"]
    assert len(meas) == NUM_INIT + 8 and len({r["id"] for r in meas}) == len(meas)
    assert {"m000009", "m000011"} <= {r["id"] for r in meas}
    X, ids = np.asarray([r["x"] for r in meas]), [r["id"] for r in meas]
    calls = [slice(0, NUM_INIT)] + [slice(i, i + 1) for i in range(NUM_INIT, len(ids))]
    want = np.concatenate([local.acquire_spectrum(X[c], ids=ids[c]).values for c in calls])
    assert [r["y"] for r in meas] == want.astype(float).tolist()


def test_server_budget_refuses_before_the_instrument():
    scope = SimulatedMicroscope(pfm_twin(), seed=0)
    srv = MicroscopeServer(scope, TOKEN, max_batch=8, max_dose=5)
    xy = encode_array(np.full((3, 2), 5.0))
    srv.acquire_spectrum(TOKEN, xy)
    with pytest.raises(RuntimeError, match="dose budget exhausted: 3 of 5 used, 3 more"):
        srv.acquire_spectrum(TOKEN, xy)
    assert scope.measured == 3 and srv.status(TOKEN)["server"]["dose"] == 3
    with pytest.raises(PermissionError):
        srv.acquire_spectrum("nope", xy)
    with pytest.raises(ValueError, match="one per point"):
        srv.acquire_spectrum(TOKEN, encode_array(np.full((2, 2), 5.0)), "scalar", ["a"])


def test_a_repeated_request_is_answered_once_and_charged_once(monkeypatch):
    from fault_server import FaultyMicroscope

    inner = SimulatedMicroscope(pfm_twin(), seed=0)
    scope = FaultyMicroscope(inner, 0.0, {"nan": {"n-1"}})
    srv = MicroscopeServer(scope, TOKEN, max_batch=8, max_dose=7)
    xy = encode_array(np.full((3, 2), 5.0))
    first = srv.acquire_spectrum(TOKEN, xy, "scalar", ["a", "b", "c"])
    again = srv.acquire_spectrum(TOKEN, xy, "scalar", ["a", "b", "c"])  # 6 > 7 - 3 if charged
    assert again == first
    st = srv.status(TOKEN)["server"]
    assert (inner.measured, st["dose"], st["calls"], st["replayed"]) == (3, 3, 1, 1)
    # other ids, or the same ids at other points, are new measurements (and charged)
    srv.acquire_spectrum(TOKEN, encode_array(np.full((3, 2), 6.0)), "scalar", ["a", "b", "c"])
    with pytest.raises(RuntimeError, match="dose budget exhausted: 6 of 7 used"):
        srv.acquire_spectrum(TOKEN, xy, "scalar", ["a", "b", "d"])
    # a NaN answer is not kept: its repeat goes to the microscope again
    srv2 = MicroscopeServer(scope, TOKEN, max_batch=8)
    one = encode_array(np.full((1, 2), 5.0))
    for _ in range(2):
        srv2.acquire_spectrum(TOKEN, one, "scalar", ["n-1"])
    assert srv2.status(TOKEN)["server"]["calls"] == 2
    assert srv2.status(TOKEN)["server"]["replayed"] == 0
    # without ids nothing is replayed
    srv2.acquire_spectrum(TOKEN, one)
    srv2.acquire_spectrum(TOKEN, one)
    assert srv2.status(TOKEN)["server"]["calls"] == 4
    # only the most recent requests are kept
    monkeypatch.setattr("jaxscope.instruments.server.REPLAY_REQUESTS", 2)
    for sid in ("p", "q", "r", "q", "p"):  # p was evicted by r; q was kept
        srv2.acquire_spectrum(TOKEN, one, "scalar", [sid])
    st = srv2.status(TOKEN)["server"]
    assert (st["calls"], st["replayed"]) == (4 + 4, 1)


# --- a campaign of 200 steps through a server killed and restarted ---------------------------
class KillAndRestart:
    """A hook: at ``step``, SIGKILL the server and start it again (same port) in a thread."""

    def __init__(self, server: Server, step: int):
        self.server, self.step, self.thread = server, step, None

    def __call__(self, ctx):
        if int(ctx.state.step) == self.step and self.thread is None:
            self.server.kill()
            self.thread = threading.Thread(target=self.server.start, args=(self.server.port,))
            self.thread.start()


@pytest.mark.slow
def test_campaign_survives_a_server_kill_and_restart(tmp_path):
    """200 steps against a networked PFM twin whose server is SIGKILLed at step 80 and started
    again: the runner waits, the client reconnects, and the journal equals, value for value,
    an uninterrupted run of the same seed (in process: the twin keys its noise by request id,
    so the server's answers are the in-process microscope's; checked on every value)."""
    steps, num_init = NUM_STEPS, NUM_INIT
    cmd = serve_cmd("--instrument", "pfm-twin", "--port", "0", "--size", "20", "--window", "2",
                    "--seed", "0", "--noise-seed", "3", "--token", TOKEN)  # fmt: skip
    server = Server(cmd, tmp_path / "serve.log").launch()  # starts while we compile below
    try:
        twin, config = pfm_twin(), pfm_config()
        kw = {"num_steps": steps, "num_init": num_init, "progress": False,
              "checkpoint_every": 100, "max_wait": 120.0}  # fmt: skip
        with HostRunner(config, twin, tmp_path / "plain", **kw) as runner:
            runner.run(MicroscopeInstrument(SimulatedMicroscope(twin, seed=3)))
            plain_records = runner.journal.records
        server.wait_ready()
        hook = KillAndRestart(server, 80)
        with (
            client(server, timeout=5.0, retries=3) as scope,
            HostRunner(config, twin, tmp_path / "killed", hooks=[hook], **kw) as runner,
        ):
            state = runner.run(MicroscopeInstrument(scope))
            records = runner.journal.records
            reconnects = scope.reconnects
        hook.thread.join(timeout=60)
    finally:
        server.kill()
    assert int(state.step) == steps and reconnects >= 1
    plain, killed = ([(r["id"], r["index"], r["y"]) for r in j if r["kind"] == "measurement"]
                     for j in (plain_records, records))  # fmt: skip
    assert len(plain) == steps + num_init and len({m[0] for m in plain}) == len(plain)
    assert killed == plain  # nothing lost, nothing duplicated, every value the same
    notes = [r for r in records if r["kind"] == "note"]
    assert len(notes) == 1 and "unavailable" in notes[0]["text"] and notes[0]["step"] == 80
    assert not [r for r in records if r["kind"] == "failure"]
