r"""The training objective of every VAE family, with schedules as functions of the step.

For a batch of ``B`` samples (KLs averaged over the batch):

.. math::
    \mathcal L(t) = \overline{\text{recon}} + β_p(t)\,\overline{KL}_{\text{pose}}
        + β_c(t)\,\big|\overline{KL}_{\text{cont}} - C_z(t)\big|
        + β_d(t)\,\big|\overline{KL}_{\text{disc}} - C_α(t)\big|
        + α\,\tfrac1B Σ_{\text{labelled}} \text{supervised}

(Dupont's capacity-controlled joint objective); without capacities the two KL terms are
``β_c(t)·KL_cont + β_d(t)·KL_disc`` (β-VAE; all ``β = 1`` is the ELBO). ``KL_cont`` sums the
content and unlabelled regression latents, ``KL_pose`` the pose latents (the angle as its 2-D
Gaussian, shift, scale) — kept out of the capacities: the pose is not content, and a capacity
that must also pay for the angle either starves it or lets a categorical latent learn angle
sectors before the angle latent has learned the angle; ``KL_disc``
the categoricals (labelled samples of a semi-supervised classifier observe theirs). The
supervised term is the cross entropy ``−log q(y|x)`` (classification) or the Gaussian
``−log q(y|x)`` (regression) of labelled samples, Kingma et al.'s auxiliary loss.

Schedules are frozen dataclasses (hashable, so a :class:`~.model.Model` holding them stays a
static ``jit`` argument), called on the optimiser step (a traced integer).

Example:
    >>> obj = Objective(beta_cont=linear(10.0, 1.0, 500), cont_capacity=linear(0.0, 5.0, 2000))
    >>> value, metrics = loss(model, params, {"x": xb}, key, step)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .distributions import (
    bernoulli_nll,
    categorical_kl,
    gaussian_kl,
    gaussian_nll,
    gumbel_softmax,
)

METRICS = ("loss", "recon", "kl_cont", "kl_pose", "kl_disc", "supervised")


@dataclasses.dataclass(frozen=True)
class constant:  # noqa: N801 - a schedule reads like a function
    """``v`` at every step."""

    value: float

    def __call__(self, step):
        return jnp.asarray(self.value, jnp.float32)


@dataclasses.dataclass(frozen=True)
class linear:  # noqa: N801
    """``start`` until ``delay``, then linear to ``stop`` over ``steps`` steps, then ``stop``:
    ``start + (stop − start)·clip((t − delay)/steps, 0, 1)``."""

    start: float
    stop: float
    steps: int
    delay: int = 0

    def __call__(self, step):
        f = jnp.clip((step - self.delay) / max(self.steps, 1), 0.0, 1.0)
        return jnp.asarray(self.start + (self.stop - self.start) * f, jnp.float32)


@dataclasses.dataclass(frozen=True)
class Objective:
    """Weights and capacities of the objective (module docstring); ``None`` capacity = plain
    β-weighted KL."""

    beta_cont: object = constant(1.0)
    beta_disc: object = constant(1.0)
    beta_pose: object = constant(1.0)
    cont_capacity: object = None
    disc_capacity: object = None
    supervised_weight: float = 20.0
    disc_balance: float = 0.0


def _split(logits, sizes):
    out, pos = [], 0
    for k in sizes:
        out.append(logits[:, pos : pos + k])
        pos += k
    return out


def sample_latents(model, post: dict, key: jax.Array, batch: dict):
    """Reparameterised samples and per-sample KLs: ``(code, pose, kls, sup)`` with ``kls``
    the ``(kl_cont, kl_pose, kl_disc)`` arrays,
    with ``code`` the decoder code ``(B, code_dim)`` and ``pose`` the ``(angle, shift, scale)``
    keyword arguments of :meth:`~.model.Model.decode_raw`."""
    keys = jax.random.split(key, 6)
    B = post["z_loc"].shape[0]
    zero = jnp.zeros(B)
    z = post["z_loc"] + post["z_scale"] * jax.random.normal(keys[0], post["z_loc"].shape)
    kl_cont = gaussian_kl(post["z_loc"], post["z_scale"])
    kl_pose = zero
    pose = {}
    if "angle_mean" in post:
        m, s = post["angle_mean"], post["angle_sigma"]
        u = m + s[:, None] * jax.random.normal(keys[1], m.shape)
        pose["angle"] = jnp.arctan2(u[:, 1], u[:, 0]) / model.symmetry
        kl_pose = kl_pose + gaussian_kl(m, jnp.broadcast_to(s[:, None], m.shape))
    if "shift_loc" in post:
        loc, sc = post["shift_loc"], post["shift_scale"]
        pose["shift"] = model.shift_prior * (loc + sc * jax.random.normal(keys[2], loc.shape))
        kl_pose = kl_pose + gaussian_kl(loc, sc)
    if "scale_loc" in post:
        loc, sc = post["scale_loc"], post["scale_scale"]
        eps = jax.random.normal(keys[3], loc.shape)
        pose["scale"] = jnp.exp(model.scale_prior * (loc + sc * eps))
        kl_pose = kl_pose + gaussian_kl(loc[:, None], sc[:, None])
    parts, kl_disc, sup = [z], zero, zero
    label = batch.get("label")
    if model.discrete:
        ks = jax.random.split(keys[4], len(model.discrete))
        for i, lg in enumerate(_split(post["logits"], model.discrete)):
            sample = gumbel_softmax(ks[i], lg, model.temperature)
            kl = categorical_kl(lg)
            if i == 0 and model.supervised == "class":
                known = label >= 0
                onehot = jax.nn.one_hot(jnp.maximum(label, 0), lg.shape[-1])
                sample = jnp.where(known[:, None], onehot, sample)
                kl = jnp.where(known, 0.0, kl)
                ce = -jnp.sum(onehot * jax.nn.log_softmax(lg, -1), -1)
                sup = jnp.where(known, ce, 0.0)
            parts.append(sample)
            kl_disc = kl_disc + kl
    if model.regression_dim:
        loc, sc = post["y_loc"], post["y_scale"]
        y = loc + sc * jax.random.normal(keys[5], loc.shape)
        kl_y = gaussian_kl(loc, sc)
        if model.supervised == "regression":
            known = jnp.all(jnp.isfinite(label), axis=-1)
            lab = jnp.where(known[:, None], label, 0.0)  # no NaN may reach a gradient
            y = jnp.where(known[:, None], lab, y)
            kl_y = jnp.where(known, 0.0, kl_y)
            nll = jnp.sum(0.5 * ((lab - loc) / sc) ** 2 + jnp.log(sc) + 0.9189385, -1)
            sup = jnp.where(known, nll, 0.0)
        parts.append(y)
        kl_cont = kl_cont + kl_y
    if model.condition_dim:
        parts.append(batch["condition"])
    return jnp.concatenate(parts, axis=-1), pose, (kl_cont, kl_pose, kl_disc), sup


def reconstruction(model, raw: jax.Array, target: jax.Array) -> jax.Array:
    """Per-sample negative log-likelihood of ``target`` under the decoder output ``raw``."""
    B = raw.shape[0]
    r, t = jnp.reshape(raw, (B, -1)), jnp.reshape(target, (B, -1))
    if model.likelihood == "bernoulli":
        return bernoulli_nll(t, r)
    return gaussian_nll(t, r, model.noise_scale)


def loss(
    model, params: dict, batch: dict, key: jax.Array, step, *, subsample: bool = True
) -> tuple[jax.Array, dict]:
    """The objective of the module docstring on one batch, and its parts
    (:data:`METRICS`, batch means; ``supervised`` per labelled sample).

    With ``model.pixel_fraction = f < 1`` and a spatial decoder, training (``subsample``)
    decodes a random ``k = round(f·P)`` of the ``P`` pixels (the same for the whole batch, new
    each step) and scales their negative log-likelihood by ``P/k``: an unbiased estimate of the
    reconstruction term at ``f`` times the decoder's FLOPs (the decoder treats pixels
    independently). Evaluation (``subsample=False``) always decodes every pixel."""
    obj = model.objective
    key, kpix = jax.random.split(key)
    post = model.posterior(params, batch["x"], batch.get("condition"))
    code, pose, (kl_c, kl_p, kl_d), sup = sample_latents(model, post, key, batch)
    target = batch.get("target", batch["x"])
    P = int(np.prod(model.output_shape[:-1]))
    k = max(1, int(round(model.pixel_fraction * P)))
    if subsample and model.invariances and k < P:
        idx = jax.random.permutation(kpix, P)[:k]
        raw = model.decode_raw(params, code, **pose, pixels=idx)
        flat = jnp.reshape(target, (target.shape[0], P, -1))[:, idx]
        recon = jnp.mean(reconstruction(model, raw, flat)) * (P / k)
    else:
        raw = model.decode_raw(params, code, **pose)
        recon = jnp.mean(reconstruction(model, raw, target))
    KLc, KLp, KLd = jnp.mean(kl_c), jnp.mean(kl_p), jnp.mean(kl_d)
    tc = KLc if obj.cont_capacity is None else jnp.abs(KLc - obj.cont_capacity(step))
    td = KLd if obj.disc_capacity is None else jnp.abs(KLd - obj.disc_capacity(step))
    B = code.shape[0]
    balance = _balance(model, post) if obj.disc_balance else 0.0
    total = obj.disc_balance * balance + (
        recon
        + obj.beta_pose(step) * KLp
        + obj.beta_cont(step) * tc
        + obj.beta_disc(step) * td
        + obj.supervised_weight * jnp.sum(sup) / B
    )
    n_lab = _num_labelled(model, batch)
    metrics = {
        "loss": total,
        "recon": recon,
        "kl_cont": KLc,
        "kl_pose": KLp,
        "kl_disc": KLd,
        "supervised": jnp.sum(sup) / jnp.maximum(n_lab, 1.0),
    }
    return total, metrics


def _balance(model, post):
    """``Σ_j KL(q̄_j ‖ Uniform)`` of each categorical's batch-mean probabilities ``q̄_j``."""
    out = 0.0
    for lg in _split(post["logits"], model.discrete):
        qbar = jnp.mean(jax.nn.softmax(lg, -1), axis=0)
        out = out + jnp.sum(qbar * jnp.log(qbar + 1e-12)) + jnp.log(lg.shape[-1])
    return out


def _num_labelled(model, batch):
    label = batch.get("label")
    if label is None or model.supervised is None:
        return jnp.asarray(0.0)
    if model.supervised == "class":
        return jnp.sum(label >= 0).astype(jnp.float32)
    return jnp.sum(jnp.all(jnp.isfinite(label), axis=-1)).astype(jnp.float32)
