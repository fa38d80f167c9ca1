"""Instruments suite: the networked microscope over loopback, a kill/restart campaign, and the
cost of calling a host instrument from compiled code.

Records (``benchmarks/results/instruments.json``; format of ``BENCHMARKS.md``):

* ``loopback_10000_single`` — 10,000 single-point ``acquire_spectrum`` calls (PFM twin, scalar
  protocol, one request id each) through :class:`~jaxscope.instruments.client.RemoteMicroscope`
  to a ``jaxscope serve`` process on 127.0.0.1, alternated call by call with the same call on
  the in-process :class:`~jaxscope.instruments.SimulatedMicroscope` (the floor): throughput and
  the median and p99 latency of both, and what the client/server adds.
* ``loopback_100_batches_of_100`` — the same with 100 calls of 100 points each.
* ``kill_restart_no_loss`` — a host-runner campaign (200 steps, PFM twin, fixed
  hyperparameters) against the server, which is SIGKILLed half-way and started again: the outage
  the runner waited out, and the journal compared value for value with an uninterrupted
  in-process run of the same seed (``lost``, ``duplicated``, ``differing`` must be 0).
* ``callback_overhead`` — a trivial host instrument called once per step by a compiled
  ``lax.scan`` through :func:`~jaxscope.instruments.as_callback` (``jax.pure_callback``),
  against the same host function called from a Python loop (the floor): per-call overhead.

usage: python benchmarks/instruments.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time

import _common as C  # noqa: N812
import jax
import jax.numpy as jnp
import numpy as np

from jaxscope.campaign import make_config
from jaxscope.host import HostRunner
from jaxscope.instruments import (
    Instrument,
    MicroscopeInstrument,
    SimulatedMicroscope,
    as_callback,
    make_simulator,
)
from jaxscope.instruments.client import RemoteMicroscope

TOKEN = "benchmark-token"
SIZE, WINDOW = 48, 4  # the served twin: 45 x 45 = 2025 candidates


class Server:
    """``jaxscope serve`` in a subprocess on 127.0.0.1 (SIGKILL and restart on the same port)."""

    def __init__(self, log):
        code = "import sys; from jaxscope.cli import main; sys.exit(main())"
        self.base = [sys.executable, "-c", code, "serve", "--instrument", "pfm-twin", "--size",
                     str(SIZE), "--window", str(WINDOW), "--noise-seed", "3", "--token", TOKEN]  # fmt: skip
        self.log, self.proc, self.port = log, None, 0

    def start(self):
        import subprocess

        t0 = time.perf_counter()
        with open(self.log, "a") as err:
            self.proc = subprocess.Popen([*self.base, "--port", str(self.port)], env=C.bench_env(),
                                         stdout=subprocess.PIPE, stderr=err, text=True)  # fmt: skip
        line = self.proc.stdout.readline()
        if not line.startswith("serving"):
            raise RuntimeError(f"server failed to start; see {self.log}")
        self.port = int(line.strip().rsplit(":", 1)[1])
        self.start_s = time.perf_counter() - t0
        return self

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
            self.proc.stdout.close()


def latency(remote, local, X, n_calls, tag):
    """Alternate ``n_calls`` remote and in-process calls of the points ``X`` (one id each)."""
    q = X.shape[0]
    for f in (remote, local):  # compile both sides for this batch size first
        f.acquire_spectrum(X, ids=[f"warm{tag}-{i}" for i in range(q)])
    t_rem, t_loc = [], []
    rng = np.random.default_rng(0)
    for k in range(n_calls):
        ids = [f"{tag}{k}-{i}" for i in range(q)]
        pair = [(remote, t_rem), (local, t_loc)]
        for f, out in pair if rng.random() < 0.5 else pair[::-1]:
            t0 = time.perf_counter()
            f.acquire_spectrum(X, ids=ids)
            out.append(time.perf_counter() - t0)
    rem, loc = np.asarray(t_rem), np.asarray(t_loc)
    added = rem - loc
    return {
        "calls": n_calls, "points_per_call": q,
        "jaxscope_s": C.r4(rem.sum()), "floor_s": C.r4(loc.sum()),
        "over_floor": C.ratio(rem.sum(), loc.sum()),
        "throughput_points_per_s": round(float(n_calls * q / rem.sum()), 1),
        "inprocess_points_per_s": round(float(n_calls * q / loc.sum()), 1),
        "median_ms": C.r4(1e3 * np.median(rem)), "p99_ms": C.r4(1e3 * np.percentile(rem, 99)),
        "inprocess_median_ms": C.r4(1e3 * np.median(loc)),
        "inprocess_p99_ms": C.r4(1e3 * np.percentile(loc, 99)),
        "added_median_ms": C.r4(1e3 * np.median(added)),
        "added_p99_ms": C.r4(1e3 * np.percentile(added, 99)),
    }  # fmt: skip


def run_loopback(server, n_single, n_batches, batch):
    twin = make_simulator("pfm_twin", key=jax.random.key(0), size=SIZE, window=WINDOW)
    local = SimulatedMicroscope(twin, seed=3)
    C_ = np.asarray(twin.candidates, np.float64)
    with RemoteMicroscope(port=server.port, token=TOKEN, timeout=30.0) as remote:
        load0 = C.loadavg()
        single = latency(remote, local, C_[:1], n_single, "s")
        many = latency(remote, local, C_[:batch], n_batches, "b")
        check = remote.acquire_spectrum(C_[:batch], ids=[f"b0-{i}" for i in range(batch)])
        same = check.values.tobytes() == local.acquire_spectrum(
            C_[:batch], ids=[f"b0-{i}" for i in range(batch)]).values.tobytes()  # fmt: skip
    what = (f"PFM twin {SIZE}x{SIZE}, scalar protocol, RemoteMicroscope -> jaxscope serve on "
            "127.0.0.1 (Pyro5, serpent), alternated with the in-process SimulatedMicroscope "
            "(floor)")  # fmt: skip
    return [
        {"name": "loopback_10000_single" if n_single == 10000 else f"loopback_{n_single}_single",
         "what": f"{n_single} single-point calls; {what}", **single, "loadavg": load0},
        {"name": "loopback_100_batches_of_100" if (n_batches, batch) == (100, 100)
         else f"loopback_{n_batches}_batches_of_{batch}",
         "what": f"{n_batches} calls of {batch} points; {what}", **many,
         "remote_equals_inprocess": bool(same), "loadavg": C.loadavg()},
    ]  # fmt: skip


def run_kill_restart(server, steps, tmp):
    twin = make_simulator("pfm_twin", key=jax.random.key(0), size=SIZE, window=WINDOW)
    config = make_config(twin.candidates, acquisition="ucb", mode="fixed")
    kw = {"num_steps": steps, "num_init": 5, "progress": False, "checkpoint_every": steps,
          "max_wait": 300.0}  # fmt: skip
    t0 = time.perf_counter()
    with HostRunner(config, twin, os.path.join(tmp, "plain"), **kw) as r:
        r.run(MicroscopeInstrument(SimulatedMicroscope(twin, seed=3)))
        plain = [(m["id"], m["index"], m["y"]) for m in r.journal.records
                 if m["kind"] == "measurement"]  # fmt: skip
    plain_s = time.perf_counter() - t0
    events = {}

    def hook(ctx):
        if int(ctx.state.step) == steps // 2 and "kill" not in events:
            server.kill()
            events["kill"] = time.time()  # wall clock, as the journal's "time"
            threading.Thread(target=lambda: events.setdefault("up", server.start())).start()

    t0 = time.perf_counter()
    with (
        RemoteMicroscope(port=server.port, token=TOKEN, timeout=30.0) as scope,
        HostRunner(config, twin, os.path.join(tmp, "killed"), hooks=[hook], **kw) as r,
    ):
        r.run(MicroscopeInstrument(scope))
        rec = r.journal.records
        reconnects = scope.reconnects
    total = time.perf_counter() - t0
    killed = [(m["id"], m["index"], m["y"]) for m in rec if m["kind"] == "measurement"]
    after = [m for m in rec if m["kind"] == "measurement" and m["step"] == steps // 2]
    ids = [m[0] for m in killed]
    differing = sum(a != b for a, b in zip(plain, killed, strict=False))
    out = {
        "name": "kill_restart_no_loss",
        "what": f"host runner, {steps} steps, PFM twin {SIZE}x{SIZE}, fixed hyperparameters, "
        f"against jaxscope serve SIGKILLed at step {steps // 2} and restarted; journal vs an "
        "uninterrupted in-process run of the same seed",
        "steps": steps, "jaxscope_s": C.r4(total), "uninterrupted_inprocess_s": C.r4(plain_s),
        "outage_s": C.r4(after[0]["time"] - events["kill"]) if after else None,
        "server_restart_s": C.r4(server.start_s), "reconnects": reconnects,
        "measurements": len(killed), "expected": len(plain),
        "lost": len(set(m[0] for m in plain) - set(ids)),
        "duplicated": len(ids) - len(set(ids)), "differing": differing,
        "failures": sum(m["kind"] == "failure" for m in rec),
        "notes": sum(m["kind"] == "note" for m in rec),
    }  # fmt: skip
    out["met"] = out["lost"] == out["duplicated"] == out["differing"] == 0 and killed == plain
    return out


class Zero(Instrument):
    dim = 2

    def measure(self, X):
        return np.zeros(len(X), np.float32)


def run_callback_overhead(n_steps, reps):
    inst = Zero()
    measure = as_callback(inst)
    X0 = jnp.full((1, 2), 0.5, jnp.float32)

    @jax.jit
    def scan(X):
        def body(c, _):
            return c + measure(X + c[None, None])[0], None

        return jax.lax.scan(body, jnp.zeros((), jnp.float32), None, length=n_steps)[0]

    C.block(scan(X0))  # compile
    host = jax.jit(measure)
    C.block(host(X0))
    scans, loops, singles = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        C.block(scan(X0))
        scans.append(time.perf_counter() - t0)
        x = np.asarray(X0)
        t0 = time.perf_counter()
        for _ in range(n_steps):  # the floor: the same host work from Python
            inst.measure(np.array(x, copy=True))
        loops.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(200):
            C.block(host(X0))
        singles.append((time.perf_counter() - t0) / 200)
    per_call, floor = C.median(scans) / n_steps, C.median(loops) / n_steps
    return {
        "name": "callback_overhead",
        "what": f"trivial host instrument via as_callback (pure_callback, vmap_method="
        f"'sequential'), called once per step of a jitted lax.scan of {n_steps} steps, vs the "
        "same host call from a Python loop (floor); also one jitted call from Python",
        "jaxscope_s": C.median(scans), "floor_s": C.median(loops),
        "per_call_us": round(1e6 * per_call, 2), "floor_per_call_us": round(1e6 * floor, 2),
        "overhead_per_call_us": round(1e6 * (per_call - floor), 2),
        "jit_call_from_python_us": round(1e6 * float(np.median(singles)), 2),
        "over_floor": C.ratio(per_call, floor), "reps": reps,
    }  # fmt: skip


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    q = a.quick
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(os.path.join(tmp, "serve.log")).start()
        try:
            records += run_loopback(server, 500 if q else 10000, 10 if q else 100, 100)
            for r in records:
                C.log(r)
            records.append(run_kill_restart(server, 40 if q else 200, tmp))
            C.log(records[-1])
        finally:
            server.kill()
    records.append(run_callback_overhead(200 if q else 2000, 3 if q else 5))
    C.log(records[-1])
    path = os.path.join(C.RESULTS, "instruments_quick.json" if q else "instruments.json")
    cmd = "python benchmarks/instruments.py " + " ".join(sys.argv[1:] if argv is None else argv)
    import Pyro5

    C.write_results(path, "instruments", cmd.strip(), records,
                    versions=C.versions({"Pyro5": Pyro5.__version__}))  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
