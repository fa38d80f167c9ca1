"""Hyperparameter inference: MAP with optax, fully Bayesian with NUTS.

Both are pure functions of ``(model, obs, key/init)`` and compile once per buffer capacity: new data
of the same capacity reuses the compiled program (the data are traced arguments).

* :func:`fit_map` — type-II maximum likelihood with hyperpriors (MAP), L-BFGS inside one
  ``lax.while_loop`` or Adam inside one ``lax.scan``; warm start from previous parameters.
* :func:`fit_nuts` — NUTS through numpyro's functional ``hmc`` API with a potential-function
  generator taking the data, several chains by ``vmap``; r-hat and ESS in :func:`nuts_summary`.

Example:
    >>> model = GPModel.default(X, y, "matern52")
    >>> params, info = fit_map(model, obs)
    >>> result = fit_nuts(model, obs, jax.random.key(0), num_chains=2)
    >>> mean, var = predict_nuts(model, result, obs, Xnew)
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
from jaxtyping import Array, PRNGKeyArray
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer.hmc import hmc

from ..runtime.jit import jit
from .model import ModelFamily, Params, stack_params
from .observations import Observations
from .predictive import predict_mixture


class MAPInfo(NamedTuple):
    """Diagnostics of a MAP fit: final negative log posterior, iterations, gradient norm."""

    loss: Array
    num_steps: Array
    grad_norm: Array


def _neg_log_post(u, model: ModelFamily, obs: Observations):
    return -model.log_posterior(model.constrain(u), obs)


@jit
def _map_lbfgs(model, obs, u0, max_steps, tol):
    fun = partial(_neg_log_post, model=model, obs=obs)
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(fun)
    dtype = jax.tree_util.tree_leaves(u0)[0].dtype
    # relative-decrease test (as scipy's L-BFGS-B ``ftol``): stop once a step no longer lowers the
    # loss beyond rounding, so float32 runs stop at float32 precision instead of at max_steps
    ftol = 10 * jnp.finfo(dtype).eps

    def step(carry):
        u, state, _ = carry
        value, grad = value_and_grad(u, state=state)
        updates, state = opt.update(grad, state, u, value=value, grad=grad, value_fn=fun)
        return optax.apply_updates(u, updates), state, value

    def cont(carry):
        _, state, prev = carry
        k = otu.tree_get(state, "count")
        g = otu.tree_get(state, "grad")
        value = otu.tree_get(state, "value")
        scale = jnp.maximum(jnp.maximum(jnp.abs(prev), jnp.abs(value)), 1.0)
        decreasing = (k < 2) | (prev - value > ftol * scale)
        return (k == 0) | ((k < max_steps) & (otu.tree_norm(g) >= tol) & decreasing)

    init = (u0, opt.init(u0), jnp.asarray(jnp.inf, dtype))
    u, state, _ = jax.lax.while_loop(cont, step, init)
    loss, grad = jax.value_and_grad(fun)(u)
    return u, MAPInfo(loss, otu.tree_get(state, "count"), otu.tree_norm(grad))


@jit
def _map_adam(model, obs, u0, num_steps: int, learning_rate):
    fun = partial(_neg_log_post, model=model, obs=obs)
    opt = optax.adam(learning_rate)

    def step(carry, _):
        u, state = carry
        loss, grad = jax.value_and_grad(fun)(u)
        updates, state = opt.update(grad, state, u)
        return (optax.apply_updates(u, updates), state), loss

    (u, _), _ = jax.lax.scan(step, (u0, opt.init(u0)), length=num_steps)
    loss, grad = jax.value_and_grad(fun)(u)
    return u, MAPInfo(loss, jnp.asarray(num_steps, jnp.int32), otu.tree_norm(grad))


def fit_map(
    model: ModelFamily,
    obs: Observations,
    init: Params | None = None,
    *,
    optimizer: str = "lbfgs",
    num_steps: int = 200,
    learning_rate: float = 0.05,
    tol: float = 1e-4,
) -> tuple[Params, MAPInfo]:
    """Maximum a posteriori hyperparameters ``argmax log p(y|θ) + log p(θ)``.

    Args:
        model: the GP family (priors act as regularisers).
        obs: observation buffer.
        init: warm start (constrained values, e.g. the previous step's result); defaults to the
            prior medians.
        optimizer: ``"lbfgs"`` (whole run in one ``lax.while_loop``) or ``"adam"`` (one
            ``lax.scan`` of ``num_steps``).
        num_steps: maximum iterations (L-BFGS) or exact steps (Adam).
        tol: L-BFGS stops when the gradient norm (unconstrained space) falls below ``tol``, or
            when a step lowers the loss by less than ``10·eps`` relative (float32 precision).

    Returns:
        ``(params, info)``: constrained hyperparameters and a :class:`MAPInfo`.
    """
    init = model.init_params(obs.X.dtype) if init is None else init
    init = {k: jnp.asarray(v, obs.X.dtype) for k, v in init.items()}
    u0 = model.unconstrain(init)
    if optimizer == "lbfgs":
        # arrays, not Python numbers: other step limits and tolerances reuse the compiled loop
        max_steps = jnp.asarray(num_steps, jnp.int32)
        u, info = _map_lbfgs(model, obs, u0, max_steps, jnp.asarray(tol, obs.X.dtype))
    elif optimizer == "adam":
        u, info = _map_adam(model, obs, u0, num_steps, learning_rate)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; use 'lbfgs' or 'adam'")
    return model.constrain(u), info


class NUTSResult(NamedTuple):
    """Samples (constrained, leading axes ``(chain, draw)``) and per-draw sampler statistics
    (``log_density``: the sampler's target, log posterior density on unconstrained space)."""

    samples: Params
    accept_prob: Array
    diverging: Array
    num_steps: Array
    log_density: Array | None = None


def _potential_gen(model: ModelFamily):
    def gen(obs):
        return lambda u: -model.log_density_unconstrained(u, obs)

    return gen


@jit
def _nuts_run(
    model,
    obs,
    key,
    num_warmup: int,
    num_samples: int,
    num_chains: int,
    target_accept: float,
    max_tree_depth: int,
    dense_mass: bool,
    init,
):
    init_kernel, sample_kernel = hmc(potential_fn_gen=_potential_gen(model), algo="NUTS")
    dtype = obs.X.dtype
    init = model.init_params(dtype) if init is None else init
    u0 = model.unconstrain({k: jnp.asarray(v, dtype) for k, v in init.items()})

    def one_chain(key):
        k_init, k_jit, k_run = jax.random.split(key, 3)
        # jitter the start a little so chains are dispersed
        leaves, tree = jax.tree_util.tree_flatten(u0)
        ks = jax.random.split(k_jit, len(leaves))
        noisy = [
            x + 0.1 * jax.random.normal(k, x.shape, x.dtype)
            for x, k in zip(leaves, ks, strict=True)
        ]
        start = jax.tree_util.tree_unflatten(tree, noisy)
        state = init_kernel(
            start,
            num_warmup,
            target_accept_prob=target_accept,
            max_tree_depth=max_tree_depth,
            dense_mass=dense_mass,
            model_args=(obs,),
            rng_key=k_init,
        )

        def body(state, _):
            state = sample_kernel(state, model_args=(obs,))
            return state, (
                state.z, state.accept_prob, state.diverging, state.num_steps,
                -state.potential_energy,
            )  # fmt: skip

        # One scan over warm-up and sampling (the kernel adapts while state.i < num_warmup):
        # the NUTS body is traced and compiled once, not twice; warm-up draws are dropped.
        _, out = jax.lax.scan(body, state, length=num_warmup + num_samples)
        z, acc, div, nsteps, logp = jax.tree_util.tree_map(lambda a: a[num_warmup:], out)
        return jax.vmap(model.constrain)(z), acc, div, nsteps, logp

    keys = jax.random.split(key, num_chains)
    if num_chains == 1:  # no vmap over a single chain: cheaper to trace, compile and run
        out = jax.tree_util.tree_map(lambda a: a[None], one_chain(keys[0]))
    else:
        out = jax.vmap(one_chain)(keys)
    samples, acc, div, nsteps, logp = out
    return NUTSResult(samples, acc, div, nsteps, logp)


def fit_nuts(
    model: ModelFamily,
    obs: Observations,
    key: PRNGKeyArray,
    *,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 1,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool = True,
    init: Params | None = None,
) -> NUTSResult:
    """Posterior samples of the hyperparameters by NUTS (numpyro's functional HMC).

    Compiles once per (model, capacity, sizes); new data in a buffer of the same capacity reuse
    the compiled program. Chains run in parallel under ``vmap``. Everything, including the
    starting point, happens inside that one compiled program, so a first fit in a new process
    compiles exactly one program.

    Args:
        dense_mass: adapt a dense inverse mass matrix during warm-up (the default; GP
            hyperparameters such as signal variance and lengthscale are correlated, and with a
            handful of parameters the dense matrix costs nothing and shortens the trajectories);
            ``False`` adapts a diagonal one, as numpyro does by default.
        init: starting point (constrained values); defaults to the prior medians.
    """
    if num_warmup < 1 or num_samples < 1 or num_chains < 1:
        raise ValueError("num_warmup, num_samples and num_chains must be positive")
    if init is not None:
        unknown, missing = set(init) - set(model.names), set(model.names) - set(init)
        if unknown or missing:
            raise ValueError(
                f"init must give every model parameter {list(model.names)}: "
                f"unknown {sorted(unknown)}, missing {sorted(missing)}"
            )
        # arrays, not Python numbers: other starting values reuse the compiled program
        init = {k: v if isinstance(v, jax.Array) else np.asarray(v) for k, v in init.items()}
    return _nuts_run(
        model,
        obs,
        key,
        num_warmup,
        num_samples,
        num_chains,
        target_accept,
        max_tree_depth,
        bool(dense_mass),
        init,
    )


def nuts_summary(result: NUTSResult) -> dict[str, dict[str, Any]]:
    """Per-parameter mean, sd, split r-hat and effective sample size (host side, NumPy).

    Each statistic has the shape of its parameter (a float for a scalar parameter); r-hat needs
    at least 4 draws per chain (else ``None``).
    """
    out = {}
    for k, v in result.samples.items():
        a = np.asarray(v, np.float64)  # (chains, draws, ...)
        a2 = a.reshape(a.shape[:2] + (-1,))
        out[k] = {
            "mean": a.mean((0, 1)).tolist(),
            "sd": a.std((0, 1)).tolist(),
            # same shape as the parameter (a float for a scalar), like "mean" and "sd"
            "r_hat": (
                np.reshape(split_gelman_rubin(a2), a.shape[2:]).tolist()
                if a.shape[1] >= 4
                else None
            ),
            "ess": np.reshape(effective_sample_size(a2), a.shape[2:]).tolist(),
        }
    out["_sampler"] = {
        "divergences": int(np.asarray(result.diverging).sum()),
        "mean_accept_prob": float(np.asarray(result.accept_prob).mean()),
    }
    return out


def predict_nuts(
    model: ModelFamily,
    result: NUTSResult | Params,
    obs: Observations,
    Xnew,
    *,
    chunk_size: int | None = None,
    include_noise: bool = False,
):
    """Predictive mean and variance marginalised over all posterior samples (all chains)."""
    chains = isinstance(result, NUTSResult)
    samples = result.samples if chains else result
    return _predict_nuts(model, samples, chains, obs, Xnew, chunk_size, include_noise)


@jit
def _predict_nuts(model, samples, chains: bool, obs, Xnew, chunk_size, include_noise):
    flat = stack_params(samples) if chains else samples  # inside jit: no eager reshapes
    return predict_mixture(
        model.build, flat, obs, Xnew, chunk_size=chunk_size, include_noise=include_noise
    )
