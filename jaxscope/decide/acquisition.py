r"""Acquisition rules: pure functions of a :class:`~jaxscope.gp.Predictive`.

Every rule has the signature ``fn(pred, *, best=None, key=None, maximize=True, **kw) -> (m,)``
and returns one score per candidate, **higher = better** (argmax picks the next point). With
``maximize=False`` (a minimisation problem) the rule is applied to ``-f``. Any user callable with
the same signature can be used wherever a rule name is accepted (see :func:`get`).

Marginalisation over the ``s`` hyperparameter samples of ``pred`` is exact, never Monte Carlo:

=============== ============================================================================
rule            marginalisation over samples
=============== ============================================================================
``ei``, ``pi``  average of the per-sample closed forms (the expectation under the mixture)
``logei``,      ``log`` of that average, by a log-mean-exp of the per-sample log values
``logpi``
``ucb``,        closed form on the mixture's mean and variance (law of total variance)
``maxvar``,
``weighted``,
``mean``
``thompson``    argmax of one joint draw from the mixture (``pred.draws``)
``kg``          average of the per-sample knowledge gradients (:mod:`jaxscope.decide.lookahead`)
=============== ============================================================================

Expected improvement is written with :math:`z = (\mu - f^* - \xi)/\sigma` as
:math:`\mathrm{EI} = \sigma\, h(z)`, :math:`h(z) = \varphi(z) + z\,\Phi(z)`. The textbook formula
underflows to 0 (and its log to ``-inf``/NaN) for :math:`z \lesssim -13` in float32; ``logei``
(the default rule) evaluates :math:`\log h` stably everywhere:

* :math:`z > -1`: :math:`\log(\varphi(z) + z\Phi(z))` directly;
* :math:`-5 < z \le -1`: :math:`\log\varphi(z) + \log\big(1 - r\big)` with
  :math:`r = |z|\,\Phi(z)/\varphi(z) = |z|\sqrt{\pi/2}\,\mathrm{erfcx}(-z/\sqrt2)` and
  ``log1mexp`` (the idea of BoTorch's LogEI, Ament et al. 2023);
* :math:`z \le -5`: :math:`1 - r = c/(|z| + c)` with the Laplace continued fraction
  :math:`c = 1/(|z| + 2/(|z| + 3/(|z| + \dots)))` (20 terms, relative error < 1e-13), which has
  no cancellation at all, so the value is accurate as far out as :math:`z^2` is representable.

Example:
    >>> pred = from_posterior(gp.condition(obs), Xc)
    >>> scores = get("logei")(pred, best=incumbent(obs))
    >>> i = jnp.argmax(scores)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
from jax.scipy.special import erfcx, log_ndtr, logsumexp, ndtr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..gp.predictive import (
    Predictive,
    from_cache,
    from_model,
    from_moments,
    from_posterior,
    from_samples,
    incumbent,
    posterior_draws,
)
from .lookahead import knowledge_gradient

__all__ = [
    "Predictive",
    "from_moments",
    "from_posterior",
    "from_cache",
    "from_model",
    "from_samples",
    "posterior_draws",
    "incumbent",
    "log_h",
    "log1mexp",
    "expected_improvement",
    "log_expected_improvement",
    "probability_of_improvement",
    "log_probability_of_improvement",
    "upper_confidence_bound",
    "max_variance",
    "posterior_mean",
    "weighted",
    "thompson",
    "knowledge_gradient",
    "get",
    "names",
    "DEFAULT",
]

DEFAULT = "ei"  # chosen by benchmarks/quality.py --choose (default_campaign_choice)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_SQRT_PI_2 = 0.5 * math.log(math.pi / 2.0)
_CF_TERMS = 20


# --- numerics ---------------------------------------------------------------------------------
@jax.jit
def log1mexp(x: Float[Array, "*b"]) -> Float[Array, "*b"]:
    """``log(1 - exp(x))`` for ``x < 0``, accurate near 0 and for very negative ``x``."""
    x = jnp.minimum(x, -jnp.finfo(x.dtype).tiny)
    near = x > -math.log(2.0)
    return jnp.where(
        near,
        jnp.log(-jnp.expm1(jnp.where(near, x, -1.0))),
        jnp.log1p(-jnp.exp(jnp.where(near, -1.0, x))),
    )


def _log_phi(z):
    return -0.5 * z * z - _LOG_SQRT_2PI


@jax.jit
def log_h(z: Float[Array, "*b"]) -> Float[Array, "*b"]:
    r"""``log(φ(z) + z Φ(z))``, finite and accurate for every representable ``z`` (see module)."""
    x = -z
    # each branch sees only arguments in its own range (double-where), so none yields NaN values
    # or NaN gradients, and the selected branch gets the full gradient at the break points
    z1 = jnp.where(z > -1.0, z, 0.0)
    b1 = jnp.log(jnp.exp(_log_phi(z1)) + z1 * ndtr(z1))
    mid = (x >= 1.0) & (x < 5.0)
    x2 = jnp.where(mid, x, 2.0)
    log_r = jnp.log(x2 * erfcx(x2 * (1.0 / math.sqrt(2.0)))) + _LOG_SQRT_PI_2
    b2 = _log_phi(x2) + log1mexp(log_r)
    x3 = jnp.where(x >= 5.0, x, 5.0)
    t = jnp.zeros_like(x3)
    for k in range(_CF_TERMS, 1, -1):
        t = k / (x3 + t)
    c = 1.0 / (x3 + t)
    b3 = _log_phi(x3) + jnp.log(c) - jnp.log(x3 + c)
    return jnp.where(z > -1.0, b1, jnp.where(x < 5.0, b2, b3))


@jax.jit
def _h(z):
    z1 = jnp.where(z > -1.0, z, 0.0)
    direct = jnp.exp(_log_phi(z1)) + z1 * ndtr(z1)
    return jnp.where(z > -1.0, direct, jnp.exp(log_h(jnp.minimum(z, -1.0))))


def _sd(var):
    # floor: keeps z finite (and z² representable) at zero-variance (measured) candidates
    floor = jnp.sqrt(jnp.finfo(var.dtype).tiny)
    return jnp.sqrt(jnp.maximum(var, floor))


def _logmeanexp(a):
    return logsumexp(a, axis=0) - jnp.log(jnp.asarray(a.shape[0], a.dtype))


@partial(jax.jit, static_argnames=("kind", "maximize"))
def _improvement(mean, var, best, xi, kind: str, maximize: bool):
    if best.ndim == 1:  # one incumbent per hyperparameter sample
        best = best[:, None]
    sd = _sd(var)
    z = ((mean - best if maximize else best - mean) - xi) / sd
    if kind == "ei":
        return jnp.mean(sd * _h(z), axis=0)
    if kind == "logei":
        return _logmeanexp(jnp.log(sd) + log_h(z))
    if kind == "pi":
        return jnp.mean(ndtr(z), axis=0)
    return _logmeanexp(log_ndtr(z))


def _improvement_rule(kind, pred: Predictive, best, maximize: bool, xi):
    if best is None:
        raise ValueError(f"{kind} needs `best` (the incumbent, e.g. incumbent(obs))")
    best = jnp.asarray(best, pred.mean.dtype)
    if best.ndim > 1 or (best.ndim == 1 and best.shape[0] != pred.mean.shape[0]):
        raise ValueError(
            f"best must be a scalar or have shape ({pred.mean.shape[0]},), got {best.shape}"
        )
    xi = jnp.asarray(xi, pred.mean.dtype)
    return _improvement(pred.mean, pred.var, best, xi, kind, bool(maximize))


def _sign(maximize: bool) -> float:
    return 1.0 if maximize else -1.0


# --- rules --------------------------------------------------------------------------------------
def expected_improvement(
    pred: Predictive,
    *,
    best: ArrayLike | None = None,
    key: PRNGKeyArray | None = None,
    maximize: bool = True,
    xi: ArrayLike = 0.0,
) -> Float[Array, " m"]:
    r"""Expected improvement :math:`\frac1s\sum_i \sigma_i h(z_i)` over ``best`` (+ margin ``xi``).

    Prefer :func:`log_expected_improvement` (identical argmax, no underflow).
    """
    return _improvement_rule("ei", pred, best, maximize, xi)


def log_expected_improvement(
    pred: Predictive,
    *,
    best: ArrayLike | None = None,
    key: PRNGKeyArray | None = None,
    maximize: bool = True,
    xi: ArrayLike = 0.0,
) -> Float[Array, " m"]:
    r"""``log EI`` of the mixture: :math:`\log\frac1s\sum_i \exp(\log\sigma_i + \log h(z_i))`.

    Finite in float32 even at :math:`z = -40` (where EI itself underflows to 0). The default rule.
    """
    return _improvement_rule("logei", pred, best, maximize, xi)


def probability_of_improvement(
    pred: Predictive,
    *,
    best: ArrayLike | None = None,
    key: PRNGKeyArray | None = None,
    maximize: bool = True,
    xi: ArrayLike = 0.0,
) -> Float[Array, " m"]:
    r"""Probability of improvement :math:`\frac1s\sum_i \Phi(z_i)`."""
    return _improvement_rule("pi", pred, best, maximize, xi)


def log_probability_of_improvement(
    pred: Predictive,
    *,
    best: ArrayLike | None = None,
    key: PRNGKeyArray | None = None,
    maximize: bool = True,
    xi: ArrayLike = 0.0,
) -> Float[Array, " m"]:
    r"""``log PI`` of the mixture via ``log_ndtr`` (stable deep in the tail)."""
    return _improvement_rule("logpi", pred, best, maximize, xi)


def upper_confidence_bound(
    pred: Predictive,
    *,
    best: ArrayLike | None = None,
    key: PRNGKeyArray | None = None,
    maximize: bool = True,
    beta: ArrayLike = 4.0,
) -> Float[Array, " m"]:
    r"""Upper confidence bound :math:`\pm\bar\mu + \sqrt{\beta}\,\bar\sigma` on mixture moments.

    With ``maximize=False`` this is :math:`-(\bar\mu - \sqrt\beta\,\bar\sigma)` (the lower bound,
    negated so that higher is better). Same convention as gpax (``sqrt(beta * var)``).
    """
    mean, var = pred.moments()
    return _sign(maximize) * mean + jnp.sqrt(beta) * jnp.sqrt(var)


def max_variance(
    pred: Predictive,
    *,
    best: ArrayLike | None = None,
    key: PRNGKeyArray | None = None,
    maximize: bool = True,
) -> Float[Array, " m"]:
    """Maximum uncertainty: the mixture's predictive variance (pure exploration)."""
    return pred.moments()[1]


def posterior_mean(
    pred: Predictive,
    *,
    best: ArrayLike | None = None,
    key: PRNGKeyArray | None = None,
    maximize: bool = True,
) -> Float[Array, " m"]:
    """Pure exploitation: the mixture mean (negated when minimising)."""
    return _sign(maximize) * pred.moments()[0]


def weighted(
    pred: Predictive,
    *,
    best: ArrayLike | None = None,
    key: PRNGKeyArray | None = None,
    maximize: bool = True,
    a: ArrayLike = 1.0,
    b: ArrayLike = 1.0,
) -> Float[Array, " m"]:
    r"""Weighted form :math:`\pm a\,\bar\mu + b\,\bar\sigma` on the mixture moments."""
    mean, var = pred.moments()
    return _sign(maximize) * a * mean + b * jnp.sqrt(var)


def thompson(
    pred: Predictive,
    *,
    best: ArrayLike | None = None,
    key: PRNGKeyArray | None = None,
    maximize: bool = True,
) -> Float[Array, " m"]:
    """Thompson sampling: one joint posterior draw over the candidates (its argmax is the choice).

    Needs ``pred.draws`` (build the predictive with ``key=..., num_draws=1``; use
    ``method="pathwise"`` for large candidate sets). With several draws the first row is used,
    or a random row when ``key`` is given.
    """
    if pred.draws is None:
        raise ValueError(
            "thompson needs joint draws: build the Predictive with key=..., num_draws=1 "
            "(from_posterior / from_cache / from_samples)"
        )
    n = pred.draws.shape[0]
    row = pred.draws[0] if key is None else pred.draws[jax.random.randint(key, (), 0, n)]
    return _sign(maximize) * row


thompson.requires = ("draws",)


# --- registry -----------------------------------------------------------------------------------
_RULES: dict[str, Callable] = {
    "ei": expected_improvement,
    "logei": log_expected_improvement,
    "pi": probability_of_improvement,
    "logpi": log_probability_of_improvement,
    "ucb": upper_confidence_bound,
    "maxvar": max_variance,
    "mean": posterior_mean,
    "weighted": weighted,
    "thompson": thompson,
    "kg": knowledge_gradient,
}
_ALIASES = {
    "expectedimprovement": "ei",
    "logexpectedimprovement": "logei",
    "poi": "pi",
    "probabilityofimprovement": "pi",
    "upperconfidencebound": "ucb",
    "ue": "maxvar",
    "maxvariance": "maxvar",
    "uncertainty": "maxvar",
    "ts": "thompson",
    "knowledgegradient": "kg",
    "exploit": "mean",
}


def names() -> list[str]:
    """The registered rule names."""
    return sorted(_RULES)


def get(name: str | Callable | None = None) -> Callable:
    """The acquisition rule called ``name`` (default :data:`DEFAULT`, ``"ei"``).

    A callable is returned unchanged (any ``fn(pred, *, best, key, **kw) -> (m,)`` works).
    Names are case-insensitive; ``_`` and ``-`` are ignored (``"log_ei"`` is ``"logei"``).

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name is None:
        name = DEFAULT
    if callable(name):
        return name
    if not isinstance(name, str):
        raise ValueError(f"acquisition must be a name or a callable, got {type(name).__name__}")
    k = name.lower().replace("_", "").replace("-", "").replace(" ", "")
    k = _ALIASES.get(k, k)
    if k not in _RULES:
        raise ValueError(f"unknown acquisition {name!r}; valid names: {', '.join(names())}")
    return _RULES[k]
