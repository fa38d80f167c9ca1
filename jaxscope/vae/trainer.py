r"""Training and evaluation of the VAE families: one jitted epoch per model, Adam (optax).

An epoch is one compiled program: a permutation of the samples drawn in JAX from
``fold_in(key, epoch)``, then one ``lax.scan`` over the ``n // batch_size`` batches (the last
partial batch is dropped, as a ``drop_last`` loader would), each a gradient step of
:func:`~jaxscope.vae.objectives.loss` at the optimiser step ``t`` that the schedules read. The
epoch program is jitted with the model, optimiser and batch size static, so every epoch of a run
— and of a resumed run with the same model, data size and optimiser — reuses one compilation.

:func:`evaluate` computes the same terms without gradients and never touches the weights;
:func:`train` with ``resume=`` continues a :class:`TrainResult` (or one restored by
:func:`~jaxscope.vae.checkpoints.load_checkpoint`) exactly: ``train(2 epochs)`` then
``resume (1 epoch)`` gives the weights of ``train(3 epochs)``.

History: ``res.history[name]`` is a float array with one epoch mean per epoch for every name in
:data:`~jaxscope.vae.objectives.METRICS` (``loss``, ``recon``, ``kl_cont``, ``kl_pose``,
``kl_disc``, ``supervised``).

Example:
    >>> res = train(model, x, epochs=3, batch_size=100, key=jax.random.key(0))
    >>> res = train(model, x, epochs=1, resume=res)          # epoch 4
    >>> evaluate(model, res.params, x, key=jax.random.key(1))["loss"]
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .checkpoints import save_checkpoint
from .data import prepare
from .objectives import METRICS, loss
from .results import TrainResult, adam


@functools.partial(jax.jit, static_argnames=("model", "optimizer", "batch_size"))
def run_epoch(model, optimizer, batch_size: int, params, opt_state, step, data, key):
    """One epoch: shuffle, then a ``lax.scan`` of gradient steps. Returns the new
    ``(params, opt_state, step)`` and each step's metrics (``(num_batches,)`` arrays)."""
    n = data["x"].shape[0]
    nb = n // batch_size
    kperm, ksteps = jax.random.split(key)
    order = jax.random.permutation(kperm, n)[: nb * batch_size].reshape(nb, batch_size)
    grad = jax.value_and_grad(functools.partial(loss, model), has_aux=True)

    def body(carry, inp):
        p, s, t = carry
        idx, k = inp
        batch = jax.tree.map(lambda a: a[idx], data)
        (_, metrics), g = grad(p, batch, k, t)
        updates, s = optimizer.update(g, s, p)
        return (optax.apply_updates(p, updates), s, t + 1), metrics

    (params, opt_state, step), metrics = jax.lax.scan(
        body, (params, opt_state, step), (order, jax.random.split(ksteps, nb))
    )
    return params, opt_state, step, metrics


def train(
    model,
    x,
    *,
    epochs: int,
    batch_size: int = 100,
    key: jax.Array | None = None,
    lr: float = 1e-3,
    optimizer: optax.GradientTransformation | None = None,
    labels=None,
    condition=None,
    targets=None,
    resume: TrainResult | None = None,
    checkpoint_dir=None,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` on ``x`` for ``epochs`` more epochs.

    Args:
        model: a :class:`~jaxscope.vae.model.Model` (``VAE(...)``, ``RVAE(...)``, ...).
        x: ``(n, *shape)`` samples (``[0, 1]`` for the Bernoulli likelihood).
        epochs: epochs to run (on top of ``resume``'s).
        batch_size: samples per step; ``n // batch_size`` steps per epoch.
        key: the run's base key (initial weights and every epoch's shuffle / noise); taken
            from ``resume`` when resuming.
        lr, optimizer: Adam's rate, or any optax transformation (pass the same object again
            when resuming so the compiled epoch is reused).
        labels, condition, targets: semi-supervised labels, CVAE conditions, VED outputs
            (see :func:`~jaxscope.vae.data.prepare`).
        resume: a previous result to continue (weights, optimiser state, step, history).
        checkpoint_dir: if given, an orbax checkpoint is written after every epoch.
        progress: show a tqdm bar over epochs with the running loss.

    Returns:
        :class:`TrainResult`.
    """
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int; got {epochs!r}")
    data = prepare(model, x, labels=labels, condition=condition, targets=targets)
    n = data["x"].shape[0]
    if not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be an int in [1, {n}]; got {batch_size!r}")
    opt = optimizer if optimizer is not None else adam(float(lr))
    if resume is None:
        if key is None:
            raise ValueError("train needs a key (or resume=)")
        params = model.init(jax.random.fold_in(key, 2**31 - 1))
        # the angle anchor's ring weights from (up to 2000 of) the data: deterministic
        params = model.fit_rings(params, data["x"][:2000])
        res = TrainResult(params, opt.init(params), 0, 0, key, {m: np.zeros(0) for m in METRICS})
    else:
        res = resume
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc=f"{model.family} epochs", leave=False)
    params, opt_state, step = res.params, res.opt_state, jnp.asarray(res.step, jnp.int32)
    history = {m: list(np.asarray(res.history.get(m, ()))) for m in METRICS}
    try:
        for e in range(res.epoch, res.epoch + epochs):
            ekey = jax.random.fold_in(res.key, e)
            params, opt_state, step, metrics = run_epoch(
                model, opt, batch_size, params, opt_state, step, data, ekey
            )
            for m in METRICS:
                history[m].append(float(jnp.mean(metrics[m])))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{history['loss'][-1]:.4g}")
            if checkpoint_dir is not None:
                save_checkpoint(checkpoint_dir, _result(params, opt_state, step, e + 1, res,
                                                        history))  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    return _result(params, opt_state, step, res.epoch + epochs, res, history)


def _result(params, opt_state, step, epoch, res, history):
    hist = {m: np.asarray(v, np.float64) for m, v in history.items()}
    return TrainResult(params, opt_state, int(step), int(epoch), res.key, hist)


@functools.partial(jax.jit, static_argnames=("model",))
def _eval_chunk(model, params, chunk, key, step):
    _, metrics = loss(model, params, chunk, key, step, subsample=False)
    return metrics


def evaluate(
    model, params, x, *, key: jax.Array, batch_size: int = 1000, labels=None, condition=None,
    targets=None, step: int = 0,
) -> dict[str, float]:  # fmt: skip
    """The objective's terms (:data:`~jaxscope.vae.objectives.METRICS`) averaged over all of
    ``x``, with the schedules at ``step`` and one posterior sample per item drawn from ``key``;
    no gradient, the weights are not changed. Chunks of ``batch_size`` (at most two
    compilations: full chunks and the remainder), averaged with chunk sizes as weights."""
    data = prepare(model, x, labels=labels, condition=condition, targets=targets)
    n = data["x"].shape[0]
    batch_size = max(1, min(int(batch_size), n))
    t = jnp.asarray(step, jnp.int32)
    totals = {m: 0.0 for m in METRICS}
    for i, start in enumerate(range(0, n, batch_size)):
        chunk = jax.tree.map(lambda a, s=start: a[s : s + batch_size], data)
        out = _eval_chunk(model, params, chunk, jax.random.fold_in(key, i), t)
        for k in METRICS:
            totals[k] += float(out[k]) * chunk["x"].shape[0]
    return {k: v / n for k, v in totals.items()}
