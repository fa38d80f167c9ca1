"""Strategy benchmark: 4 acquisitions x 3 problems x 32 seeds x 100 steps in one compiled call.

Every (acquisition, problem, seed) campaign runs inside one ``vmap``-ped, compiled program
(:func:`jaxscope.campaign.strategies.run_strategies`); metrics versus step (simple regret, fraction of the
top-1 % candidates found, map RMSE) go to ``results/strategies/metrics_<mode>.json`` and a PNG,
and the same batch is split over 1, 2, 4 and 8 simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``, one subprocess per count).

    python benchmarks/strategies.py            # full: 4x3x32x100, scaling on 4x3x8x30
    python benchmarks/strategies.py --quick    # smoke check

Results: ``results/strategies.json`` (records ``strategy_batch_...`` and
``sharding_1_to_8_devices``); ``campaigns.py`` includes the same two records in
``results/campaigns.json``.
"""

from __future__ import annotations

# isort: off
import _common  # noqa: F401  (sets BENCH_ENV, e.g. OPENBLAS_NUM_THREADS=1, before numpy/jax)
from _common import Timer, block, r4, run_json, versions, write_results

# isort: on
import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxscope.campaign import make_config

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def run_checked(cmd, env=None, timeout=7200) -> dict:
    out = run_json(cmd, cwd=HERE, env=env, timeout=timeout)
    if "error" in out:
        raise RuntimeError(str(out["error"])[-1500:])
    return out


# --- strategy batch -----------------------------------------------------------------------------
def strategy_problems(size: int, dtype=jnp.float32):
    from jaxscope.instruments import (
        SparseScanSimulator,
        SyntheticFunction,
        ThreeGaussians,
        stack_problems,
        tabulate,
    )

    sims = {
        "three_gaussians": ThreeGaussians(dtype=dtype),
        "branin": SyntheticFunction("branin"),
        "sparse_scan": SparseScanSimulator.create(jax.random.key(0), size=64),
    }
    return list(sims), stack_problems([tabulate(s, size, dtype=dtype) for s in sims.values()])


STRATEGIES = (("logei", None), ("ucb", {"beta": 4.0}), ("thompson", None), ("maxvar", None))


def strategy_config(probs, map_steps=10):
    return make_config(
        probs.candidates[0],
        acquisition=[a for a, _ in STRATEGIES],
        acq_kwargs=[k for _, k in STRATEGIES],
        mode="map",
        map_steps=map_steps,
        draw_method="pathwise",
        draw_features=512,
    )


def bench_strategies(quick: bool) -> dict:
    from jaxscope.campaign.strategies import run_strategies

    size, seeds, steps, n_init = (15, 4, 10, 5) if quick else (25, 32, 100, 5)
    names, probs = strategy_problems(size)
    cfg = strategy_config(probs)
    with Timer() as t:
        out = run_strategies(
            jax.random.key(0), cfg, probs, num_seeds=seeds, num_init=n_init, num_steps=steps
        )
        out = block(out)
    A, P = len(STRATEGIES), len(names)
    n_cs = A * P * seeds * steps
    summary = {}
    for a, (sname, _) in enumerate(STRATEGIES):
        for p, pname in enumerate(names):
            summary[f"{sname}/{pname}"] = {
                k: np.round(np.asarray(jnp.mean(out[k][a, p], axis=0)), 5).tolist()
                for k in ("regret", "top_found", "rmse")
            }
    os.makedirs(os.path.join(RESULTS, "strategies"), exist_ok=True)
    tag = "quick" if quick else "full"
    with open(os.path.join(RESULTS, "strategies", f"metrics_{tag}.json"), "w") as f:
        json.dump(
            {
                "strategies": [s for s, _ in STRATEGIES],
                "problems": names,
                "seeds": seeds,
                "steps": steps,
                "grid": f"{size}x{size}",
                "mean_over_seeds": summary,
            },
            f,
        )
    plot_strategies(out, names, steps, os.path.join(RESULTS, "strategies", f"strategies_{tag}.png"))
    final = {
        k: {s: r4(v[k][-1]) for s, v in summary.items()} for k in ("regret", "top_found", "rmse")
    }
    return {
        "name": f"strategy_batch_{A}x{P}x{seeds}x{steps}",
        "what": f"{A} acquisitions ({', '.join(s for s, _ in STRATEGIES)}) x {P} problems "
        f"({', '.join(names)}; {size}x{size} grids) x {seeds} seeds x {steps} steps, MAP refit "
        "every step (L-BFGS <= 10 iterations, warm start), Thompson by pathwise draws (512 "
        "random features), one compiled call (vmap over the flat batch, on CPU run as lax.map "
        "with batch_size=1: see jaxscope.campaign.strategies.run_strategies); compile included",
        "jaxscope_s": r4(t.wall),
        "compile_s": r4(t.compile),
        "compiles": t.n_compiles,
        "campaign_steps": n_cs,
        "per_campaign_step_ms": r4(1e3 * t.wall / n_cs),
        "per_campaign_step_ms_excl_compile": r4(1e3 * (t.wall - t.compile) / n_cs),
        "final_mean_over_seeds": final,
        "load": t.load,
    }


def plot_strategies(out, names, steps, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (("regret", "simple regret"), ("top_found", "top-1% found"), ("rmse", "map RMSE"))
    fig, axes = plt.subplots(
        len(keys), len(names), figsize=(4 * len(names), 3 * len(keys)), squeeze=False
    )
    t = np.arange(1, steps + 1)
    for i, (k, label) in enumerate(keys):
        for p, pname in enumerate(names):
            ax = axes[i, p]
            for a, (sname, _) in enumerate(STRATEGIES):
                v = np.asarray(out[k][a, p])
                ax.plot(t, np.median(v, 0), label=sname)
                ax.fill_between(t, np.percentile(v, 25, 0), np.percentile(v, 75, 0), alpha=0.15)
            ax.set_title(pname if i == 0 else "")
            ax.set_xlabel("step")
            ax.set_ylabel(label)
            if k == "regret":
                ax.set_yscale("symlog", linthresh=1e-3)
    axes[0, 0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- sharding -----------------------------------------------------------------------------------
def worker_sharding(args):
    from jaxscope.campaign.strategies import batch_mesh, run_strategies

    n = len(jax.devices())
    _, probs = strategy_problems(args.side)
    cfg = strategy_config(probs)
    kw = dict(
        num_seeds=args.seeds_n,
        num_init=5,
        num_steps=args.steps,
        mesh=batch_mesh(n) if n > 1 else None,
    )
    with Timer() as t1:
        out = block(run_strategies(jax.random.key(0), cfg, probs, **kw))
    with Timer() as t2:
        out = block(run_strategies(jax.random.key(0), cfg, probs, **kw))
    idx = np.asarray(out["history"].index)
    print(
        json.dumps(
            {
                "devices": n,
                "first_s": t1.wall,
                "compile_s": t1.compile,
                "run_s": t2.wall,
                "index": idx.reshape(-1).tolist(),
                "regret_mean": float(jnp.mean(out["regret"][..., -1])),
                "load": t2.load,
            }
        )
    )


def _same_campaigns(a, b, steps):
    a, b = np.asarray(a).reshape(-1, steps), np.asarray(b).reshape(-1, steps)
    return float(np.mean(np.all(a == b, axis=1)))


def bench_sharding(quick: bool) -> dict:
    side, seeds, steps = (11, 2, 5) if quick else (25, 8, 30)
    res = []
    for n in (1, 2, 4, 8):
        env = dict(
            os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={n}"
        )
        res.append(
            run_checked(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--worker",
                    "sharding",
                    "--side",
                    str(side),
                    "--seeds-n",
                    str(seeds),
                    "--steps",
                    str(steps),
                ],
                env=env,
            )
        )
        print(f"  [sharding] {n} devices: run {res[-1]['run_s']:.2f}s", flush=True)
    base = res[0]["run_s"]
    return {
        "name": "sharding_1_to_8_devices",
        "what": f"strategy batch 4x3x{seeds} seeds x {steps} steps ({side}x{side} grids) split "
        "over 1/2/4/8 simulated CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count) "
        "with shard_map (each device runs its campaigns one after another); run time of the "
        "second call (compiled) and first call (with compile); the simulated devices share "
        "the machine's physical cores",
        "jaxscope_s": r4(res[-1]["run_s"]),
        "by_devices": {
            str(r["devices"]): {
                "run_s": r4(r["run_s"]),
                "first_s": r4(r["first_s"]),
                "compile_s": r4(r["compile_s"]),
                "speedup_vs_1": r4(base / r["run_s"]),
                "load": r["load"],
            }
            for r in res
        },
        "identical_choices_vs_1_device": {
            str(r["devices"]): bool(r["index"] == res[0]["index"]) for r in res[1:]
        },
        "fraction_of_campaigns_identical_vs_1_device": {
            str(r["devices"]): r4(_same_campaigns(r["index"], res[0]["index"], steps))
            for r in res[1:]
        },
        "regret_mean_by_devices": [r4(r["regret_mean"]) for r in res],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--side", type=int, default=25, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=30, help=argparse.SUPPRESS)
    ap.add_argument("--seeds-n", type=int, default=8, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "sharding":
        return worker_sharding(args)
    records = []
    for fn in (bench_strategies, bench_sharding):
        try:
            rec = fn(args.quick)
        except Exception as e:  # noqa: BLE001 - recorded, never dropped
            rec = {"name": fn.__name__, "error": repr(e)[:1500]}
        records.append(rec)
        print(json.dumps(rec)[:2000], flush=True)
        command = "python benchmarks/strategies.py" + (" --quick" if args.quick else "")
        path = os.path.join(RESULTS, "strategies_quick.json" if args.quick else "strategies.json")
        write_results(path, "strategies", command, records, versions=versions())


if __name__ == "__main__":
    main()
