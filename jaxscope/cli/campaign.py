"""``jaxscope campaign``: an autonomous campaign on an embedded simulated instrument.

The command drives a simulator (default: the sparse-scan surface, a scanning probe measuring
single pixels of a 48×48 synthetic topography) through the host-driven runner
(:class:`~jaxscope.host.HostRunner`): a progress bar, the append-only journal, orbax checkpoints
and automatic resume (run the same command again after an interruption). It writes to ``--out``:

* ``journal.jsonl``: every request, measurement, failure and commit;
* ``metrics.json``: settings, timings (first step includes compilation), per-step metrics (best
  true value found, regret, fraction of the top-1 % region found, map RMSE) and the best point;
* ``campaign.png``: explored points over the ground truth, posterior mean, posterior σ and the
  acquisition for the next step; ``metrics.png``: the metrics against the step.

Example:
    $ jaxscope campaign --problem three_gaussians --acquisition logei --steps 30 --out run1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time

import numpy as np

HELP = "autonomous active-learning campaign on an embedded simulated instrument"
DESCRIPTION = (
    "Run an autonomous campaign (fit a GP, choose the next point by an acquisition rule, measure "
    "it) on a simulated instrument through the host-driven runner: progress bar, journal, "
    "checkpoints, automatic resume. Writes journal.jsonl, metrics.json, campaign.png and "
    "metrics.png to --out."
)
# the command's own defaults; rule, penalty, surrogate and budget are the library's
# (``jaxscope.campaign.CAMPAIGN_DEFAULTS``, chosen by ``benchmarks/quality.py --choose``)
DEFAULTS = {
    "problem": "sparse_scan",
    "batch_size": 1,
    "seed": 0,
    "size": 48,
    "out": "runs/campaign",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``campaign`` subcommand's options."""
    from ..campaign import CAMPAIGN_DEFAULTS, HYPOTHESIS_DEFAULTS, MODES, PROBLEM_LAWS
    from ..decide import PENALTY_NAMES
    from ..decide.acquisition import names as rule_names
    from ..instruments import IMAGE_PROBLEMS, PROBLEMS

    d = {**CAMPAIGN_DEFAULTS, **DEFAULTS}
    p.add_argument(
        "--problem",
        default=d["problem"],
        choices=PROBLEMS,
        help=f"simulated instrument (default {d['problem']})",
    )
    p.add_argument(
        "--acquisition",
        default=None,
        help=f"acquisition rule: {', '.join(rule_names())} (default {d['acquisition']}; "
        f"maxvar with --mode hypotheses)",
    )
    p.add_argument(
        "--steps", type=int, default=None,
        help=f"campaign steps (default {d['steps']}; {HYPOTHESIS_DEFAULTS['steps']} with --mode "
        "hypotheses)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=d["batch_size"], help="points per step (q)")
    p.add_argument("--seed", type=int, default=d["seed"], help="seed of problem, noise, choices")
    p.add_argument(
        "--num-init", type=int, default=None,
        help=f"random seed points (default {d['num_init']}; {HYPOTHESIS_DEFAULTS['num_init']} "
        "with --mode hypotheses)",
    )  # fmt: skip
    p.add_argument(
        "--size",
        type=int,
        default=d["size"],
        help="grid side for grid problems (sparse_scan, three_gaussians), image side of the "
        "digital twins (pfm_twin, eels_twin, stem4d_twin)",
    )
    p.add_argument(
        "--penalty",
        default=d["penalty"],
        choices=PENALTY_NAMES,
        help="penalty on the scores: none, or memory (no return near the last 5 points) "
        f"(default {d['penalty']})",
    )
    p.add_argument(
        "--mode",
        default=None,
        choices=(*MODES, "hypotheses", "dkl"),
        help=f"hyperparameters: MAP refit each step, fixed, or NUTS (default {d['mode']}); "
        "grid: the structured GP of the whole candidate grid (image problems, thousands of "
        "measurements); "
        "hypotheses: learn which of competing physical laws holds (the default on "
        f"{', '.join(PROBLEM_LAWS)}); dkl: a deep-kernel GP on image patches (the default on "
        f"{', '.join(IMAGE_PROBLEMS)})",
    )
    p.add_argument("--out", default=d["out"], help="output folder (resumed if it holds a run)")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def make_problem(name: str, seed: int, size: int):
    """The simulator of a problem name (noise included) at the command's default sizes."""
    import jax

    from ..instruments import IMAGE_PROBLEMS, make_simulator

    key = jax.random.key(seed)
    if name in IMAGE_PROBLEMS:
        return make_simulator(name, key=key, size=size)
    if name == "sparse_scan":
        return make_simulator(name, key=key, size=size, noise=0.05)
    if name == "three_gaussians":
        return make_simulator(name, size=size, noise=0.02)
    return make_simulator(name, key=key)


def resolve_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the options left unset: hypothesis learning on problems with competing laws
    (:data:`~jaxscope.campaign.PROBLEM_LAWS`), the campaign defaults elsewhere."""
    from ..campaign import CAMPAIGN_DEFAULTS, DKL_DEFAULTS, HYPOTHESIS_DEFAULTS, PROBLEM_LAWS
    from ..instruments import IMAGE_PROBLEMS

    if args.mode is None:
        args.mode = CAMPAIGN_DEFAULTS["mode"]
        if args.problem in PROBLEM_LAWS:
            args.mode = "hypotheses"
        elif args.problem in IMAGE_PROBLEMS:
            args.mode = "dkl"
    d = {"hypotheses": HYPOTHESIS_DEFAULTS, "dkl": DKL_DEFAULTS}.get(args.mode, CAMPAIGN_DEFAULTS)
    for name in ("acquisition", "steps", "num_init"):
        if getattr(args, name) is None:
            setattr(args, name, d[name])
    return args


def campaign_config(sim, q: int, steps: int, *, acquisition: str, mode: str, penalty: str):
    """The config ``jaxscope campaign`` runs (and ``jaxscope counterfactual`` rebuilds from a
    journal's settings): hypothesis learning, a deep-kernel campaign or a GP campaign."""
    from ..campaign import dkl_config, hypothesis_config, make_config
    from ..decide import penalties_by_name

    pens = penalties_by_name(penalty, sim.candidates)
    if mode == "hypotheses":
        return hypothesis_config(sim, acquisition=acquisition, max_steps=steps + 1)
    if mode == "dkl":  # q > 1: fantasies (the exclusion radius would be in feature space)
        batch = {"batch": "believer"} if q > 1 else {}
        return dkl_config(sim, acquisition=acquisition, q=q, penalties=pens, **batch)
    return make_config(sim.candidates, acquisition=acquisition, mode=mode, q=q, penalties=pens)


def run_campaign(args: argparse.Namespace) -> dict:
    """Run (or resume) the campaign described by ``args``; returns the metrics dict."""
    import jax.numpy as jnp

    from ..campaign import campaign_metrics
    from ..host import HostRunner
    from ..host.runner import decide_jit
    from ..instruments import SimulatorInstrument

    args = resolve_defaults(args)
    if args.steps < 1 or args.batch_size < 1 or args.num_init < 1:
        raise ValueError("--steps, --batch-size and --num-init must be positive")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out!r} is a file, not a folder: give a folder")
    t0 = time.time()
    sim = make_problem(args.problem, args.seed, args.size)
    m = int(sim.candidates.shape[0])
    need = args.num_init + args.steps * args.batch_size
    if need > m:
        raise ValueError(
            f"--num-init {args.num_init} + --steps {args.steps} × --batch-size "
            f"{args.batch_size} = {need} measurements, but {args.problem} has only {m} "
            "candidates (each is measured at most once)"
        )
    if args.overwrite and os.path.isdir(args.out):
        shutil.rmtree(args.out)
    config = campaign_config(sim, args.batch_size, args.steps, acquisition=args.acquisition,
                             mode=args.mode, penalty=args.penalty)  # fmt: skip
    meta = {"problem": args.problem, "acquisition": args.acquisition, "size": args.size,
            "penalty": args.penalty}  # fmt: skip
    try:
        runner = HostRunner(
            config,
            sim,
            args.out,
            num_steps=args.steps,
            num_init=args.num_init,
            seed=args.seed,
            checkpoint_every=5,
            progress=not args.no_progress,
            meta=meta,
        )
    except ValueError as err:
        if "written with settings" in str(err):  # another run's journal: the hint applies
            raise ValueError(f"{err}\n(use --overwrite or another --out)") from None
        raise
    with runner:
        inst = SimulatorInstrument(sim, seed=args.seed + 1, start=runner.num_measured)
        state = runner.run(inst)
        final = decide_jit(state, runner.config, runner.problem_view())
        records = runner.journal.records
    # NaN (e.g. the RMSE a hypothesis campaign does not track) is written as null
    metrics = {k: _finite_or_none(np.asarray(v).tolist()) for k, v in
               campaign_metrics(state, sim).items()}  # fmt: skip
    C = np.asarray(sim.candidates)
    n = int(state.obs.count)
    X, y = np.asarray(state.obs.X[:n]), np.asarray(state.obs.y[:n])
    sign = 1.0 if sim.maximize else -1.0
    ib = int(np.argmax(sign * y))
    commits = [r["time"] for r in records if r["kind"] == "commit"]
    steps_s = np.diff(commits).tolist() if len(commits) > 1 else []
    out = {
        "problem": args.problem,
        "acquisition": args.acquisition,
        "penalty": args.penalty,
        "mode": args.mode,
        "steps": int(state.step),
        "batch_size": args.batch_size,
        "seed": args.seed,
        "num_init": args.num_init,
        "candidates": int(C.shape[0]),
        "dim": int(C.shape[1]),
        "maximize": bool(sim.maximize),
        "timing": {
            "total_s": None,
            "first_step_s": steps_s[0] if steps_s else None,
            "median_step_s": float(np.median(steps_s[1:])) if len(steps_s) > 1 else None,
        },
        "per_step": metrics,
        "final": {k: (v[-1] if v else None) for k, v in metrics.items()},
        "optimum": float(sim.optimum),
        "best_measured": {"x": X[ib].tolist(), "y": float(y[ib])},
        "measurements": sum(r["kind"] == "measurement" for r in records),
        "failures": sum(r["kind"] == "failure" for r in records),
        "journal": "journal.jsonl",
    }
    if args.mode == "hypotheses":
        out["hypotheses"] = hypothesis_report(config, state, sim)
    out["figures"] = _figures(args.out, sim, state, final, metrics, jnp)
    if args.mode == "dkl":
        from .dkl_figures import dkl_figure

        out["figures"].append(dkl_figure(args.out, sim, state, final, config))
    out["timing"]["total_s"] = time.time() - t0
    with open(os.path.join(args.out, "metrics.json"), "w") as fh:
        json.dump(out, fh, indent=1, allow_nan=False, default=_json_safe)
    return out


def hypothesis_report(config, state, sim) -> dict:
    """Per step: the chosen law and every law's posterior probability; the final choice and
    its x_c posterior (mean, 90 % interval); the hidden truth where the simulator has one."""
    learner, hs = config.surrogate, config.surrogate.hypotheses
    tr, n = state.model.trace, int(state.model.step)
    probs = np.asarray(tr.probs[:n])
    best = int(np.argmax(probs[-1]))
    out = {
        "laws": list(hs.labels),
        "per_step": [
            {
                "chosen": hs.labels[int(s)],
                "probs": dict(zip(hs.labels, np.round(p, 4).tolist(), strict=True)),
            }
            for s, p in zip(np.asarray(tr.selected[:n]), probs, strict=True)
        ],
        "final_choice": hs.labels[best],
    }
    samples = learner.physics_samples(state.model, best)
    if "xc" in samples:
        xc = np.asarray(samples["xc"])
        out["xc"] = {"mean": float(xc.mean()), "q05": float(np.quantile(xc, 0.05)),
                     "q95": float(np.quantile(xc, 0.95))}  # fmt: skip
    if hasattr(sim, "law"):
        out["truth"] = {"law": sim.law, **{k: float(v) for k, v in sim.params.items()}}
    return out


def _finite_or_none(v):
    if isinstance(v, list):
        return [_finite_or_none(x) for x in v]
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _json_safe(v):
    return None if isinstance(v, float) and not math.isfinite(v) else str(v)


def _grid_side(C: np.ndarray) -> int | None:
    s = math.isqrt(C.shape[0])
    if C.shape[1] != 2 or s * s != C.shape[0]:
        return None
    G = C.reshape(s, s, 2)
    ok = np.allclose(G[:, :, 0], G[:, :1, 0]) and np.allclose(G[:, :, 1], G[:1, :, 1])
    return s if ok else None


def _figures(out: str, sim, state, decision, metrics: dict, jnp) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    files = []
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    steps = np.arange(1, len(metrics["best"]) + 1)
    axes[0].plot(steps, metrics["regret"])
    axes[0].set(title="regret (optimum − best true value found)", xlabel="step")
    axes[1].plot(steps, metrics["rmse"])
    axes[1].set(title="map RMSE over the candidates", xlabel="step")
    axes[2].plot(steps, metrics["top_found"])
    axes[2].set(title="fraction of top-1 % region found", xlabel="step", ylim=(-0.02, 1.02))
    fig.tight_layout()
    files.append("metrics.png")
    fig.savefig(os.path.join(out, files[-1]), dpi=110)
    plt.close(fig)

    C = np.asarray(sim.candidates)
    if C.shape[1] != 2:
        return files
    truth = np.asarray(sim.truth(jnp.asarray(C)))
    mean = np.asarray(decision.pred.mean).mean(0)
    sd = np.sqrt(np.asarray(decision.pred.var).mean(0))
    acq = np.asarray(decision.scores, float)
    acq = np.where(np.isfinite(acq), acq, np.nan)
    n0 = int(state.obs.count) - int(np.sum(np.asarray(state.history.index) >= 0))
    X = np.asarray(state.obs.X[: int(state.obs.count)])
    side = _grid_side(C)
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    panels = [
        (truth, "ground truth + explored points"),
        (mean, "posterior mean"),
        (sd, "posterior σ"),
        (acq, "acquisition (next step)"),
    ]
    for ax, (v, title) in zip(axes, panels, strict=True):
        if side:
            ext = (C[:, 1].min(), C[:, 1].max(), C[:, 0].min(), C[:, 0].max())
            im = ax.imshow(v.reshape(side, side), origin="lower", extent=ext, cmap="viridis")
        else:
            im = ax.tricontourf(C[:, 1], C[:, 0], np.nan_to_num(v, nan=np.nanmin(v)), 40)
        fig.colorbar(im, ax=ax, shrink=0.85)
        ax.set(title=title, xlabel="x[1]", ylabel="x[0]")
    ax = axes[0]
    ax.plot(X[n0:, 1], X[n0:, 0], "-", color="w", lw=0.6, alpha=0.7)
    ax.scatter(X[:n0, 1], X[:n0, 0], marker="x", c="r", s=25, label="seed")
    ax.scatter(
        X[n0:, 1],
        X[n0:, 0],
        c=np.arange(len(X) - n0),
        cmap="autumn",
        s=14,
        edgecolors="k",
        linewidths=0.3,
        label="chosen (by step)",
    )
    ax.legend(loc="upper right", fontsize=7)
    for ax in axes[1:]:
        ax.scatter(X[:, 1], X[:, 0], c="w", s=5, edgecolors="k", linewidths=0.2)
    fig.tight_layout()
    files.append("campaign.png")
    fig.savefig(os.path.join(out, files[-1]), dpi=110)
    plt.close(fig)
    return files


def main(args: argparse.Namespace) -> int:
    """Entry point of ``jaxscope campaign``: run, print a summary, return the exit code."""
    out = run_campaign(args)
    if "hypotheses" in out:
        h = out["hypotheses"]
        print("step  chosen        " + "  ".join(f"P({k})" for k in h["laws"]))
        for i, row in enumerate(h["per_step"]):
            ps = "  ".join(f"{row['probs'][k]:>{len(k) + 3}.3f}" for k in h["laws"])
            print(f"{i:>4}  {row['chosen']:<12}  {ps}")
        xc = h.get("xc")
        print(f"final choice: {h['final_choice']}"
              + (f", x_c = {xc['mean']:.3f} [{xc['q05']:.3f}, {xc['q95']:.3f}]" if xc else "")
              + (f"; truth: {h['truth']['law']}, x_c = {h['truth']['xc']:.3f}"
                 if "truth" in h else ""))  # fmt: skip
    f, b = out["final"], out["best_measured"]
    print(
        f"{out['problem']}: {out['steps']} steps × {out['batch_size']} ({out['acquisition']}), "
        f"best measured {b['y']:.4g} at {np.round(b['x'], 4).tolist()}, "
        f"regret {f['regret']:.4g}, top-1% found {f['top_found']:.2f}, "
        + (f"RMSE {f['rmse']:.4g}; " if f["rmse"] is not None else "")
        + f"{out['timing']['total_s']:.1f} s"
    )
    print(f"wrote {args.out}/: journal.jsonl, metrics.json, {', '.join(out['figures'])}")
    return 0
