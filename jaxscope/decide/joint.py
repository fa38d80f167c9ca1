r"""Joint batch acquisition by Monte Carlo: qEI and qUCB over common joint posterior draws.

.. math:: \mathrm{qEI}(B) = \mathbb E\big[(\max_{j\in B} f_j - f^*)_+\big], \qquad
          \mathrm{qUCB}(B) = \mathbb E\big[\max_{j\in B} \mu_j +
          \sqrt{\beta\pi/2}\,|f_j - \mu_j|\big]

(qUCB as in Wilson et al. 2017; for ``q = 1`` both reduce to EI and UCB). The batch is built
greedily over a subset of the best candidates (by a marginal score) with the same draws for
every candidate batch (common random numbers). :func:`joint_greedy` is the greedy step that the
campaign's ``JointMC`` selector and the standalone :func:`select_joint` share.

Example:
    >>> idx, vals = select_joint(post, Xc, 4, key=key, kind="qei", best=incumbent(obs))
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from ..gp import Posterior, from_posterior, posterior_draws
from ..kernels import as_points
from ..runtime.jit import jit
from .acquisition import log_expected_improvement, upper_confidence_bound
from .units import sign_of, to_utility


def q_expected_improvement(
    draws: Float[Array, "n q"], best: ArrayLike, *, maximize: bool = True
) -> Float[Array, ""]:
    """Monte Carlo qEI of a batch from joint draws ``(n, q)`` of ``f`` at its points."""
    f = sign_of(maximize) * draws
    b = jnp.asarray(best, draws.dtype) * sign_of(maximize)
    return jnp.mean(jnp.maximum(jnp.max(f, axis=1) - b, 0.0))


def q_upper_confidence_bound(
    draws: Float[Array, "n q"],
    mean: Float[Array, " q"],
    *,
    beta: ArrayLike = 4.0,
    maximize: bool = True,
) -> Float[Array, ""]:
    r"""Monte Carlo qUCB: :math:`\mathbb E[\max_j \pm\mu_j + \sqrt{\beta\pi/2}\,|f_j - \mu_j|]`."""
    sign = sign_of(maximize)
    g = sign * mean[None, :] + jnp.sqrt(beta * math.pi / 2.0) * jnp.abs(draws - mean[None, :])
    return jnp.mean(jnp.max(g, axis=1))


def select_joint(
    post: Posterior,
    Xc: Float[Array, "m d"],
    q: int,
    *,
    key: PRNGKeyArray,
    kind: str = "qei",
    best: ArrayLike | None = None,
    maximize: bool = True,
    beta: ArrayLike = 4.0,
    num_draws: int = 512,
    subset: int = 64,
    scores: Float[Array, " m"] | None = None,
    mask: Bool[Array, " m"] | None = None,
    method: str = "exact",
    chunk_size: int | None = None,
) -> tuple[Int[Array, " q"], Float[Array, " q"]]:
    """Greedy joint qEI / qUCB over the ``subset`` best candidates (Monte Carlo, fixed draws).

    Args:
        post: a posterior, or a batch of them (hyperparameter samples): the draws then follow the
            mixture (:func:`~jaxscope.gp.posterior_draws`).
        Xc: ``(m, d)`` candidates.
        kind: ``"qei"`` (needs ``best``) or ``"qucb"``.
        num_draws: joint draws over the subset (the same draws score every candidate batch).
        subset: how many candidates, ranked by ``scores`` (default: marginal logEI for qEI, UCB
            for qUCB), enter the joint problem; ``subset ≥ q``.
        mask: allowed candidates.

    Returns:
        ``(indices, values)``: chosen candidate indices and the joint value of the batch after
        each addition (non-decreasing; ``values[-1]`` is the MC estimate for the whole batch).
    """
    if kind not in ("qei", "qucb"):
        raise ValueError(f"unknown joint rule {kind!r}; use 'qei' or 'qucb'")
    if kind == "qei" and best is None:
        raise ValueError("qei needs `best` (the incumbent)")
    Xc = as_points(Xc, "Xc")
    m = Xc.shape[0]
    subset = min(subset, m)
    if not q <= subset:
        raise ValueError(f"q = {q} must not exceed subset = {subset}")
    best = None if best is None else jnp.asarray(best, Xc.dtype)
    beta = jnp.asarray(beta, Xc.dtype)
    return _select_joint(
        post,
        Xc,
        q,
        key,
        kind,
        best,
        maximize,
        beta,
        num_draws,
        subset,
        scores,
        mask,
        method,
        chunk_size,
    )


def joint_greedy(
    g: Float[Array, "n k"],
    top: Int[Array, " k"],
    avail: Bool[Array, " k"],
    q: int,
    *,
    floor: ArrayLike | None,
) -> tuple[Int[Array, " q"], Float[Array, " q"]]:
    """Greedy batch maximising ``E[max_j g_j]`` (``floor`` given: ``E[(max_j g_j - floor)_+]``).

    ``g`` holds, for ``n`` common draws, the per-candidate value of the ``k`` subset candidates
    ``top`` (utility draws for qEI, the qUCB transform for qUCB); ``avail`` marks allowed ones.
    Returns the chosen candidates and the joint value after each addition (non-decreasing).
    """

    def body(carry, _):
        cur, avail = carry
        run = jnp.maximum(cur[:, None], g)  # (n, k)
        if floor is not None:
            value = jnp.mean(jnp.maximum(run - floor, 0.0), axis=0)
        else:
            value = jnp.mean(run, axis=0)
        value = jnp.where(avail, value, -jnp.inf)
        j = jnp.argmax(value)
        return (run[:, j], avail.at[j].set(False)), (top[j], value[j])

    cur0 = jnp.full((g.shape[0],), -jnp.inf, g.dtype)
    _, (idx, vals) = jax.lax.scan(body, (cur0, avail), length=q)
    return idx.astype(jnp.int32), vals


def joint_values(kind: str, draws_u, mean_u, best_u, beta):
    r"""``(g, floor)`` of :func:`joint_greedy` for ``"qei"`` (utility draws, incumbent) or
    ``"qucb"`` (:math:`\mu_j + \sqrt{\beta\pi/2}\,|f_j - \mu_j|`, no floor)."""
    if kind == "qei":
        return draws_u, jnp.asarray(best_u, draws_u.dtype)
    g = mean_u[None, :] + jnp.sqrt(beta * math.pi / 2.0) * jnp.abs(draws_u - mean_u[None, :])
    return g, None


@jit
def _select_joint(
    post, Xc, q, key, kind, best, maximize, beta, num_draws, subset, scores, mask, method,
    chunk_size,
):  # fmt: skip
    sign = sign_of(maximize)
    pred_u = to_utility(from_posterior(post, Xc, chunk_size=chunk_size), sign)
    best_u = None if best is None else sign * best
    if scores is None:
        if kind == "qei":
            scores = log_expected_improvement(pred_u, best=best_u)
        else:
            scores = upper_confidence_bound(pred_u, beta=beta)
    if mask is not None:
        scores = jnp.where(mask, scores, -jnp.inf)
    top_vals, top = jax.lax.top_k(scores, subset)
    f_u = sign * posterior_draws(post, key, Xc[top], num_draws, method=method)  # (n, subset)
    g, floor = joint_values(kind, f_u, jnp.mean(pred_u.mean[:, top], axis=0), best_u, beta)
    return joint_greedy(g, top, top_vals > -jnp.inf, q, floor=floor)
