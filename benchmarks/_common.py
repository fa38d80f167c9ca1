"""Shared benchmark helpers: timing with compile accounting, statistics, JSON results.

Compile accounting (the same as ``_peers/peer_timer.py`` inside the peers' venvs): JAX emits
duration events for
tracing (``jaxpr_trace_duration``), lowering (``jaxpr_to_mlir_module_duration``) and XLA
compilation (``backend_compile_duration``); a :class:`Timer` reports the length of the union of
those intervals inside its block (nested traces are not double-counted), the number of XLA
compilations, the names of the compiled functions and persistent-cache hits.

Results are written in one format by :func:`write_results` (``benchmarks/README.md`` describes
it: suite, command, date, device, versions and records with times, ratios and quality).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")

# Single-threaded OpenBLAS for every process of a run (jaxscope, floors and peers alike).
# jax's CPU Cholesky / triangular solves call LAPACK through SciPy's OpenBLAS, whose worker
# threads spin and hand off on every call: on a shared, oversubscribed 2-core box a 50x50
# factorisation then costs milliseconds instead of microseconds and timings become noise
# (NUTS on N=50 ran 30-60x slower, equally for jaxscope and gpax). Set before numpy is imported.
BENCH_ENV = {"OPENBLAS_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu"}
# a subprocess started with bench_env(blas_default=True) keeps OpenBLAS's default threading
_BLAS_DEFAULT = os.environ.get("JAXSCOPE_BENCH_BLAS_DEFAULT") == "1"
for _k, _v in BENCH_ENV.items():
    if not (_BLAS_DEFAULT and _k == "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_k, _v)

_KINDS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "xla_compile",
    "/jax/compilation_cache/cache_retrieval_time_sec": "cache_load",
}
_EVENTS: list[tuple[float, float, str, str]] = []  # (t_start, t_end, kind, fun_name)
_CACHE_HITS: list[float] = []
_LOCK = threading.Lock()
_REGISTERED = False


def _duration_listener(event, duration, **kw):
    kind = _KINDS.get(event)
    if kind is not None:
        t1 = time.perf_counter()
        with _LOCK:
            _EVENTS.append((t1 - duration, t1, kind, str(kw.get("fun_name", ""))))


def _event_listener(event, **kw):
    if event == "/jax/compilation_cache/cache_hits":
        with _LOCK:
            _CACHE_HITS.append(time.perf_counter())


def register_listeners() -> None:
    """Register the jax.monitoring listeners once (call after importing jax)."""
    global _REGISTERED
    if _REGISTERED:
        return
    import jax.monitoring

    jax.monitoring.register_event_duration_secs_listener(_duration_listener)
    jax.monitoring.register_event_listener(_event_listener)
    _REGISTERED = True


def _union_len(intervals) -> float:
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


class Timer:
    """Wall time, process CPU time, compile time and compilations of a block.

    Attributes after the block: ``wall``, ``cpu``, ``compile`` (union of trace, lower, XLA
    compile and cache-load intervals), ``n_compiles`` (XLA compilations), ``compiled`` (names of
    the compiled functions), ``cache_hits``, ``load`` (1-minute load average at start and end).
    """

    def __enter__(self):
        register_listeners()
        self.i0 = len(_EVENTS)
        self.h0 = len(_CACHE_HITS)
        self.load0 = os.getloadavg()[0]
        self.c0 = time.process_time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.t1 = time.perf_counter()
        self.cpu = time.process_time() - self.c0
        self.load1 = os.getloadavg()[0]
        with _LOCK:
            ev = [e for e in _EVENTS[self.i0 :] if e[1] >= self.t0]
            self.cache_hits = len(_CACHE_HITS) - self.h0
        self.wall = self.t1 - self.t0
        self.compile = _union_len([(max(s, self.t0), e) for s, e, _, _ in ev])
        xla = [e for e in ev if e[2] == "xla_compile"]
        self.n_compiles = len(xla)
        self.compiled = [e[3] for e in xla]
        self.xla_compile = sum(e[1] - e[0] for e in xla)
        self.events = ev
        return False

    def breakdown(self, min_s: float = 0.02) -> list:
        """Compile events of the block longer than ``min_s``: ``[kind, fun_name, seconds]``."""
        return [[k, n, r4(e - s)] for s, e, k, n in self.events if e - s >= min_s]

    @property
    def load(self):
        return [round(self.load0, 2), round(self.load1, 2)]

    def as_dict(self) -> dict:
        return {
            "wall_s": r4(self.wall),
            "cpu_s": r4(self.cpu),
            "compile_s": r4(self.compile),
            "n_compiles": self.n_compiles,
            "cache_hits": self.cache_hits,
            "loadavg": self.load,
        }


def r4(x):
    return None if x is None else round(float(x), 4)


def median(xs):
    xs = [x for x in xs if x is not None]
    return r4(statistics.median(xs)) if xs else None


def ratio(a, b, digits: int = 2):
    if a is None or b is None or b == 0:
        return None
    return round(float(a) / float(b), digits)


def block(x):
    import jax

    return jax.block_until_ready(x)


def loadavg():
    return [round(v, 2) for v in os.getloadavg()]


def bench_env(blas_default: bool = False) -> dict:
    """The environment of a benchmark subprocess: ``BENCH_ENV`` over ours; with
    ``blas_default`` OpenBLAS keeps its default threading (no ``OPENBLAS_NUM_THREADS``), as a
    user who sets nothing runs it."""
    env = {**os.environ, **BENCH_ENV}
    if blas_default:
        env.pop("OPENBLAS_NUM_THREADS", None)
        env["JAXSCOPE_BENCH_BLAS_DEFAULT"] = "1"
    else:
        env.pop("JAXSCOPE_BENCH_BLAS_DEFAULT", None)
    return env


def run_json(cmd, *, cwd=None, timeout=None, env=None, blas_default=False) -> dict:
    """Run ``cmd`` (a list) and parse the last stdout line starting with ``{`` as JSON.

    Returns ``{"error": ...}`` (with the tail of stderr) when the command fails or prints no JSON.
    """
    full_env = bench_env(blas_default)
    full_env.update(env or {})
    t0 = time.perf_counter()
    try:
        p = subprocess.run(
            cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s: {' '.join(map(str, cmd))}"}
    wall = time.perf_counter() - t0
    for line in reversed(p.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                out = json.loads(line)
            except json.JSONDecodeError:
                continue
            out.setdefault("_process_wall_s", r4(wall))
            if p.returncode != 0:
                out.setdefault("error", f"exit {p.returncode}: {p.stderr[-1500:]}")
            return out
    return {"error": f"exit {p.returncode}, no JSON; stderr tail: {p.stderr[-1500:]}"}


def versions(extra: dict | None = None) -> dict:
    import jax
    import numpy
    import numpyro

    import jaxscope

    out = {
        "jaxscope": jaxscope.__version__,
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }
    out.update(extra or {})
    return out


def device_string() -> str:
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"cpu, {n} cores"


def keep_old_records(path: str, records: list[dict]) -> list[dict]:
    """``records`` after the records of ``path`` whose names were not rerun (a partial run,
    ``--only``, keeps the rest of the file)."""
    if not os.path.exists(path):
        return records
    with open(path) as f:
        old = json.load(f).get("records", [])
    names = {r["name"] for r in records}
    return [r for r in old if r.get("name") not in names] + records


def write_results(path: str, suite: str, command: str, records: list[dict], **extra) -> None:
    """Write ``{suite, command, date, device, versions, records, ...}`` (BENCHMARKS.md format)."""
    payload = {
        "suite": suite,
        "command": command,
        "date": datetime.date.today().isoformat(),
        "device": device_string(),
    }
    payload.update(extra)
    payload["records"] = records
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1, default=float)
        f.write("\n")
    os.replace(tmp, path)


def log(*args) -> None:
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)
