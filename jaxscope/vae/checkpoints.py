r"""Orbax checkpoints of VAE training runs (weights, Adam state, step, epoch, key, history).

One checkpoint per epoch, numbered by the epoch, through
:class:`jaxscope.host.checkpoint.StateCheckpointer` (atomic, bit-identical arrays). Restoring
needs the model (its fresh weights and optimiser state give the structure to fill); the loss
history travels in the JSON metadata.

Example:
    >>> res = train(model, x, epochs=2, key=key, checkpoint_dir="run/ckpt")
    >>> res = train(model, x, epochs=1, resume=load_checkpoint("run/ckpt", model))
"""

from __future__ import annotations

import jax
import numpy as np

from ..host.checkpoint import StateCheckpointer
from .results import TrainResult, adam


def save_checkpoint(directory, result: TrainResult, *, max_to_keep: int | None = 2) -> None:
    """Write ``result`` as checkpoint number ``result.epoch`` in ``directory``."""
    key = result.key
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):  # a raw uint32 key
        key = jax.random.wrap_key_data(key)  # same bits: the same random streams on resume
    state = (result.params, result.opt_state, key)
    meta = {
        "step": int(result.step),
        "epoch": int(result.epoch),
        "history": {k: np.asarray(v).tolist() for k, v in result.history.items()},
    }
    with StateCheckpointer(directory, max_to_keep=max_to_keep) as ck:
        ck.save(int(result.epoch), state, meta=meta)


def load_checkpoint(
    directory, model, *, epoch: int | None = None, lr: float = 1e-3, optimizer=None
) -> TrainResult:
    """The :class:`~jaxscope.vae.results.TrainResult` saved in ``directory`` (the latest epoch
    unless ``epoch``); ``lr`` / ``optimizer`` must be those of the run (they shape the optimiser
    state)."""
    params = model.init(jax.random.key(0))
    opt = optimizer if optimizer is not None else adam(float(lr))
    template = (params, opt.init(params), jax.random.key(0))
    with StateCheckpointer(directory, max_to_keep=None) as ck:
        _, (params, opt_state, key), meta = ck.restore(template, step=epoch)
    hist = {k: np.asarray(v, np.float64) for k, v in meta["history"].items()}
    return TrainResult(params, opt_state, int(meta["step"]), int(meta["epoch"]), key, hist)
