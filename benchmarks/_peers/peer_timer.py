"""Timing inside a peer's own Python (gpax's venv): wall time, process CPU time and compile time.

Compile time is the length of the union of the intervals JAX reports for tracing, lowering and
XLA compilation (``jax.monitoring`` duration events, each taken as ``[t_end - d, t_end]``), so
nested events are counted once. Imported before the peer library, it also keeps JAX on the CPU.
"""

import os
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.monitoring  # noqa: E402

_COMPILE_EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
}
_seen: list[tuple[float, float, bool]] = []  # (start, end, is an XLA compilation)


def _on_event(event, duration, **_):
    if event in _COMPILE_EVENTS:
        end = time.perf_counter()
        _seen.append((end - duration, end, event.endswith("backend_compile_duration")))


jax.monitoring.register_event_duration_secs_listener(_on_event)


def _covered(intervals) -> float:
    total, lo, hi = 0.0, None, None
    for a, b in sorted(intervals):
        if hi is None or a > hi:
            total += 0.0 if hi is None else hi - lo
            lo, hi = a, b
        else:
            hi = max(hi, b)
    return total + (0.0 if hi is None else hi - lo)


class Timer:
    """``with Timer() as t: ...`` then ``t.wall``, ``t.compile``, ``t.n_xla_compiles``,
    ``t.as_dict()``."""

    def __enter__(self):
        self._first = len(_seen)
        self._load0 = os.getloadavg()[0]
        self._cpu0 = time.process_time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        t1 = time.perf_counter()
        inside = [e for e in _seen[self._first :] if e[1] >= self._t0]
        self.wall = t1 - self._t0
        self.cpu = time.process_time() - self._cpu0
        self.compile = _covered([(max(a, self._t0), b) for a, b, _ in inside])
        self.n_xla_compiles = sum(1 for e in inside if e[2])
        self.load = [round(self._load0, 2), round(os.getloadavg()[0], 2)]
        return False

    def as_dict(self) -> dict:
        return {
            "wall_s": round(self.wall, 4),
            "compile_s": round(self.compile, 4),
            "n_xla_compiles": self.n_xla_compiles,
            "process_cpu_s": round(self.cpu, 4),
            "loadavg_1min_start_end": self.load,
        }


def block(tree):
    """Wait for every array of ``tree`` (JAX dispatches asynchronously)."""
    return jax.block_until_ready(tree)
