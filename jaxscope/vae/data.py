r"""Checked training data for a VAE: ``{"x", "label", "condition", "target"}`` as JAX arrays.

:func:`prepare` raises a clear error for a wrong shape, NaN or inf, values outside ``[0, 1]``
under the Bernoulli likelihood, a missing or unexpected companion array (labels, conditions,
targets), and reshapes samples to the model's stored shape (channel axis appended).

Labels of a semi-supervised model: classification ``(n,)`` ints in ``[0, K)``, ``-1`` for an
unlabelled sample (default: all unlabelled); regression ``(n,)`` or ``(n, r)`` floats, NaN for
unlabelled.

Example:
    >>> data = prepare(RVAE((28, 28)), patches)      # {"x": (n, 28, 28, 1)}
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def _samples(arr, shape, name, *, unit: bool) -> np.ndarray:
    a = np.asarray(arr, np.float32)
    size = int(np.prod(shape))
    if a.ndim < 2 or int(np.prod(a.shape[1:])) != size:
        raise ValueError(
            f"{name} must have shape (n, *{shape[:-1] if shape[-1] == 1 else shape}) "
            f"(one sample per row); got {a.shape}"
        )
    trail = tuple(a.shape[1:])
    if trail not in (tuple(shape), tuple(shape[:-1])):
        raise ValueError(f"{name} samples have shape {trail}; the model expects {shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds NaN or inf")
    if unit and (a.min() < 0 or a.max() > 1):
        raise ValueError(
            f"{name} values lie in [{a.min():.3g}, {a.max():.3g}]; the Bernoulli likelihood "
            "needs [0, 1] (rescale, or use likelihood='gaussian')"
        )
    return a.reshape(a.shape[0], *shape)


def prepare(model, x, *, labels=None, condition=None, targets=None) -> dict:
    """Validate and collect one data set for ``model`` (see the module docstring)."""
    unit = model.likelihood == "bernoulli"
    xs = _samples(x, model.shape, "x", unit=unit and model.out_shape is None)
    n = xs.shape[0]
    out = {"x": jnp.asarray(xs)}
    if model.out_shape is not None:
        if targets is None:
            raise ValueError(f"a {model.family} needs targets (n, *out_shape)")
        t = _samples(targets, model.out_shape, "targets", unit=unit)
        if t.shape[0] != n:
            raise ValueError(f"targets hold {t.shape[0]} samples, x holds {n}")
        out["target"] = jnp.asarray(t)
    elif targets is not None:
        raise ValueError(f"a {model.family} takes no targets (only a VED does)")
    if model.condition_dim:
        if condition is None:
            raise ValueError(f"this model needs condition (n, {model.condition_dim})")
        c = np.asarray(condition, np.float32)
        if c.shape != (n, model.condition_dim):
            raise ValueError(f"condition must have shape {(n, model.condition_dim)}; got {c.shape}")
        if not np.all(np.isfinite(c)):
            raise ValueError("condition holds NaN or inf")
        out["condition"] = jnp.asarray(c)
    elif condition is not None:
        raise ValueError("this model takes no condition (use CVAE)")
    if model.supervised == "class":
        K = model.discrete[0]
        lab = np.full(n, -1) if labels is None else np.asarray(labels)
        if lab.shape != (n,) or not np.issubdtype(lab.dtype, np.integer):
            raise ValueError(
                f"class labels must be ints of shape ({n},); got {lab.dtype}{lab.shape}"
            )
        if lab.min(initial=0) < -1 or lab.max(initial=0) >= K:
            raise ValueError(f"class labels must lie in [0, {K}) or be -1 (unlabelled)")
        out["label"] = jnp.asarray(lab, jnp.int32)
    elif model.supervised == "regression":
        r = model.regression_dim
        lab = np.full((n, r), np.nan) if labels is None else np.asarray(labels, np.float32)
        lab = lab.reshape(n, -1) if lab.ndim == 1 and r == 1 else lab
        if lab.shape != (n, r):
            raise ValueError(f"regression labels must have shape ({n}, {r}); got {lab.shape}")
        if np.any(np.isinf(lab)):
            raise ValueError("regression labels hold inf (NaN marks unlabelled)")
        out["label"] = jnp.asarray(lab, jnp.float32)
    elif labels is not None:
        raise ValueError("this model takes no labels (use SSVAE)")
    return out
