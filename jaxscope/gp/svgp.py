r"""Sparse variational GP (SVGP) with inducing points, for scattered scans of 10⁴–10⁶ points.

Whitened SVGP (Hensman et al. 2013, 2015). ``M`` inducing inputs ``Z`` carry
:math:`u = f(Z) = L_Z v` with :math:`L_Z L_Z^\top = K_{ZZ} + \text{jitter}\,I`, prior
:math:`v \sim N(0, I)` and variational posterior :math:`q(v) = N(m, S)`, :math:`S = L L^\top`
(``L`` lower-triangular). With :math:`A = L_Z^{-1} K_{Zx}` the marginal of ``f`` at ``x`` is

.. math:: q(f_x) = N\big(A^\top m,\; k_{xx} - A^\top A + A^\top S A\big),

and with a Gaussian likelihood of noise variance :math:`\sigma^2` the evidence lower bound is

.. math:: \mathcal L = \sum_i \Big[-\tfrac12\log 2\pi\sigma^2
          - \frac{(y_i - \mu_i)^2 + s_i^2}{2\sigma^2}\Big]
          - \tfrac12\big(\operatorname{tr} S + m^\top m - M - \log|S|\big)
          \le \log p(y).

Training estimates the data sum on a minibatch of ``B`` indices drawn uniformly (with
replacement) and multiplies it by ``N / B``: an unbiased estimate of :math:`\mathcal L`. The
kernel lengthscale (a scalar or one per input axis), signal variance and noise variance live in
log space and are trained with ``m``, ``L`` (and ``Z`` with ``learn_inducing=True``) by Adam in
one jitted ``lax.scan``: a fit costs O(num_steps · (B M² + M³)), independent of ``N``.
For fixed hyperparameters the optimal ``q`` is closed-form (Titsias 2009,
:func:`optimal_variational`): :math:`S = (I + \sigma^{-2} A A^\top)^{-1}`,
:math:`m = \sigma^{-2} S A y`; with ``Z = X`` the bound is tight and the SVGP equals the exact GP.

Targets are standardised internally (``(y - shift) / scale``, computed in float64 on the host,
so a signal of variance 1e-18 works in float32); predictions come back in the user's units, while
the kernel variance, noise and :meth:`SVGPPosterior.elbo` are in standardised units.

Which GP to use:

* fewer than a few thousand points: the exact :class:`~jaxscope.gp.GP` (O(N³), no approximation);
* data on a pixel grid, possibly with missing pixels: the gridded (Kronecker/Toeplitz) solver,
  :mod:`jaxscope.gp.gridded`, which exploits the grid structure without approximating the GP;
* scattered scans (spiral, Lissajous, random-walk trajectories) of 10⁴–10⁶ points: this SVGP.

Example:
    >>> post = fit_svgp(jax.random.key(0), X, y, num_inducing=512, num_steps=500)
    >>> mean, var = post.predict(Xnew, chunk_size=8192)
    >>> post.losses[-1]   # -ELBO / N of the last minibatch
"""

from __future__ import annotations

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..kernels import Stationary, by_name
from .linalg import cholesky, default_jitter, map_chunks, solve_triangular, triangular_inverse
from .observations import Standardizer

_ELBO_CHUNK = 8192  # full-data ELBO sums the data term in chunks of this many points


def _chol_zz(kernel: Stationary, Z, jitter: float | None):
    j = default_jitter(Z.dtype) if jitter is None else jitter
    return cholesky(kernel.matrix(Z, Z) + j * jnp.eye(Z.shape[0], dtype=Z.dtype))


def _marginals(kernel, Z, m, L, Lz, X):
    """Mean and variance of ``q(f)`` at the rows of ``X`` (``Lz`` the factor of ``K_ZZ``)."""
    A = solve_triangular(Lz, kernel.matrix(Z, X))  # (M, b)
    LtA = L.T @ A
    mean = A.T @ m
    var = kernel.diag(X) - jnp.sum(A * A, axis=0) + jnp.sum(LtA * LtA, axis=0)
    return mean, jnp.maximum(var, 0.0)


def _ell(kernel, Z, m, L, Lz, noise, X, y, weights=None):
    """``Σ_i w_i E_q[log N(y_i | f_i, σ²)]`` over the rows of ``X``."""
    mu, var = _marginals(kernel, Z, m, L, Lz, X)
    terms = -0.5 * jnp.log(2 * jnp.pi * noise) - 0.5 * ((y - mu) ** 2 + var) / noise
    return jnp.sum(terms if weights is None else weights * terms)


def kl_divergence(m: Float[Array, " M"], L: Float[Array, "M M"]) -> Float[Array, ""]:
    """``KL(N(m, LLᵀ) || N(0, I))`` of the whitened variational distribution."""
    L = jnp.tril(L)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.abs(jnp.diagonal(L))))
    return 0.5 * (jnp.sum(L * L) + jnp.sum(m * m) - m.shape[0] - logdet)


def optimal_variational(
    kernel: Stationary,
    Z: Float[ArrayLike, "M d"],
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, " n"],
    noise,
    *,
    jitter: float | None = None,
) -> tuple[Float[Array, " M"], Float[Array, "M M"]]:
    r"""The ELBO-maximising whitened ``q(v) = N(m, LLᵀ)`` for fixed hyperparameters (Titsias 2009).

    :math:`\Lambda = I + \sigma^{-2} A A^\top`, :math:`S = \Lambda^{-1}`,
    :math:`m = \sigma^{-2} S A y` with :math:`A = L_Z^{-1} K_{ZX}`; returns ``(m, L)`` with ``L``
    the lower Cholesky factor of ``S``. Forms the ``(M, n)`` matrix ``A``: small problems only.
    """
    return _optimal_variational(
        kernel, jnp.asarray(Z), jnp.asarray(X), jnp.asarray(y), noise, jitter
    )


@partial(jax.jit, static_argnums=5)
def _optimal_variational(kernel, Z, X, y, noise, jitter):
    Lz = _chol_zz(kernel, Z, jitter)
    A = solve_triangular(Lz, kernel.matrix(Z, X))
    eye = jnp.eye(Z.shape[0], dtype=Z.dtype)
    Li = triangular_inverse(cholesky(eye + (A @ A.T) / noise))
    S = Li.T @ Li
    m = S @ (A @ y) / noise
    return m, cholesky(S)


class SVGPPosterior(eqx.Module):
    """A trained SVGP: kernel (standardised units), inducing inputs ``Z``, whitened ``q(v) =
    N(m, LLᵀ)``, noise variance (standardised), the target ``scaler`` and the training
    ``losses`` (``-ELBO / N`` of each step's minibatch, standardised units)."""

    kernel: Stationary
    Z: Float[Array, "M d"]
    m: Float[Array, " M"]
    L: Float[Array, "M M"]
    noise: Float[Array, ""]
    scaler: Standardizer
    losses: Float[Array, " steps"]
    jitter: float | None = eqx.field(static=True, default=None)

    def chol_zz(self) -> Float[Array, "M M"]:
        """Lower Cholesky factor of ``K_ZZ + jitter · I``."""
        return _chol_zz(self.kernel, self.Z, self.jitter)

    def kl(self) -> Float[Array, ""]:
        return kl_divergence(self.m, self.L)

    def expected_log_likelihood(self, X: Float[Array, "b d"], y: Float[Array, " b"]):
        """``Σ_i E_q[log N(y_i | f_i, σ²)]`` over the rows given (standardised ``y``)."""
        return _ell(self.kernel, self.Z, self.m, jnp.tril(self.L), self.chol_zz(), self.noise, X, y)

    def minibatch_elbo(self, X: Float[Array, "b d"], y: Float[Array, " b"], num_data):
        """Unbiased ELBO estimate from a batch of ``b`` rows (standardised ``y``) of a data set
        of ``num_data`` points: ``num_data / b · Σ_batch E_q[log p(y_i|f_i)] - KL``."""
        return num_data / X.shape[0] * self.expected_log_likelihood(X, y) - self.kl()

    def elbo(self, X: ArrayLike, y: ArrayLike) -> Float[Array, ""]:
        """The full-data ELBO of ``(X, y)`` (``y`` in user units) in *standardised* units: a
        lower bound on ``log p((y - shift) / scale)``; add ``-N log(scale)`` for user units.
        The data term is summed in chunks of 8192 points."""
        X, y = _check_data(X, y, self.Z.dtype)
        if X.shape[1] != self.Z.shape[1]:
            raise ValueError(f"X has {X.shape[1]} input dimensions, the model {self.Z.shape[1]}")
        ys = (y - np.float64(self.scaler.shift)) / np.float64(self.scaler.scale)
        return _full_elbo(self, jnp.asarray(X), jnp.asarray(ys.astype(X.dtype)))

    def predict(
        self, Xnew: ArrayLike, *, chunk_size: int | None = None, include_noise: bool = False
    ) -> tuple[Float[Array, " m"], Float[Array, " m"]]:
        """Predictive mean and variance of ``f`` (``y`` with ``include_noise``), user units.

        Args:
            Xnew: ``(m, d)`` points.
            chunk_size: predict in chunks of this many points (``lax.map``): temporary memory
                O(M · chunk_size) instead of O(M · m). ``None`` predicts all at once.
            include_noise: add the observation-noise variance.
        """
        Xs = np.asarray(Xnew)
        Xs = Xs[:, None] if Xs.ndim == 1 else Xs
        if Xs.ndim != 2 or Xs.shape[1] != self.Z.shape[1]:
            raise ValueError(f"Xnew must have shape (m, {self.Z.shape[1]}), got {Xs.shape}")
        _check_finite(Xs, "Xnew")
        Xs = jnp.asarray(Xs, self.Z.dtype)
        chunk = None if chunk_size is None or chunk_size >= Xs.shape[0] else int(chunk_size)
        return _predict(self, Xs, chunk, include_noise)


@partial(jax.jit, static_argnames=("chunk_size", "include_noise"))
def _predict(post: SVGPPosterior, Xs, chunk_size, include_noise):
    Lz = post.chol_zz()
    L = jnp.tril(post.L)

    def block(x):
        return _marginals(post.kernel, post.Z, post.m, L, Lz, x)

    mean, var = block(Xs) if chunk_size is None else map_chunks(block, Xs, chunk_size)
    if include_noise:
        var = var + post.noise
    return post.scaler.unscale(mean, var)


@jax.jit
def _full_elbo(post: SVGPPosterior, X, y):
    n = X.shape[0]
    Lz, L = post.chol_zz(), jnp.tril(post.L)
    if n <= _ELBO_CHUNK:
        return _ell(post.kernel, post.Z, post.m, L, Lz, post.noise, X, y) - post.kl()
    k = -(-n // _ELBO_CHUNK)
    pad = k * _ELBO_CHUNK - n
    Xp = jnp.concatenate([X, jnp.repeat(X[-1:], pad, axis=0)]).reshape(k, _ELBO_CHUNK, -1)
    yp = jnp.concatenate([y, jnp.zeros((pad,), y.dtype)]).reshape(k, _ELBO_CHUNK)
    w = (jnp.arange(k * _ELBO_CHUNK) < n).astype(y.dtype).reshape(k, _ELBO_CHUNK)
    parts = jax.lax.map(
        lambda a: _ell(post.kernel, post.Z, post.m, L, Lz, post.noise, a[0], a[1], a[2]),
        (Xp, yp, w),
    )
    return jnp.sum(parts) - post.kl()


# --- fitting --------------------------------------------------------------------------------


def _check_finite(A: np.ndarray, name: str) -> None:
    bad = np.argwhere(~np.isfinite(A))
    if len(bad):
        idx = tuple(int(i) for i in bad[0])
        raise ValueError(f"{name}[{', '.join(map(str, idx))}] is {A[idx]}: values must be finite")


def _check_data(X, y, dtype) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as an ``(n, d)`` array of ``dtype`` and ``y`` as float64 ``(n,)``, both finite."""
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array of shape (n, d), got shape {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}")
    if X.shape[0] < 1:
        raise ValueError("X has no points")
    with np.errstate(over="ignore"):
        X = X.astype(dtype)
    _check_finite(X, "X")
    y = y.astype(np.float64)
    _check_finite(y, "y")
    return X, y


def grid_inducing(X: np.ndarray, num_inducing: int) -> np.ndarray:
    """About ``num_inducing`` points on a regular grid of cell centres over ``X``'s bounding box,
    with per-axis counts proportional to the box's side lengths (an axis of zero extent gets one
    point)."""
    lo, hi = X.min(0).astype(np.float64), X.max(0).astype(np.float64)
    r = hi - lo
    live = r > 0
    if not live.any():
        return lo[None, :].astype(X.dtype)
    h = (np.prod(r[live]) / num_inducing) ** (1.0 / live.sum())
    counts = np.where(live, np.maximum(1, np.round(r / h)), 1).astype(int)
    axes = [lo[k] + (np.arange(c) + 0.5) * r[k] / c for k, c in enumerate(counts)]
    return np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], -1).astype(X.dtype)


def _inducing(key, X: np.ndarray, inducing, num_inducing: int) -> np.ndarray:
    if not isinstance(inducing, str):
        Z = np.asarray(inducing)
        if Z.ndim != 2 or Z.shape[1] != X.shape[1] or Z.shape[0] < 1:
            raise ValueError(f"inducing points must have shape (M, {X.shape[1]}), got {Z.shape}")
        Z = Z.astype(X.dtype)
        _check_finite(Z, "inducing")
        return Z
    if num_inducing < 1:
        raise ValueError(f"num_inducing must be >= 1, got {num_inducing}")
    if inducing == "grid":
        return grid_inducing(X, num_inducing)
    if inducing == "random":
        if num_inducing > X.shape[0]:
            raise ValueError(
                f"num_inducing={num_inducing} exceeds the {X.shape[0]} data points: 'random' "
                "picks a subset of X"
            )
        idx = jax.random.choice(key, X.shape[0], (num_inducing,), replace=False)
        return X[np.sort(np.asarray(idx))]
    raise ValueError(
        f"unknown inducing option {inducing!r}; use 'grid', 'random' or an (M, d) array"
    )


def _build(cls, p, Z, scaler, losses, jitter) -> SVGPPosterior:
    kernel = cls(lengthscale=jnp.exp(p["log_lengthscale"]), variance=jnp.exp(p["log_variance"]))
    return SVGPPosterior(
        kernel=kernel,
        Z=p.get("Z", Z),
        m=p["m"],
        L=jnp.tril(p["L"]),
        noise=jnp.exp(p["log_noise"]),
        scaler=scaler,
        losses=losses,
        jitter=jitter,
    )


@partial(jax.jit, static_argnames=("cls", "num_steps", "batch", "jitter"))
def _train(key, X, y, Z, params, learning_rate, scaler, *, cls, num_steps, batch, jitter):
    n = X.shape[0]
    opt = optax.adam(learning_rate)
    no_losses = jnp.zeros((0,), X.dtype)

    def loss(p, idx):
        post = _build(cls, p, Z, scaler, no_losses, jitter)
        return -post.minibatch_elbo(X[idx], y[idx], n) / n

    def step(carry, k):
        p, state = carry
        idx = jnp.arange(n) if batch == n else jax.random.randint(k, (batch,), 0, n)
        value, g = jax.value_and_grad(loss)(p, idx)
        updates, state = opt.update(g, state, p)
        return (optax.apply_updates(p, updates), state), value

    keys = jax.random.split(key, num_steps)
    (p, _), losses = jax.lax.scan(step, (params, opt.init(params)), keys)
    return _build(cls, p, Z, scaler, losses.astype(X.dtype), jitter)


def fit_svgp(
    key: PRNGKeyArray,
    X: ArrayLike,
    y: ArrayLike,
    *,
    kernel: str = "matern32",
    num_inducing: int = 1024,
    inducing: str | ArrayLike = "grid",
    learn_inducing: bool = False,
    batch_size: int = 4096,
    num_steps: int = 1000,
    learning_rate: float = 0.01,
    lengthscale: ArrayLike | None = None,
    noise: float | None = None,
    jitter: float | None = None,
) -> SVGPPosterior:
    """Fit a whitened SVGP to ``(X, y)`` by minibatch Adam on the ELBO (one compiled scan).

    Args:
        key: PRNG key (random inducing subset, minibatch indices).
        X: ``(n, d)`` inputs; y: ``(n,)`` targets, any units (standardised internally).
        kernel: a stationary kernel name (:func:`jaxscope.kernels.by_name`).
        num_inducing: ``M`` for ``"grid"`` (about ``M``: a product of per-axis counts) or
            ``"random"`` (exactly ``M``, at most ``n``).
        inducing: ``"grid"`` (regular grid over the bounding box of ``X``), ``"random"`` (a
            random subset of ``X``) or an explicit ``(M, d)`` array.
        learn_inducing: also optimise ``Z``.
        batch_size: minibatch size ``B`` (``B >= n`` uses all data every step, no sampling).
        num_steps: Adam steps; ``0`` returns the initial state (``q`` = prior).
        learning_rate: Adam's step size (the loss is ``-ELBO / n``).
        lengthscale: initial lengthscale in input units; a scalar gives one shared lengthscale,
            a length-``d`` array one per axis. Default: ``0.2 ×`` each axis' range (per axis).
        noise: initial noise variance in the units of ``y`` squared (default ``0.1 · var(y)``).
        jitter: added to ``K_ZZ``'s diagonal (default :func:`~jaxscope.gp.default_jitter`).

    Returns:
        The :class:`SVGPPosterior`, whose ``losses`` hold ``-ELBO / n`` per step.
    """
    dtype = np.dtype(jnp.result_type(float))
    X, y = _check_data(X, y, dtype)
    n, d = X.shape
    cls = by_name(kernel)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0, got {num_steps}")
    key_z, key_train = jax.random.split(key)
    Z = _inducing(key_z, X, inducing, num_inducing)
    shift = float(y.mean())
    scale = float(y.std())
    scale = scale if scale > 0 else (abs(shift) if shift != 0 else 1.0)
    shift, scale = float(np.asarray(shift, dtype)), float(np.asarray(scale, dtype))
    ys = ((y - shift) / scale).astype(dtype)
    if lengthscale is None:
        span = X.max(0).astype(np.float64) - X.min(0)
        ls = 0.2 * np.where(span > 0, span, 1.0)
    else:
        ls = np.asarray(lengthscale, np.float64)
        if ls.shape not in ((), (d,)) or not np.all(ls > 0):
            raise ValueError(f"lengthscale must be positive, a scalar or shape ({d},), got {ls}")
    noise0 = 0.1 if noise is None else float(noise) / scale**2
    if not noise0 > 0:
        raise ValueError(f"noise must be a positive variance, got {noise}")
    M = Z.shape[0]
    put = jax.device_put
    params = {
        "log_lengthscale": put(np.log(ls).astype(dtype)),
        "log_variance": put(np.zeros((), dtype)),
        "log_noise": put(np.asarray(np.log(noise0), dtype)),
        "m": put(np.zeros((M,), dtype)),
        "L": put(np.eye(M, dtype=dtype)),
    }
    if learn_inducing:
        params["Z"] = put(Z)
    scaler = Standardizer(shift=put(np.asarray(shift, dtype)), scale=put(np.asarray(scale, dtype)))
    return _train(
        key_train,
        put(X),
        put(ys),
        put(Z),
        params,
        put(np.asarray(learning_rate, dtype)),
        scaler,
        cls=cls,
        num_steps=int(num_steps),
        batch=int(min(batch_size, n)),
        jitter=jitter,
    )
