r"""Log marginal likelihood, MAP and posterior of the gridded GP (:mod:`~jaxscope.gp.gridded`).

**Objective.** For standardised measurements ``y`` (zero on unmeasured pixels)

.. math:: \log p(y) = -\tfrac12 y^\top \tilde A^{-1} y - \tfrac12 \log|\tilde A|
          - \tfrac n2 \log 2\pi

with ``Ã⁻¹y`` by PCG and ``log|Ã|`` by stochastic Lanczos quadrature. Its gradient is not taken
through the solver: with ``α = Ã⁻¹y`` and ``u_i = Ã⁻¹z_i``, ``z_i ~ N(0, P)``,

.. math:: \partial_\theta \log p = \tfrac12 \alpha^\top \partial\tilde A\,\alpha
          - \tfrac12 \operatorname{tr}(\tilde A^{-1}\partial\tilde A), \qquad
          \operatorname{tr}(\tilde A^{-1}\partial\tilde A) \approx
          \frac1t \sum_i (P^{-1}z_i)^\top \partial\tilde A\, u_i

(Hutchinson with ``E[zzᵀ] = P``), so :func:`grid_log_marginal` returns the estimate with a
surrogate whose ``jax.grad`` is exactly this estimator (one matrix-vector product with
``Ã(θ)`` on fixed vectors, differentiated through the FFT/dense products).

**Non-stationary amplitude.** ``roughness`` (an image, mean 1) and a weight ``w ∈ [0, 1)`` give
the amplitude ``a = sqrt((1 - w) + w·roughness)``: the prior variance (and with it σ) grows
where the image changes fast. :func:`~jaxscope.gp.gridded_posterior.roughness_map` makes one
from a first, stationary reconstruction (the blurred squared gradient of its mean); ``w`` is
fitted by MAP with the other hyperparameters, so ``w → 0`` recovers the stationary kernel when
the data do not ask for it.

**Posterior** (mean and pathwise σ): :mod:`~jaxscope.gp.gridded_posterior`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from .gridded import GridKernel, GridOperator, lanczos_logquad, mbcg
from .gridded_precond import kron_nystrom, lattice_for, pivoted_cholesky

PRECONDITIONERS = ("nystrom", "pivoted_cholesky")


class SolverSettings(NamedTuple):
    """CG/SLQ settings: probes, preconditioner, tolerance, iteration cap, product method.

    ``preconditioner="nystrom"`` (Kronecker Nyström on a ``lattice`` of inducing pixels;
    ``None``: :func:`~jaxscope.gp.gridded_precond.lattice_for` the grid and ``lattice_rank``, which
    :func:`~jaxscope.gp.scan.reconstruct_scan` sets from the measurement spacing) or
    ``"pivoted_cholesky"`` of rank ``rank``.
    """

    num_probes: int = 2  # 2 and 4 give the same fits on the 256² PFM channels (3 digits)
    rank: int = 64
    preconditioner: str = "nystrom"
    lattice: tuple[int, int] | None = None
    #: inducing pixels of the Nyström preconditioner at most (its build is ``O(k³)``: 0.19 s at
    #: 2304 on 2 cores, four builds a 20-step fit): 1600 (40 × 40) gave the same fits as 2304
    #: on the 256² PFM channels in 10–50 % less time, 1024 more CG iterations than it saved
    lattice_rank: int = 1600
    tol: float = 1e-3  # relative residual; float32 rarely gets much below
    #: of the pathwise draws' solves (σ² from ``S`` draws has a Monte-Carlo error of
    #: ``sqrt(2/S)``, 35 % at 16: a 1 % residual is far below it); ``tol`` for the mean
    sample_tol: float = 1e-2
    #: of the MAP steps' solves (their gradient is a stochastic estimate anyway; GPyTorch
    #: trains at a tolerance of 1); ``tol`` for the posterior
    fit_tol: float = 1e-2
    max_iter: int = 300
    #: cap of each MAP step's solve: the solves are warm-started from the previous step's, so a
    #: capped solve goes on where it stopped (on a 256² PFM height channel a cap of 50 reaches
    #: the same fit as 300, in half the iterations at 30 % of pixels)
    fit_max_iter: int = 50
    method: str = "auto"
    #: added to the noise variance (standardised units): bounds CG's condition number on
    #: clean, smooth channels (1e-4 converges on the 256² PFM channels with the Nyström
    #: preconditioner; 1e-3, needed by rank-64 pivoted Cholesky, cost 20 % RMSE on height)
    noise_floor: float = 1e-4
    #: the floor is raised to ``conditioning · eps · λ̂`` where that is larger (``eps`` of the
    #: dtype, ``λ̂`` an estimate of the largest eigenvalue of ``K_mm``, :func:`solver_floor`).
    #: A product with ``K`` in floating point errs by about ``eps λ`` in every direction; when
    #: that reaches the noise variance ``s`` the preconditioned operator is noise in the
    #: directions that set convergence and PCG stalls — on the 256² PFM height channel at 30 %
    #: (ℓ ≈ 30 × 16 px, noise 3e-5) float32 PCG stalled at ``s = 2.3 eps λ̂``, converged in 190
    #: iterations at 5.8 and in 64 at 16 (RMSE 0.67× / 0.90× the thin-plate spline's, both
    #: below it). In float64 the floor stays ``noise_floor``; ``0`` turns the rule off.
    conditioning: float = 16.0


DEFAULT_SETTINGS = SolverSettings()


def check_settings(st: SolverSettings) -> None:
    """``ValueError`` naming the first out-of-range solver setting."""
    if st.num_probes < 1 or st.rank < 1 or st.max_iter < 1 or st.lattice_rank < 1:
        raise ValueError(f"num_probes, rank, lattice_rank and max_iter must be >= 1, got {st}")
    if st.preconditioner not in PRECONDITIONERS:
        raise ValueError(
            f"unknown preconditioner {st.preconditioner!r}; choose one of {PRECONDITIONERS}"
        )
    if not (st.tol > 0 and st.fit_tol > 0 and st.sample_tol > 0 and st.noise_floor >= 0
            and st.conditioning >= 0):  # fmt: skip
        raise ValueError(
            f"tol, fit_tol and sample_tol must be > 0, noise_floor and conditioning >= 0, got {st}"
        )
    if st.fit_max_iter < 1:
        raise ValueError(f"fit_max_iter must be >= 1, got {st.fit_max_iter}")
    if st.method not in ("auto", "dense", "fft"):
        raise ValueError(f"unknown method {st.method!r}; choose 'auto', 'dense' or 'fft'")


def amplitude_from(roughness, w):
    """``sqrt((1 - w) + w·roughness)``, ones when ``roughness`` is ``None``."""
    if roughness is None:
        return None
    return jnp.sqrt((1.0 - w) + w * roughness)


def solver_floor(kernel: GridKernel, mask, amplitude, settings: SolverSettings, dtype):
    """The variance added to the noise for the solver's sake: ``settings.noise_floor``, raised
    to ``settings.conditioning · eps · λ̂`` with ``λ̂ = s² · mean(mask · a²) · Σ_r Σ_c`` (the
    row sums of the two Toeplitz factors: the largest eigenvalue of a stationary ``K_mm`` on a
    random mask; for a radial kernel the sum of its lag image), held constant for gradients."""
    H, W = mask.shape

    g = kernel.lags((H, W), dtype)  # lags >= 0: the full row sum counts each sign
    total = 4.0 * jnp.sum(g) - 2.0 * jnp.sum(g[:, 0]) - 2.0 * jnp.sum(g[0, :]) + g[0, 0]
    a2 = 1.0 if amplitude is None else amplitude * amplitude
    lam = kernel.variance * jnp.mean(mask * a2) * total
    floor = jnp.maximum(settings.noise_floor, settings.conditioning * jnp.finfo(dtype).eps * lam)
    return jax.lax.stop_gradient(jnp.asarray(floor, dtype))


def build_operator(params, mask, roughness, name, settings: SolverSettings) -> GridOperator:
    kernel = GridKernel(params["lengthscale"], params["variance"], name)
    amp = amplitude_from(roughness, params.get("warp", 0.0))
    dtype = jnp.result_type(params["variance"], params["noise"], float)
    noise = params["noise"] + solver_floor(kernel, mask, amp, settings, dtype)
    return GridOperator.build(kernel, noise, mask, amp, method=settings.method)


def make_preconditioner(op: GridOperator, settings: SolverSettings):
    """The preconditioner ``settings`` name, for the operator ``op``."""
    if settings.preconditioner == "pivoted_cholesky":
        return pivoted_cholesky(op, settings.rank)
    lattice = settings.lattice or lattice_for(op.shape, None, settings.lattice_rank)
    return kron_nystrom(op, lattice)


def grid_log_marginal(key, params, y, mask, name, *, roughness=None, settings=DEFAULT_SETTINGS):
    """Estimated ``log p(y)`` (differentiable by the surrogate of the module docstring).

    Returns ``(lml, info)`` with ``info`` the CG iterations and final relative residual.
    """
    mask = jnp.asarray(mask, y.dtype)
    op = build_operator(params, mask, roughness, name, settings)
    sg = jax.lax.stop_gradient
    op0 = sg(op)
    pre = make_preconditioner(op0, settings)
    Z = pre.sample(key, settings.num_probes)
    B = jnp.concatenate([(mask * y)[None], Z])
    cg = mbcg(op0, pre, B, tol=settings.tol, max_iter=settings.max_iter)
    alpha, U = cg.x[0], cg.x[1:]
    n = jnp.sum(mask)
    probes = cg._replace(alphas=cg.alphas[:, 1:], betas=cg.betas[:, 1:], active=cg.active[:, 1:])
    logdet = pre.logdet() + jnp.mean(cg.rz0[1:] * lanczos_logquad(probes))
    value = -0.5 * jnp.sum(mask * y * alpha) - 0.5 * logdet - 0.5 * n * jnp.log(2 * jnp.pi)
    W = pre.solve(Z)
    sur = 0.5 * jnp.sum(alpha * op.A(alpha)) - 0.5 * jnp.mean(jnp.sum(W * op.A(U), axis=(-2, -1)))
    lml = sg(value) + sur - sg(sur)
    return lml, {"iterations": cg.iterations, "residual": jnp.max(cg.residual)}


# --- MAP ---------------------------------------------------------------------------------------
def _to_unconstrained(p):
    u = {k: jnp.log(v) for k, v in p.items() if k != "warp"}
    if "warp" in p:
        u["warp"] = jnp.log(p["warp"]) - jnp.log1p(-p["warp"])
    return u


def _to_constrained(u):
    p = {k: jnp.exp(v) for k, v in u.items() if k != "warp"}
    if "warp" in u:
        p["warp"] = jax.nn.sigmoid(u["warp"])
    return p


def _log_prior(p, ls0):
    """Weak priors on standardised data: log-normal lengthscales around ``ls0`` (sd 1.5),
    variance around 1 (sd 1.5), noise variance around 0.01 (sd 2.5)."""

    def lognormal(x, mu, sd):
        z = (jnp.log(x) - mu) / sd
        return jnp.sum(-0.5 * z * z - jnp.log(x))

    out = lognormal(p["lengthscale"], jnp.log(ls0), 1.5)
    out = out + lognormal(p["variance"], 0.0, 1.5) + lognormal(p["noise"], jnp.log(1e-2), 2.5)
    return out


def fit_adam(key, objective, init: dict, n, *, num_steps: int = 30, learning_rate: float = 0.1):
    """MAP by Adam: maximise ``objective(key, params) + log prior`` (fresh key each step).

    ``objective`` is a log marginal likelihood (estimated or exact); ``init`` holds
    ``lengthscale`` (2,), ``variance``, ``noise`` (and ``warp``). Returns ``(params,
    history)``, the history being the per-step negative log posterior per measurement (for an
    estimated objective, the estimate).
    """
    dtype = jnp.asarray(init["variance"]).dtype
    n = jnp.maximum(jnp.asarray(n, dtype), 1.0)
    ls0 = jnp.asarray(init["lengthscale"], dtype)
    opt = optax.adam(learning_rate)
    u0 = _to_unconstrained(jax.tree.map(lambda v: jnp.asarray(v, dtype), init))

    def loss(u, k):
        p = _to_constrained(u)
        return -(objective(k, p) + _log_prior(p, ls0)) / n

    def step(carry, k):
        u, s = carry
        val, g = jax.value_and_grad(loss)(u, k)
        upd, s = opt.update(g, s, u)
        return (optax.apply_updates(u, upd), s), val

    (u, _), hist = jax.lax.scan(step, (u0, opt.init(u0)), jax.random.split(key, num_steps))
    return _to_constrained(u), hist


def fit_grid_map(
    key, y, mask, name: str, init: dict, *, roughness=None, num_steps: int = 30,
    learning_rate: float = 0.1, settings: SolverSettings = DEFAULT_SETTINGS, resample: int = 5,
    prior_lengthscale=None, return_solution: bool = False,
):  # fmt: skip
    """MAP by Adam on all measured pixels, with warm-started solves.

    The gradient is the estimator of the module docstring with ``t`` probes ``z ~ N(0, I)``
    (``tr(Ã⁻¹∂Ã) ≈ mean_i (Ã⁻¹z_i)ᵀ ∂Ã z_i``) kept for ``resample`` steps, so those steps'
    solves start from the previous step's solutions (the hyperparameters move little between
    steps: a fraction of the iterations of a cold solve); fresh probes every ``resample`` steps
    keep the trace estimator's error from freezing into the optimum. No log-determinant is
    needed for the gradient; the history holds the CG iterations of each step.

    The lengthscale prior is centred on ``prior_lengthscale`` (default ``init``'s: pass a
    fixed one when warm-starting repeated fits, or the prior drifts with the estimate).

    Returns ``(params, history)``, and with ``return_solution`` also the last step's
    ``Ã⁻¹y`` (a warm start for :func:`grid_posterior`'s ``x0``).
    """
    mask = jnp.asarray(mask, y.dtype)
    dtype = y.dtype
    n = jnp.maximum(jnp.sum(mask), 1.0)
    ls0 = jnp.asarray(init["lengthscale"] if prior_lengthscale is None else prior_lengthscale,
                      dtype)  # fmt: skip
    opt = optax.adam(learning_rate)
    u0 = _to_unconstrained(jax.tree.map(lambda v: jnp.asarray(v, dtype), init))
    sg = jax.lax.stop_gradient
    shape = (settings.num_probes, *mask.shape)

    def precondition(u):
        return make_preconditioner(build_operator(_to_constrained(u), mask, roughness, name,
                                                  settings), settings)  # fmt: skip

    def step(carry, j):
        u, s, X, pre = carry
        Z = mask * jax.random.normal(jax.random.fold_in(key, j // resample), shape, dtype)
        B = jnp.concatenate([(mask * y)[None], Z])
        fresh = (j % resample) == 0  # new probes: their solves start cold
        X = X.at[1:].set(jnp.where(fresh, 0.0, X[1:]))
        # the preconditioner is renewed with the probes (any SPD one keeps CG exact; one a
        # few Adam steps old is nearly as good, at a fraction of the cost)
        pre = jax.lax.cond(fresh, lambda: precondition(sg(u)), lambda: pre)
        p = _to_constrained(u)
        op0 = build_operator(sg(p), mask, roughness, name, settings)
        cg = mbcg(op0, pre, B, tol=settings.fit_tol, max_iter=settings.fit_max_iter, x0=X)
        alpha, U = cg.x[0], cg.x[1:]

        def surrogate(u):
            q = _to_constrained(u)
            op = build_operator(q, mask, roughness, name, settings)
            quad = 0.5 * jnp.sum(alpha * op.A(alpha))
            trace = 0.5 * jnp.mean(jnp.sum(U * op.A(Z), axis=(-2, -1)))
            return -(quad - trace + _log_prior(q, ls0)) / n

        g = jax.grad(surrogate)(u)
        upd, s = opt.update(g, s, u)
        return (optax.apply_updates(u, upd), s, cg.x, pre), cg.iterations

    X0 = jnp.zeros((settings.num_probes + 1, *mask.shape), dtype)
    # a placeholder of the preconditioner's shape: step 0 builds it (one build in the program)
    pre0 = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(precondition, u0))
    carry = (u0, opt.init(u0), X0, pre0)
    (u, _, X, _), iters = jax.lax.scan(step, carry, jnp.arange(num_steps))
    if return_solution:
        return _to_constrained(u), iters, X[0]
    return _to_constrained(u), iters
