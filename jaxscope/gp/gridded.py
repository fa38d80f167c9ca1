r"""Gaussian processes on a pixel grid with missing pixels: Kronecker/Toeplitz algebra, PCG, SLQ.

Most scans sit on a regular ``H × W`` pixel grid with some pixels measured. With a product
kernel over the two image axes,

.. math::

    k\big((r, c), (r', c')\big) = s^2\, a(r, c)\, a(r', c')\,
        g\!\left(\tfrac{|r - r'|}{\ell_r}\right) g\!\left(\tfrac{|c - c'|}{\ell_c}\right),

the covariance of the whole grid is ``s² D (K_r ⊗ K_c) D`` (``D = diag(a)``, an optional
amplitude map, ones for a stationary kernel), and each axis factor is a symmetric Toeplitz
matrix (evenly spaced pixels). A matrix-vector product with an image ``V`` is
``s² a ∘ (K_r (a ∘ V) K_c)``: dense per-axis products (``O(HW(H+W))``, fastest up to a few
hundred pixels a side) or circulant embedding with FFTs (``O(HW log(HW))``), never an
``HW × HW`` matrix.

The measured pixels (``mask``) enter as in the exact GP's padded buffer: on the full grid

.. math:: \tilde A = M K M + (\sigma^2 + \epsilon) M + (I - M), \qquad M = \mathrm{diag}(mask),

so unmeasured pixels are identity rows, ``log|Ã| = log|K_mm + σ²I|`` and every array keeps the
grid's shape whatever the number of measurements (a campaign never recompiles).

Solves use preconditioned conjugate gradients, batched over right-hand sides (:func:`mbcg`);
the preconditioner is ``σ²I + LLᵀ`` applied by Woodbury, with ``L`` either

* a Kronecker Nyström factor (:func:`~jaxscope.gp.gridded_precond.kron_nystrom`, the
  default): inducing pixels on a
  ``z_r × z_c`` lattice, so ``L = M D (A_r ⊗ A_c)`` with ``A = K[:, Z] K_ZZ^{-1/2}`` per axis.
  It is never formed: ``Lᵀv`` and ``Lc`` are two small matrix products each, and
  ``LᵀL = Σ_m (A_r ⊗ A_c)ᵀ(A_r ⊗ A_c)`` costs ``O(H z_c² (W + z_r²))``. With a lattice spacing
  of about half a lengthscale it removes all of the spectrum above the noise on smooth, clean
  channels (PCG from 300+ to 5–60 iterations on 256² PFM images at noise/signal 1e-3), where
  a low-rank pivoted Cholesky cannot; or
* a rank-``k`` pivoted Cholesky factor of ``K_mm``
  (:func:`~jaxscope.gp.gridded_precond.pivoted_cholesky`, Harbrecht et
  al. 2012; Gardner et al. 2018).
Log-determinants come from stochastic Lanczos quadrature on the same CG runs: with probes
``z ~ N(0, P)``, CG's coefficients give the Lanczos tridiagonal ``T`` of ``P^{-1/2} Ã P^{-1/2}``
started at ``P^{-1/2} z`` and

.. math:: \log|\tilde A| \approx \log|P| + \frac1t \sum_i (z_i^\top P^{-1} z_i)\,
          e_1^\top \log(T_i)\, e_1

(Ubaru, Chen & Saad 2017; the estimator's error is measured in ``tests/gp/test_gridded.py``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .. import kernels as K
from .linalg import default_jitter

#: per-axis size up to which the dense Toeplitz product is used (``method="auto"``)
DENSE_MAX = 384


class _Coord(eqx.Module):
    """``x -> x[i:i+1]``: one coordinate of a point (for the product kernel of the exact GP)."""

    i: int = eqx.field(static=True)

    def __call__(self, x):
        return x[self.i : self.i + 1]


#: prefix of a kernel name for the radial (non-separable) form, e.g. ``"radial:matern32"``
RADIAL = "radial:"


class GridKernel(eqx.Module):
    """A stationary kernel over the two image axes (lengthscales in pixels), in one of two forms:

    * ``name="matern32"`` (any 1-D kernel name): the **product** ``g(|Δr|/ℓ_r) g(|Δc|/ℓ_c)``,
      whose grid covariance is a Kronecker product of two Toeplitz factors;
    * ``name="radial:matern32"``: the **radial** ``g(sqrt((Δr/ℓ_r)² + (Δc/ℓ_c)²))`` (an ARD
      kernel of the scaled Euclidean distance), whose grid covariance is block-Toeplitz with
      Toeplitz blocks: products by 2-D FFTs. For the RBF both forms are the same kernel; for
      Matérn kernels the product's correlation is diamond-shaped and rough along the diagonals
      (on a 128² crop of a PFM deflection channel at 10 % the radial Matérn-3/2 has a log
      marginal likelihood 100 higher and 6 % lower RMSE).

    Attributes:
        lengthscale: ``(2,)``: along rows (``ℓ_r``, vertical) and columns (``ℓ_c``).
        variance: signal variance ``s²``.
        name: the 1-D kernel (``"matern32"``, ``"matern52"``, ``"rbf"``, ...), with the prefix
            ``"radial:"`` for the radial form.
    """

    lengthscale: Any
    variance: Any = 1.0
    name: str = eqx.field(static=True, default="matern32")

    def __check_init__(self):
        K.by_name(self.base)  # unknown names fail here
        if jnp.shape(self.lengthscale) != (2,):
            raise ValueError(f"lengthscale must have shape (2,), got {jnp.shape(self.lengthscale)}")

    @property
    def radial(self) -> bool:
        return self.name.startswith(RADIAL)

    @property
    def base(self) -> str:
        """The 1-D kernel's name (without the ``"radial:"`` prefix)."""
        return self.name.removeprefix(RADIAL)

    def column(self, n: int, axis: int, dtype) -> Float[Array, " n"]:
        """First column of the unit-variance Toeplitz factor of axis ``axis`` (0 rows, 1 cols):
        the kernel along one axis (for the radial form, the factor of its separable surrogate,
        which the preconditioners use)."""
        g = K.by_name(self.base)(lengthscale=1.0, variance=1.0)
        d = jnp.arange(n, dtype=dtype) / jnp.asarray(self.lengthscale, dtype)[axis]
        return g.shape(d * d)

    def lags(self, shape: tuple[int, int], dtype) -> Float[Array, "h w"]:
        """Unit-variance kernel at row lags ``0..h-1`` and column lags ``0..w-1``."""
        if not self.radial:
            return jnp.outer(self.column(shape[0], 0, dtype), self.column(shape[1], 1, dtype))
        g = K.by_name(self.base)(lengthscale=1.0, variance=1.0)
        ls = jnp.asarray(self.lengthscale, dtype)
        dr = (jnp.arange(shape[0], dtype=dtype) / ls[0])[:, None]
        dc = (jnp.arange(shape[1], dtype=dtype) / ls[1])[None, :]
        return g.shape(dr * dr + dc * dc)

    def axis_matrix(self, n: int, axis: int, dtype) -> Float[Array, "n n"]:
        """The dense unit-variance ``n × n`` factor of one axis."""
        return toeplitz(self.column(n, axis, dtype))

    def as_kernel(self, amplitude=None) -> K.Kernel:
        """The same kernel on points ``(row, col)`` in pixels, for the exact GP (with an
        ``(H, W)`` amplitude map looked up at the nearest pixel)."""
        cls = K.by_name(self.base)
        ls = jnp.asarray(self.lengthscale)
        if self.radial:
            k = cls(lengthscale=ls, variance=self.variance)
        else:
            kr = K.Transformed(cls(lengthscale=ls[0], variance=self.variance), _Coord(0))
            kc = K.Transformed(cls(lengthscale=ls[1], variance=1.0), _Coord(1))
            k = K.Product(kr, kc)
        return k if amplitude is None else Modulated(k, jnp.asarray(amplitude))


class Modulated(K.Kernel):
    """``a(x) a(x') k(x, x')`` with ``a`` an image looked up at the nearest pixel of ``x``."""

    kernel: K.Kernel
    amplitude: Any

    def _a(self, X):
        H, W = self.amplitude.shape
        i = jnp.clip(jnp.round(X[..., 0]).astype(jnp.int32), 0, H - 1)
        j = jnp.clip(jnp.round(X[..., 1]).astype(jnp.int32), 0, W - 1)
        return self.amplitude[i, j].astype(X.dtype)

    def evaluate(self, x1, x2):
        return self._a(x1) * self._a(x2) * self.kernel.evaluate(x1, x2)

    def matrix(self, X1, X2):
        return self._a(X1)[:, None] * self._a(X2)[None, :] * self.kernel.matrix(X1, X2)

    def diag(self, X):
        return self._a(X) ** 2 * self.kernel.diag(X)


def toeplitz(t: Array) -> Array:
    """The dense symmetric Toeplitz matrix with first column ``t``."""
    i = jnp.arange(t.shape[0])
    return t[jnp.abs(i[:, None] - i[None, :])]


def _toeplitz_apply(t: Array, V: Array, axis: int, method: str) -> Array:
    """``T @ V`` along ``axis`` for the symmetric Toeplitz ``T`` with first column ``t``."""
    n = t.shape[0]
    use_fft = method == "fft" or (method == "auto" and n > DENSE_MAX)
    if not use_fft:
        return jnp.moveaxis(jnp.tensordot(toeplitz(t), V, axes=([1], [axis])), 0, axis)
    c = jnp.concatenate([t, jnp.zeros((1,), t.dtype), t[:0:-1]])  # circulant embedding, 2n
    lam = jnp.fft.rfft(c).real  # c is symmetric: real eigenvalues
    shape = [1] * V.ndim
    shape[axis] = lam.shape[0]
    out = jnp.fft.irfft(
        jnp.fft.rfft(V, n=2 * n, axis=axis) * lam.reshape(shape), n=2 * n, axis=axis
    )
    return jax.lax.slice_in_dim(out, 0, n, axis=axis).astype(V.dtype)


def torus_spectrum(kernel: GridKernel, shape: tuple[int, int], dtype) -> Array:
    """Eigenvalues ``(2H, W + 1)`` (``rfft2`` layout) of the circulant embedding of the
    unit-variance grid covariance on a ``2H × 2W`` torus (lags folded: ``min(i, 2H - i)``).
    Products with it are exact on the ``H × W`` grid; draws use its positive part."""
    H, W = shape
    fold = lambda n: jnp.minimum(jnp.arange(2 * n), 2 * n - jnp.arange(2 * n))  # noqa: E731
    g = kernel.lags((H + 1, W + 1), dtype)
    return jnp.fft.rfft2(g[fold(H)][:, fold(W)]).real.astype(dtype)


class GridOperator(eqx.Module):
    """``K`` and ``Ã`` of the module docstring as functions of images ``(..., H, W)``.

    ``t_rows`` / ``t_cols`` are the per-axis Toeplitz factors (of the separable surrogate for
    a radial kernel, for the preconditioners); ``spectrum`` is set for a radial kernel, whose
    products use it (:func:`torus_spectrum`)."""

    t_rows: Float[Array, " H"]
    t_cols: Float[Array, " W"]
    variance: Any
    noise: Any
    amplitude: Float[Array, "H W"]
    mask: Float[Array, "H W"]  # 1.0 measured, 0.0 not
    jitter: float = eqx.field(static=True)
    method: str = eqx.field(static=True, default="auto")
    spectrum: Any = None  # (2H, W + 1) for a radial kernel

    @classmethod
    def build(cls, kernel: GridKernel, noise, mask, amplitude=None, *, method="auto", jitter=None):
        if method not in ("auto", "dense", "fft"):
            raise ValueError(f"unknown method {method!r}; choose 'auto', 'dense' or 'fft'")
        H, W = mask.shape
        dtype = jnp.result_type(kernel.variance, noise, float)
        amp = jnp.ones((H, W), dtype) if amplitude is None else jnp.asarray(amplitude, dtype)
        return cls(
            t_rows=kernel.column(H, 0, dtype),
            t_cols=kernel.column(W, 1, dtype),
            variance=jnp.asarray(kernel.variance, dtype),
            noise=jnp.asarray(noise, dtype),
            amplitude=amp,
            mask=jnp.asarray(mask, dtype),
            jitter=default_jitter(dtype) if jitter is None else jitter,
            method=method,
            spectrum=torus_spectrum(kernel, (H, W), dtype) if kernel.radial else None,
        )

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    def K(self, V):
        """``s² a ∘ (K_r (a ∘ V) K_c)``: the prior covariance of the whole grid times ``V``
        (a radial kernel: a 2-D circulant product on the ``2H × 2W`` torus)."""
        if self.spectrum is not None:
            H, W = self.shape
            F = jnp.fft.rfft2(self.amplitude * V, s=(2 * H, 2 * W))
            U = jnp.fft.irfft2(F * self.spectrum, s=(2 * H, 2 * W))[..., :H, :W].astype(V.dtype)
        else:
            U = _toeplitz_apply(self.t_cols, self.amplitude * V, -1, self.method)
            U = _toeplitz_apply(self.t_rows, U, -2, self.method)
        return self.variance * self.amplitude * U

    def A(self, V):
        """``Ã V`` (measured block ``K_mm + (σ²+ε)I``, identity on unmeasured pixels)."""
        m = self.mask
        return m * self.K(m * V) + (self.noise + self.jitter) * m * V + (1.0 - m) * V

    def diag(self):
        """Prior variance of every pixel, ``s² a²``."""
        return self.variance * self.amplitude**2 * jnp.ones(self.shape, self.t_rows.dtype)


class CGResult(NamedTuple):
    x: Float[Array, "b H W"]
    alphas: Float[Array, "iters b"]
    betas: Float[Array, "iters b"]
    active: Array  # (iters, b) bool: iteration j ran for right-hand side b
    rz0: Float[Array, " b"]  # r₀ᵀ P⁻¹ r₀
    iterations: Array
    residual: Float[Array, " b"]  # final ‖r‖ / ‖b‖


def mbcg(op: GridOperator, pre: Any, B, *, tol: float | Float[Array, " b"] = 1e-4,
         max_iter: int = 300, x0=None):  # fmt: skip
    """Preconditioned CG on ``Ã X = B`` for a batch ``B`` of images ``(b, H, W)``.

    ``pre`` is any preconditioner with ``solve(V)`` (``P⁻¹V``), e.g. those of
    :mod:`~jaxscope.gp.gridded_precond`.

    Each right-hand side stops when ``‖r‖ ≤ tol ‖b‖`` (``tol`` a scalar or one per right-hand
    side; its coefficients after that are not recorded); the loop ends when all have converged
    or after ``max_iter`` iterations. ``x0`` warm-starts the solve (the recorded coefficients
    then no longer give the Lanczos tridiagonal of ``B``: use them for
    :func:`lanczos_logquad` only with ``x0=None``).
    """
    b = B.shape[0]
    dtype = B.dtype
    vdot = lambda U, V: jnp.sum(U * V, axis=(-2, -1))  # noqa: E731
    bnorm = jnp.sqrt(vdot(B, B))
    bnorm = jnp.where(bnorm > 0, bnorm, 1.0)
    tol = jnp.broadcast_to(jnp.asarray(tol, dtype), (b,))
    X0 = jnp.zeros_like(B) if x0 is None else x0
    R0 = B if x0 is None else B - op.A(x0)
    Z = pre.solve(R0)
    rz = vdot(R0, Z)
    hist = jnp.zeros((max_iter, b), dtype)
    init = (0, X0, R0, Z, rz, hist, hist, jnp.zeros((max_iter, b), bool))

    def res(R):
        return jnp.sqrt(vdot(R, R)) / bnorm

    def cond(state):
        j, _, R, *_ = state
        return (j < max_iter) & jnp.any(res(R) > tol)

    def body(state):
        j, X, R, P, rz, al, be, act = state
        active = res(R) > tol
        AP = op.A(P)
        alpha = jnp.where(active, rz / jnp.where(active, vdot(P, AP), 1.0), 0.0)
        X = X + alpha[:, None, None] * P
        R = R - alpha[:, None, None] * AP
        Z = pre.solve(R)
        rz_new = vdot(R, Z)
        beta = jnp.where(active, rz_new / jnp.where(active, rz, 1.0), 0.0)
        P = jnp.where(active[:, None, None], Z + beta[:, None, None] * P, P)
        rz = jnp.where(active, rz_new, rz)
        return (j + 1, X, R, P, rz, al.at[j].set(alpha), be.at[j].set(beta), act.at[j].set(active))

    j, X, R, _, _, al, be, act = jax.lax.while_loop(cond, body, init)
    return CGResult(X, al, be, act, rz, j, res(R))


def lanczos_logquad(cg: CGResult) -> Float[Array, " b"]:
    """``e₁ᵀ log(T) e₁`` of the Lanczos tridiagonal recovered from each CG run."""
    al, be, act = cg.alphas.T, cg.betas.T, cg.active.T  # (b, iters)
    safe = jnp.where(act, al, 1.0)
    prev = jnp.concatenate([jnp.zeros_like(be[:, :1]), be[:, :-1] / safe[:, :-1]], axis=1)
    d = jnp.where(act, 1.0 / safe + prev, 1.0)
    nxt = jnp.concatenate([act[:, 1:], jnp.zeros_like(act[:, :1])], axis=1)
    e = jnp.where(act & nxt, jnp.sqrt(jnp.maximum(be, 0.0)) / safe, 0.0)[:, :-1]
    T = jax.vmap(lambda d, e: jnp.diag(d) + jnp.diag(e, 1) + jnp.diag(e, -1))(d, e)
    lam, Q = jnp.linalg.eigh(T)
    tiny = jnp.finfo(lam.dtype).tiny
    return jnp.sum(Q[:, 0, :] ** 2 * jnp.log(jnp.maximum(lam, tiny)), axis=-1)
