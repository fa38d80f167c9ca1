"""Campaign benchmarks: gpax B6, decision latency, strategy batch, sharding, BoTorch qEI.

Writes ``benchmarks/results/campaigns.json`` (format: benchmarks/README.md) plus strategy
plots and per-step metrics in ``benchmarks/results/strategies/``.

    python benchmarks/campaigns.py            # full mode (tens of minutes on 2 shared cores)
    python benchmarks/campaigns.py --quick    # smoke check (a few minutes)
    python benchmarks/campaigns.py --only decision_latency_incremental_256x256_N500

Peers run in their own virtual environments (``$JAXSCOPE_PEER_VENVS/<name>``, default
``/work/venvs`` when present, else ``benchmarks/.venvs/<name>``, created by ``_venvs.py``); gpax
runs with ``GPAX_X64=1`` (in float32 its noiseless UCB is NaN everywhere). jaxscope runs in
float32 unless stated. Compile time is included in every end-to-end figure; the machine is
shared, so each record carries the 1-minute load average at its start and end.
"""

from __future__ import annotations

# isort: off
import _common  # noqa: F401  (sets BENCH_ENV, e.g. OPENBLAS_NUM_THREADS=1, before numpy/jax)
from _common import Timer, block, r4, run_json, versions, write_results

# isort: on
import argparse
import json
import os
import statistics
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import strategies
from _venvs import peer_python

from jaxscope.campaign import decide, init, make_config, run, step
from jaxscope.decide import MAPGP, HeldGP
from jaxscope.gp import GPModel, unit_grid
from jaxscope.gp.inference import fit_map
from jaxscope.instruments import GridProblem

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
OUT = os.path.join(RESULTS, "campaigns.json")
OUT_QUICK = os.path.join(RESULTS, "campaigns_quick.json")


def med(xs):
    return float(statistics.median(xs))


def run_checked(cmd: list[str], env=None, timeout=7200) -> dict:
    """``_common.run_json`` that raises on failure (the caller records the error)."""
    out = run_json(cmd, cwd=HERE, env=env, timeout=timeout)
    if "error" in out:
        raise RuntimeError(str(out["error"])[-1500:])
    return out


def peer(name: str):
    """``(python, version, error)`` of a peer venv (ready-made ones under /work/venvs first)."""
    if os.path.isdir("/work/venvs") and "JAXSCOPE_PEER_VENVS" not in os.environ:
        os.environ["JAXSCOPE_PEER_VENVS"] = "/work/venvs"
    return peer_python(name)


def f2(X):
    X = np.asarray(X, np.float64)
    x1, x2 = X[:, 0], X[:, 1]
    return np.sin(3 * x1) * np.cos(3 * x2) + 0.5 * np.exp(
        -((x1 - 0.6) ** 2 + (x2 - 0.4) ** 2) / 0.05
    )


def f2_problem(side: int, noise: float = 0.05, dtype=jnp.float32) -> GridProblem:
    C = unit_grid(side, 2, dtype)
    return GridProblem(C, jnp.asarray(f2(C), dtype), jnp.asarray(noise, dtype), size=side)


# --- 1. gpax B6 ------------------------------------------------------------------------------------
def b6_seed_data(side: int, seed: int):
    """Seed points exactly as the gpax protocol draws them (RandomState(seed))."""
    rs = np.random.RandomState(seed)
    g = np.linspace(0, 1, side)
    Xc = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    idx0 = rs.choice(len(Xc), 10, replace=False)
    y0 = f2(Xc)[idx0] + 0.05 * rs.randn(10)
    return Xc[idx0], y0


def jaxscope_b6(side: int, steps: int, ns: int, seeds: list[int]) -> dict:
    """All seeds of B6 as ONE compiled program (vmap over seeds of a lax.scan campaign)."""
    with Timer() as t:
        prob = f2_problem(side)
        cfg = make_config(
            prob.candidates,
            acquisition="ucb",
            acq_kwargs={"beta": 4.0},
            mode="nuts",
            num_warmup=ns,
            num_samples=ns,
            chunk_size=4096,
        )
        data = [b6_seed_data(side, s) for s in seeds]
        X0 = jnp.asarray(np.stack([d[0] for d in data]), jnp.float32)
        y0 = jnp.asarray(np.stack([d[1] for d in data]), jnp.float32)
        keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))

        @eqx.filter_jit
        def campaigns(X0, y0, keys):
            def one(args):
                x, y, k = args
                return run(init(cfg, prob, x, y, num_steps=steps, key=k), cfg, prob)

            # seeds one after another inside the one program (see jaxscope.campaign.strategies on
            # batched LAPACK kernels and XLA:CPU's 2-thread pool)
            return jax.lax.map(one, (X0, y0, keys))

        final = block(campaigns(X0, y0, keys))
    truth = np.asarray(prob.values)
    idx = np.asarray(final.history.index[:, :, 0])
    best = [float(max(truth[i].max(), f2(X0[j]).max())) for j, i in enumerate(idx)]
    return {
        "wall_s": t.wall,
        "compile_s": t.compile,
        "compiles": t.n_compiles,
        "load": t.load,
        "best_true": best,
        "true_max": float(truth.max()),
        "final_map_rmse": np.asarray(final.history.rmse[:, -1]).tolist(),
        "chosen": idx.tolist(),
    }


def worker_b6(args):
    seeds = [int(s) for s in args.seeds.split(",")]
    print(json.dumps(jaxscope_b6(args.side, args.steps, args.ns, seeds)))


def bench_b6(quick: bool) -> dict:
    side, steps, ns = (25, 3, 50) if quick else (25, 20, 200)
    seeds = [0] if quick else [0, 1, 2, 3, 4]
    me = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "b6",
        "--side",
        str(side),
        "--steps",
        str(steps),
        "--ns",
        str(ns),
    ]
    rec = {
        "name": "gpax_B6_end_to_end",
        "what": f"{side}x{side} grid, 10 random seed points, {steps} steps of (fit ExactGP RBF "
        f"by NUTS {ns}/{ns} -> UCB beta=4 -> measure argmax), {len(seeds)} seed(s); "
        "wall time of the whole loop, compile included. jaxscope: all seeds in one compiled "
        "call (lax.map over seeds; float32, standardised targets); gpax: one process per seed (x64), loop time.",
    }
    gpy, _, gerr = peer("gpax")
    js_runs, gp_runs = [], []
    reps = 1 if quick else 3
    order = []  # alternate: jaxscope, then a share of the gpax seeds
    per = -(-len(seeds) // reps)
    for r in range(reps):
        order.append(("js", None))
        order += [("gp", s) for s in seeds[r * per : (r + 1) * per]]
    for kind, s in order:
        if kind == "js":
            js_runs.append(run_checked(me + ["--seeds", ",".join(map(str, seeds))]))
            print(f"  [b6] jaxscope {js_runs[-1]['wall_s']:.1f}s", flush=True)
        elif gpy is not None and "peer_error" not in rec:
            env = dict(os.environ, GPAX_X64="1", JAX_PLATFORMS="cpu")
            try:
                gp_runs.append(
                    run_checked(
                        [gpy, "_gpax_b6.py", str(side), str(steps), str(ns), str(s)], env=env
                    )
                )
                print(f"  [b6] gpax seed {s} {gp_runs[-1]['loop_wall_s']:.1f}s", flush=True)
            except Exception as e:  # noqa: BLE001
                rec["peer_error"] = repr(e)[:800]
    js = js_runs[int(np.argsort([r["wall_s"] for r in js_runs])[len(js_runs) // 2])]
    rec["jaxscope_s"] = r4(js["wall_s"])
    rec["jaxscope_runs_s"] = [r4(r["wall_s"]) for r in js_runs]
    rec["compile_s"] = r4(js["compile_s"])
    rec["compiles"] = js["compiles"]
    quality = {
        "jaxscope_best_true": js["best_true"],
        "jaxscope_final_map_rmse": js["final_map_rmse"],
        "true_max": js["true_max"],
    }
    if gpy is None:
        rec["peer_error"] = (
            "gpax venv not found (GPAX_PYTHON, benchmarks/.venvs/gpax, /work/venvs/gpax)"
        )
    if gp_runs:
        rec["peer"] = f"gpax {gp_runs[0]['gpax']} (x64)"
        rec["peer_s"] = r4(sum(r["loop_wall_s"] for r in gp_runs))
        rec["peer_seeds_done"] = [r["seed"] for r in gp_runs]
        rec["peer_per_seed_s"] = [r4(r["loop_wall_s"]) for r in gp_runs]
        if len(gp_runs) == len(seeds):
            rec["speedup"] = r4(rec["peer_s"] / rec["jaxscope_s"])
        quality.update(
            {
                "peer_best_true": [r["best_true"] for r in gp_runs],
                "peer_final_map_rmse": [r["final_map_rmse"] for r in gp_runs],
                "peer_ucb_any_nan": any(r["ucb_any_nan"] for r in gp_runs),
                "mean_best_true": {
                    "jaxscope": float(np.mean(js["best_true"])),
                    "peer": float(np.mean([r["best_true"] for r in gp_runs])),
                },
                "mean_final_map_rmse": {
                    "jaxscope": float(np.mean(js["final_map_rmse"])),
                    "peer": float(np.mean([r["final_map_rmse"] for r in gp_runs])),
                },
            }
        )
        rec["peer_load"] = [r["loadavg_1min_start_end"] for r in gp_runs]
    rec["quality"] = quality
    rec["load"] = js["load"]
    # jaxscope alone on bigger grids (one seed, compile included)
    alone = {}
    for big in [] if quick else [50, 256]:
        r = run_checked(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--worker",
                "b6",
                "--side",
                str(big),
                "--steps",
                str(steps),
                "--ns",
                str(ns),
                "--seeds",
                "0",
            ]
        )
        alone[f"{big}x{big}"] = {
            "wall_s": r4(r["wall_s"]),
            "compile_s": r4(r["compile_s"]),
            "best_true": r["best_true"][0],
            "true_max": r["true_max"],
            "final_map_rmse": r["final_map_rmse"][0],
            "load": r["load"],
        }
        print(f"  [b6] jaxscope alone {big}x{big}: {r['wall_s']:.1f}s", flush=True)
    if alone:
        rec["jaxscope_alone_1_seed"] = alone
    return rec


# --- 2. decision latency -----------------------------------------------------------------------------
def _floor_fn(chunk):
    """Hand-written minimum: one predictive mean + variance pass given L and w (plain JAX)."""

    @jax.jit
    def floor(X, L, w, Xc, ls, var):
        def blk(Z):
            a, b = X / ls, Z / ls
            r2 = jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2 * a @ b.T
            K = var * jnp.exp(-0.5 * jnp.maximum(r2, 0.0))
            V = jax.scipy.linalg.solve_triangular(L, K, lower=True)
            return V.T @ w, var - jnp.sum(V * V, 0)

        if chunk is None:
            return blk(Xc)
        out = jax.lax.map(blk, Xc.reshape(-1, chunk, Xc.shape[1]))
        return out[0].reshape(-1), out[1].reshape(-1)

    return floor


def _latency_setup(side, n, steps, mode, dtype, chunk):
    prob = f2_problem(side, dtype=dtype)
    rng = np.random.default_rng(0)
    idx = rng.choice(side * side, n, replace=False)
    X0 = prob.candidates[idx]
    y0 = prob.values[idx] + 0.05 * jnp.asarray(rng.standard_normal(n), dtype)
    from jaxscope.gp.observations import Observations, Standardizer

    # the protocol of the recorded figures: the wide family, one warm-started refit per step
    # (the campaign default since issue 8 refits from two starts, about twice the MAP time)
    model = GPModel.for_candidates(prob.candidates, priors="wide")
    obs = Observations.from_arrays(X0, y0, dtype=dtype)
    sc = Standardizer.fit(obs)
    params, _ = fit_map(model, sc.apply(obs))  # warm start: the previous step's fit
    if mode == "map":
        surrogate = MAPGP(model, init_params=params, chunk_size=chunk, refit_from="previous")
    else:
        surrogate = HeldGP(model, prob.candidates, params=params, chunk_size=chunk)
    cfg = make_config(surrogate=surrogate, acquisition="ucb", track_rmse=False)
    state = init(cfg, prob, X0, y0, num_steps=steps, key=jax.random.key(0))
    return prob, cfg, state


def _copy_leaves(state):
    # donation needs one buffer per leaf (init shares e.g. the held hyperparameters between the
    # state and its cache): copy every leaf once before the first call
    return jax.tree_util.tree_map(
        lambda a: jnp.array(a, copy=True) if eqx.is_array(a) else a, state
    )


def _floor_args(cfg, prob, state):
    obs_s = state.model.scaler.apply(state.obs)
    post = cfg.surrogate.model.build(state.model.params).condition(obs_s)
    p = state.model.params
    return (obs_s.X, post.L, post.w, prob.candidates, p["lengthscale"], p["variance"])


def bench_latency(kind: str, quick: bool, dtype=jnp.float32) -> dict:
    side, n = (64, 200) if quick else (256, 500)
    steps = 4 if quick else (12 if kind == "refit" else 21)
    chunk = 8192 if side * side >= 8192 else None
    mode = "map" if kind == "refit" else "fixed"
    prob, cfg, state0 = _latency_setup(side, n, steps, mode, dtype, chunk)
    rec = {
        "what": f"one campaign step on a {side}x{side} grid ({side * side} candidates), "
        f"N={n} observations, {jnp.dtype(dtype).name}; jitted step with the state donated; "
        f"median of {steps - 1} steps after the first (compile excluded)",
        "load": [r4(os.getloadavg()[0])],
    }
    floor, args = None, None
    if kind == "refit":  # the floor's fastest variant, measured alternately with every step
        args = _floor_args(cfg, prob, state0)
        best = {}
        for c in (None, chunk) if chunk else (None,):
            f = _floor_fn(c)
            block(f(*args))
            ts = []
            for _ in range(3):
                with Timer() as tf:
                    block(f(*args))
                ts.append(tf.wall)
            best[str(c)] = (med(ts), f)
        rec["floor_by_chunk_s"] = {k: r4(v[0]) for k, v in best.items()}
        floor = min(best.values(), key=lambda v: v[0])[1]

    def run_steps(cfg_):
        step_jit = jax.jit(lambda s: step(s, cfg_, prob), donate_argnums=0)
        state = _copy_leaves(state0)
        times, floors, compiles = [], [], 0
        for _ in range(steps):
            with Timer() as t:
                state = block(step_jit(state))
            times.append(t.wall)
            compiles += t.n_compiles
            if floor is not None:
                with Timer() as tf:
                    block(floor(*args))
                floors.append(tf.wall)
        return times, floors[1:], compiles, state

    times, floors, compiles, state = run_steps(cfg)
    rec.update(
        {
            "jaxscope_s": r4(med(times[1:])),
            "step_times_s": [r4(x) for x in times[1:]],
            "first_call_s": r4(times[0]),
            "compiles": compiles,
        }
    )
    if kind == "refit":
        rec["name"] = f"decision_latency_refit_{side}x{side}_N{n}"
        rec["what"] += (
            "; MAP refit (L-BFGS, warm start from the previous step, at most "
            f"{cfg.surrogate.map_steps} iterations) + predictive + UCB + argmax + record. Floor: one "
            "predictive mean+variance pass given L and w (hand-written JAX, best chunking), "
            "timed right after every step"
        )
        rec["floor_s"] = r4(med(floors))
        rec["floor_times_s"] = [r4(x) for x in floors]
        rec["over_floor"] = r4(rec["jaxscope_s"] / rec["floor_s"])
        rec["target"] = "over_floor <= 1.5"
        # variant: the warm-started refit capped at 5 L-BFGS iterations
        cfg5 = _with(cfg, map_steps=5)
        t5, f5, _, _ = run_steps(cfg5)
        rec["variant_map_steps_5"] = {
            "jaxscope_s": r4(med(t5[1:])),
            "floor_s": r4(med(f5)),
            "over_floor": r4(med(t5[1:]) / med(f5)),
        }
        # where the time goes: decide alone on the final state (refit + predictive + UCB)
        dec = eqx.filter_jit(decide)
        block(dec(state, cfg, prob))
        ts = []
        for _ in range(3):
            with Timer() as td:
                block(dec(state, cfg, prob))
            ts.append(td.wall)
        rec["decide_only_s"] = r4(med(ts))
    else:
        rec["name"] = f"decision_latency_incremental_{side}x{side}_N{n}"
        rec["what"] += (
            "; hyperparameters held: PredictiveCache rank-1 update O(N*M) + UCB + "
            "argmax + measure + record"
        )
        rec["target"] = "median <= 0.05 s"
    return rec


def _with(cfg, **changes):
    """A copy of a CampaignConfig with some static fields changed."""
    import dataclasses

    return dataclasses.replace(cfg, surrogate=dataclasses.replace(cfg.surrogate, **changes))


# --- 5. BoTorch qEI q=4 --------------------------------------------------------------------------
def bench_botorch(quick: bool) -> dict:
    reps = 2 if quick else 5
    side = 64
    C = unit_grid(side)
    U = np.asarray(C, np.float64)

    def neg_branin(U):
        x1, x2 = U[:, 0] * 15 - 5, U[:, 1] * 15
        b, c, t = 5.1 / (4 * np.pi**2), 5 / np.pi, 1 / (8 * np.pi)
        return -((x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * np.cos(x1) + 10)

    vals = neg_branin(U)
    prob = GridProblem(C, jnp.asarray(vals, C.dtype), jnp.asarray(0.5, C.dtype), size=side)
    cfg = make_config(
        C,
        acquisition="logei",
        mode="map",
        q=4,
        batch="qei",
        joint_draws=256,
        joint_subset=64,
        track_rmse=False,
    )
    step_jit = eqx.filter_jit(step)
    times, best = [], []
    first = None
    for rep in range(reps + 1):
        rng = np.random.default_rng(rep)
        X0 = rng.random((20, 2))
        X0 = np.asarray(C)[np.argmin(((X0[:, None] - U[None]) ** 2).sum(-1), 1)]
        y0 = neg_branin(X0) + 0.5 * rng.standard_normal(20)
        st = init(cfg, prob, X0, y0, num_steps=1, key=jax.random.key(rep))
        block(st)
        with Timer() as t:
            out = block(step_jit(st, cfg, prob))
        if rep == 0:
            first = t
            continue
        times.append(t.wall)
        best.append(float(vals[np.asarray(out.history.index[0])].max()))
    rec = {
        "name": "botorch_qEI_q4_step",
        "what": "one BO step on Branin (inputs scaled to [0,1]^2, maximise -f), 20 noisy "
        "observations, q=4 joint qEI. BoTorch: SingleTaskGP + fit_gpytorch_mll + "
        "optimize_acqf(qExpectedImprovement, num_restarts=10, raw_samples=512), float64. "
        "jaxscope: compiled step = MAP refit + greedy joint MC qEI (256 draws over the 64 "
        "best of 4096 grid candidates) + measure + record, float32; medians over "
        f"{reps} random data sets, compile excluded (jaxscope compile reported)",
        "jaxscope_s": r4(med(times)),
        "jaxscope_runs_s": [r4(x) for x in times],
        "compile_s": r4(first.compile),
        "first_call_s": r4(first.wall),
        "compiles": first.n_compiles,
        "load": [r4(os.getloadavg()[0])],
    }
    py, _, berr = peer("botorch")
    if py is None:
        rec["peer_error"] = f"botorch venv unavailable: {berr}"
        return rec
    try:
        r = run_checked([py, "_botorch_qei.py", str(reps)])
        rec.update(
            {
                "peer": f"botorch {r['botorch']} (torch {r['torch']})",
                "peer_s": r4(r["median_step_s"]),
                "peer_runs_s": [r4(x) for x in r["step_wall_s"]],
                "speedup": r4(r["median_step_s"] / med(times)),
                "quality": {
                    "jaxscope_best_true_of_batch": best,
                    "peer_best_true_of_batch": r["best_true_of_batch"],
                    "true_max": float(vals.max()),
                },
                "peer_load": r["loadavg_1min_start_end"],
            }
        )
    except Exception as e:  # noqa: BLE001
        rec["peer_error"] = repr(e)[:800]
    return rec


# --- driver --------------------------------------------------------------------------------------
BENCHES = {
    "gpax_B6_end_to_end": bench_b6,
    "decision_latency_refit_256x256_N500": lambda q: bench_latency("refit", q),
    "decision_latency_incremental_256x256_N500": lambda q: bench_latency("incremental", q),
    "strategy_batch_4x3x32x100": strategies.bench_strategies,
    "sharding_1_to_8_devices": strategies.bench_sharding,
    "botorch_qEI_q4_step": bench_botorch,
}


def _met(rec: dict):
    """Whether a record meets the issue's target (None where no target or no figure)."""
    name = rec.get("name", "")
    if "error" in rec:
        return False
    if name.startswith("gpax_B6"):
        q = rec.get("quality", {}).get("mean_best_true")
        if rec.get("speedup") is None or q is None:
            return None
        return bool(rec["speedup"] >= 20 and q["jaxscope"] >= q["peer"] - 1e-9)
    if name.startswith("decision_latency_refit"):
        return None if rec.get("over_floor") is None else bool(rec["over_floor"] <= 1.5)
    if name.startswith("decision_latency_incremental"):
        return None if rec.get("jaxscope_s") is None else bool(rec["jaxscope_s"] <= 0.05)
    if name.startswith("botorch"):
        return None if rec.get("speedup") is None else bool(rec["speedup"] >= 10)
    return None


def save(records, quick, command):
    for rec in records:  # targets are stated for the full sizes; quick mode is a smoke check
        rec["met"] = None if quick else _met(rec)
    path = OUT_QUICK if quick else OUT
    write_results(
        path, "campaigns", command, records, mode="quick" if quick else "full", versions=versions()
    )
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated record names")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--annotate", action="store_true", help="recompute the 'met' fields of a results file"
    )
    ap.add_argument("--side", type=int, default=25, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=20, help=argparse.SUPPRESS)
    ap.add_argument("--ns", type=int, default=200, help=argparse.SUPPRESS)
    ap.add_argument("--seeds", default="0", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "b6":
        return worker_b6(args)
    if args.annotate:
        path = OUT_QUICK if args.quick else OUT
        with open(path) as f:
            data = json.load(f)
        return print("saved", save(data["records"], args.quick, data["command"]))
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(BENCHES)
    if unknown:
        raise SystemExit(f"unknown record(s) {sorted(unknown)}; choose from {list(BENCHES)}")
    command = (
        "python benchmarks/campaigns.py"
        + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if only else "")
    )
    path = OUT_QUICK if args.quick else OUT
    records = []
    if only and os.path.exists(path):  # keep the other records of an earlier run
        with open(path) as f:
            earlier = json.load(f)
        records = [r for r in earlier["records"] if r.get("key") not in only]
        if earlier.get("command") and earlier["command"] != command:
            command = f"{earlier['command']} && {command}"
    for name, fn in BENCHES.items():
        if only and name not in only:
            continue
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            rec = fn(args.quick)
        except Exception as e:  # noqa: BLE001 - a failed benchmark is recorded, never dropped
            rec = {"name": name, "error": repr(e)[:1500]}
        rec["key"] = name
        rec["bench_wall_s"] = r4(time.perf_counter() - t0)
        records = [r for r in records if r.get("key") != name] + [rec]
        print(
            json.dumps(
                {
                    k: v
                    for k, v in rec.items()
                    if k not in ("quality", "by_devices", "final_mean_over_seeds")
                }
            ),
            flush=True,
        )
        print("saved", save(records, args.quick, command), flush=True)


if __name__ == "__main__":
    main()
