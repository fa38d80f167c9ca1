"""Transient outages (InstrumentUnavailable) in the host runner: waited out with a bounded
backoff, never counted as failures; request ids reach instruments that accept them."""

from __future__ import annotations

import numpy as np
import pytest
from netutil import NUM_INIT, NUM_STEPS, pfm_config, pfm_twin

from jaxscope.host import HostRunner, WaitPolicy
from jaxscope.host.waiting import measure_waiting
from jaxscope.instruments import InstrumentUnavailable, MicroscopeInstrument, SimulatedMicroscope

pytestmark = pytest.mark.xdist_group("test_network")  # shares the twin and compiled programs
STEPS = 6


class Outage(MicroscopeInstrument):
    """A microscope whose calls in ``down`` (0-based call numbers) raise InstrumentUnavailable."""

    def __init__(self, scope, down=()):
        super().__init__(scope)
        self.down, self.calls, self.asked = set(down), 0, []

    def measure(self, X, ids=None):
        call, self.calls = self.calls, self.calls + 1
        self.asked.append(list(ids))
        if call in self.down:
            raise InstrumentUnavailable(f"connection lost on call {call}")
        return super().measure(X, ids=ids)


def measurements(records):
    return [(r["id"], r["index"], r["y"]) for r in records if r["kind"] == "measurement"]


def campaign(path, **kw):
    return HostRunner(pfm_config(), pfm_twin(), path, num_steps=NUM_STEPS, num_init=NUM_INIT,
                      progress=False, checkpoint_every=100, **kw)  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted campaign of STEPS steps."""
    inst = Outage(SimulatedMicroscope(pfm_twin(), seed=3))
    with campaign(tmp_path_factory.mktemp("plain")) as runner:
        runner.run(inst, max_steps=STEPS)
        return measurements(runner.journal.records)


def test_backoff_is_bounded_and_exponential():
    waits, outages = [], []

    class Down:
        accepts_ids, calls = True, 0

        def measure(self, X, ids):
            self.calls += 1
            if self.calls <= 5:
                raise InstrumentUnavailable("down")
            return np.asarray([float(len(ids))])

    clock = iter(np.arange(0.0, 100.0, 1.0))
    policy = WaitPolicy(max_wait=60.0, first=0.1, factor=2.0, longest=0.5)
    y = measure_waiting(Down(), np.zeros((1, 2)), ["a"], policy, outages.append,
                        sleep=waits.append, clock=lambda: next(clock))  # fmt: skip
    assert y.tolist() == [1.0] and len(outages) == 1
    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5]  # min(0.1 * 2**k, 0.5)
    clock = iter(np.arange(0.0, 100.0, 25.0))  # 25 s per try: the 60 s budget runs out
    with pytest.raises(InstrumentUnavailable, match=r"for 75.0 s \(max_wait 60 s\): down"):
        measure_waiting(Down(), np.zeros((1, 2)), ["a"], policy, sleep=waits.append,
                        clock=lambda: next(clock))  # fmt: skip
    with pytest.raises(ValueError, match="invalid wait policy"):
        WaitPolicy(max_wait=-1.0)


def test_outage_is_waited_out_not_failed(tmp_path, reference):
    inst = Outage(SimulatedMicroscope(pfm_twin(), seed=3), down={2, 3, 4})
    with campaign(tmp_path, retries=0) as runner:
        state = runner.run(inst, max_steps=STEPS)
        records = runner.journal.records
    assert int(state.step) == STEPS
    assert not [r for r in records if r["kind"] == "failure"]  # retries=0 would exclude at once
    (note,) = [r for r in records if r["kind"] == "note"]
    assert "connection lost on call 2" in note["text"] and note["ids"] == ["m000006"]
    assert inst.asked[2:5] == [["m000006"]] * 3  # the same request, under the same id
    assert measurements(records) == reference  # value for value


def test_outage_longer_than_max_wait_stops_and_resumes(tmp_path, reference):
    scope = SimulatedMicroscope(pfm_twin(), seed=3)
    inst = Outage(scope, down=set(range(3, 1000)))
    with campaign(tmp_path, max_wait=0.3) as runner:
        with pytest.raises(InstrumentUnavailable, match="max_wait 0.3 s"):
            runner.run(inst, max_steps=STEPS)
        kept = measurements(runner.journal.records)
    assert kept == reference[: NUM_INIT + 2]  # everything measured before the outage is kept
    with campaign(tmp_path) as runner:  # resume: the pending request is measured first
        runner.run(Outage(scope), max_steps=STEPS - 2)
        assert measurements(runner.journal.records) == reference


def test_instruments_without_ids_keep_measure_x(tmp_path):
    class Plain:
        dim = 2

        def __init__(self):
            self.inner = MicroscopeInstrument(SimulatedMicroscope(pfm_twin(), seed=3))

        def measure(self, X):  # the old protocol: no ids
            return self.inner.measure(X)

    with campaign(tmp_path) as runner:
        state = runner.run(Plain(), max_steps=1)
    assert int(state.step) == 1
