r"""Strategy benchmark: acquisitions × problems × seeds as one ``vmap``-ped, compiled program.

Every (strategy, problem, seed) triple is one independent campaign
(:func:`jaxscope.campaign.run_campaign`): the strategy is the policy state's active rule (an
index into ``config.policy.rules``, chosen by ``lax.switch``), the problem a
:class:`~jaxscope.instruments.GridProblem` (tabulated ground truth on a shared grid, so problems
stack into one pytree), the seed a PRNG key. The flat
batch of ``A·P·S`` campaigns is ``vmap``-ped (in chunks inside ``lax.map``; on CPU one campaign
at a time, see :func:`run_strategies`); with a device mesh it is split across devices by
``jax.shard_map`` (each device runs its slice; campaigns never communicate), so the result does
not depend on the number of devices.

Seeds use common random numbers: campaign ``(a, p, s)`` starts from the same seed points and noise
key for every strategy ``a``, so strategies are compared on identical draws.

Metrics per step (:func:`jaxscope.campaign.campaign_metrics`): simple regret, fraction of the
top-1 % candidates found, RMSE of the predictive mean over the grid.

Example:
    >>> probs = stack_problems([tabulate(ThreeGaussians(), 32), tabulate(Branin(), 32)])
    >>> cfg = make_config(probs.candidates[0], acquisition=["logei", "ucb"], mode="map")
    >>> out = run_strategies(jax.random.key(0), cfg, probs, num_seeds=8, num_init=5,
    ...                      num_steps=50)
    >>> out["regret"].shape        # (strategies, problems, seeds, steps)
    (2, 2, 8, 50)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import PRNGKeyArray

from ..runtime.jit import jit
from .compiled import run_campaign
from .config import CampaignConfig
from .metrics import campaign_metrics


def _flat_inputs(key, num_strategies: int, num_problems: int, num_seeds: int):
    a, p, s = np.meshgrid(
        np.arange(num_strategies), np.arange(num_problems), np.arange(num_seeds), indexing="ij"
    )
    a, p, s = (jnp.asarray(v.ravel(), jnp.int32) for v in (a, p, s))
    keys = jax.vmap(lambda pi, si: jax.random.fold_in(jax.random.fold_in(key, pi), si))(p, s)
    return a, p, keys


def _run_flat(config, num_init, num_steps, keys, problems, policies, chunk):
    def one(args):
        k, prob, pol = args
        final = run_campaign(k, config, prob, num_init, num_steps, pol)
        metrics = campaign_metrics(final, prob)
        return metrics, final.history

    n = keys.shape[0]
    if chunk is None or chunk >= n:
        return jax.vmap(one)((keys, problems, policies))
    # vmap inside chunks of `chunk` campaigns, chunks one after another (lax.map): bounds the
    # batch of every batched while loop (see run_strategies)
    return jax.lax.map(one, (keys, problems, policies), batch_size=chunk)


def run_strategies(
    key: PRNGKeyArray,
    config: CampaignConfig,
    problems: Any,
    *,
    num_seeds: int,
    num_init: int,
    num_steps: int,
    mesh: Mesh | None = None,
    chunk: int | str | None = "auto",
) -> dict[str, Any]:
    """Run every strategy (rule) of ``config.policy`` on every problem for ``num_seeds`` seeds.

    Args:
        key: base PRNG key.
        config: campaign config; its policy's rules are the strategies compared.
        problems: stacked :class:`~jaxscope.instruments.GridProblem` (leading axis = problems).
        num_seeds, num_init, num_steps: seeds per (strategy, problem), seed points, steps.
        mesh: optional 1-D :class:`jax.sharding.Mesh` (axis ``"batch"``): the flat batch of
            campaigns is split over its devices with ``shard_map`` (its size must divide
            ``A·P·S``).
        chunk: campaigns ``vmap``-ped together (per device); chunks run one after another
            inside the same compiled program (``lax.map`` with ``batch_size``); ``None`` vmaps
            the whole batch. ``"auto"``: ``None`` on accelerators, ``1`` on CPU. Why 1 on CPU:
            jaxlib's batched LAPACK kernels (Cholesky, triangular solve) split a batch over
            XLA:CPU's intra-op thread pool and block until it is done; when as many such
            kernels run at once as the pool has threads (2 on a 2-core machine), every thread
            waits and the program hangs (seen with jax 0.10.2 at 384 campaigns × 10 steps, all
            threads idle). Unbatched kernels never split.

    Returns:
        dict with ``regret``, ``top_found``, ``rmse``, ``best`` of shape ``(A, P, S, T)`` and
        ``history`` (the campaigns' :class:`~jaxscope.campaign.History`, leading ``(A, P, S)``).
    """
    if chunk == "auto":
        chunk = 1 if jax.default_backend() == "cpu" else None
    A = len(config.policy.rules)
    Pn = problems.values.shape[0]
    policies, pidx, keys = _flat_inputs(key, A, Pn, num_seeds)
    probs = jax.tree_util.tree_map(lambda v: v[pidx], problems)
    B = A * Pn * num_seeds
    if mesh is None:
        metrics, hist = _compiled_flat(config, num_init, num_steps, chunk, keys, probs, policies)
    else:
        if mesh.axis_names != ("batch",):
            raise ValueError(f"mesh must have one axis named 'batch', got {mesh.axis_names}")
        n_dev = mesh.devices.size
        if B % n_dev:
            raise ValueError(f"{B} campaigns do not split evenly over {n_dev} devices")
        shard = NamedSharding(mesh, P("batch"))
        keys, probs, policies = jax.device_put((keys, probs, policies), shard)
        metrics, hist = _sharded_flat(
            config, num_init, num_steps, chunk, mesh, keys, probs, policies
        )
    unflat = lambda a: a.reshape((A, Pn, num_seeds) + a.shape[1:])
    out = {k: unflat(v) for k, v in metrics.items()}
    out["history"] = jax.tree_util.tree_map(unflat, hist)
    return out


@jit
def _compiled_flat(config, num_init, num_steps, chunk, keys, probs, policies):
    return _run_flat(config, num_init, num_steps, keys, probs, policies, chunk)


@jit
def _sharded_flat(config, num_init, num_steps, chunk, mesh, keys, probs, policies):
    fn = jax.shard_map(
        lambda k, pr, po: _run_flat(config, num_init, num_steps, k, pr, po, chunk),
        mesh=mesh,
        in_specs=P("batch"),
        out_specs=P("batch"),
        check_vma=False,
    )
    return fn(keys, probs, policies)


def batch_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh named ``"batch"`` over the first ``num_devices`` devices (default: all)."""
    devs = jax.devices()
    n = len(devs) if num_devices is None else num_devices
    if not 1 <= n <= len(devs):
        raise ValueError(f"num_devices must be in [1, {len(devs)}], got {num_devices}")
    return Mesh(np.asarray(devs[:n]), ("batch",))
