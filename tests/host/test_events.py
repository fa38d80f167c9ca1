"""The fold over the journal (:class:`HostLog`) and the settings check, on hand-written events."""

from __future__ import annotations

import numpy as np
import pytest

from jaxscope.host.events import INIT, HostLog, check_settings


def request(seq, sid, index, step=0, decision=0, batch=1):
    return dict(kind="request", seq=seq, step=step, id=sid, index=index, acq=0.5,
                decision=decision, batch=batch)  # fmt: skip


def test_pending_groups_and_ids():
    log = HostLog(8)
    log.apply(dict(kind="start", seq=0, settings={"driver": "agent", "max_pending": 4}))
    log.apply(request(1, "s0", 3, step=INIT, decision=0, batch=3))
    log.apply(request(2, "s1", 5, step=INIT, decision=0, batch=3))  # third line never written
    log.apply(dict(kind="measurement", seq=3, step=INIT, id="s1", index=5, y=1.0))
    log.apply(request(4, "s3", 6, step=INIT, decision=1, batch=1))
    assert list(log.pending) == ["s0", "s3"] and log.issued == 4  # ids are never reused
    g0, g1 = log.groups
    assert (g0.ids, g0.index, g0.first, g0.pending, g0.seeds) == (["s0", "s1"], [3, 5], 0, [], [])
    # the second decision saw s0 pending and s1 measured (a seed), and who wrote it
    assert (g1.first, g1.pending, g1.seeds, g1.driver) == (3, [3], [5], "agent")
    assert log.init_ids == ["s1"] and not log.queue  # seed-phase points wait for the seed commit
    log.apply(dict(kind="commit", seq=5, step=INIT, ids=["s1"]))
    # the seed phase is committed: its points still out are measured as steps
    assert [q["id"] for q in log.queue] == ["s0", "s3"] and log.init_committed
    assert log.live_groups() == {0, 1}
    log.apply(dict(kind="measurement", seq=6, step=0, id="s3", index=6, y=2.0))
    assert log.queue[1] == {"id": "s3", "index": 6, "y": 2.0, "acq": 0.5}
    log.apply(dict(kind="commit", seq=7, step=0, ids=["s3"], index=[6], acq=[0.5], policy=0,
                   decision=1))  # fmt: skip
    assert [q["id"] for q in log.queue] == ["s0"] and log.live_groups() == {0}
    assert list(log.done) == ["s1", "s3"] and log.values == {"s1": 1.0, "s3": 2.0}


def test_failures_exclude_as_journaled():
    log = HostLog(4, retries=1)
    for j in range(3):  # exclude=False never excludes, however often it fails
        log.apply(request(2 * j, f"a{j}", 1, decision=j))
        log.apply(dict(kind="failure", seq=2 * j + 1, step=0, id=f"a{j}", index=1, reason="x",
                       exclude=False))  # fmt: skip
    assert log.mask[1] and log.failures[1] == 3 and not log.pending and not log.queue
    log.apply(request(6, "b0", 2, decision=3))
    log.apply(dict(kind="failure", seq=7, step=0, id="b0", index=2, reason="y", exclude=True))
    assert not log.mask[2] and log.done["b0"] == {"index": 2, "failed": "y"}  # at once
    # a failure journaled without the field (older journals): the retry budget decides
    log.apply(dict(kind="failure", seq=8, step=0, id="c0", index=3, reason="z"))
    assert log.mask[3]
    log.apply(dict(kind="failure", seq=9, step=0, id="c1", index=3, reason="z"))
    assert not log.mask[3]
    excluded, seeds, pending = log.snapshot()
    assert np.array_equal(excluded, [False, False, True, True]) and pending == []


def test_a_veto_drops_pending_points_of_its_candidate():
    log = HostLog(4)
    log.apply(dict(kind="commit", seq=0, step=INIT, ids=[]))
    log.apply(request(1, "m0", 2))
    log.apply(dict(kind="veto", seq=2, step=0, index=2, reason="no"))
    assert not log.pending and not log.queue and not log.mask[2]


def test_settings_check():
    runner = {"driver": "runner", "seed": 0, "num_init": 3, "q": 1, "num_steps": 5, "meta": {}}
    agent = dict(runner, driver="agent", num_steps=9, max_pending=16)
    start = [dict(kind="start", seq=0, settings=runner)]
    assert check_settings([], runner) and not check_settings(start, runner)
    # the other driver: only the shared keys must agree; it appends its own start
    assert check_settings(start, agent)
    with pytest.raises(ValueError, match=r"differ in \['num_steps'\]"):
        check_settings(start, dict(runner, num_steps=6))
    with pytest.raises(ValueError, match=r"written with settings .* differ in \['seed'\]"):
        check_settings(start, dict(agent, seed=1), "journal j")
    both = start + [dict(kind="start", seq=5, settings=agent)]
    assert not check_settings(both, agent) and check_settings(both, runner)
    with pytest.raises(ValueError, match="max_pending"):
        check_settings(both, dict(agent, max_pending=8))
