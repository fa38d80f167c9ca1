r"""The structured (gridded) GP as a campaign surrogate: sparse scans of whole images.

:class:`GridGP` answers the :class:`~jaxscope.decide.Surrogate` protocol with the solver of
:mod:`jaxscope.gp.gridded`: the campaign's buffer is scattered onto the candidates' pixel grid
(a measured pixel is a mask entry, so the shapes never change and a campaign compiles once),
each :meth:`~GridGP.update` refits the hyperparameters by a few warm-started Adam steps
(:func:`~jaxscope.gp.gridded_fit.fit_grid_map`; ``refit_steps=0`` holds them) and then
computes the posterior mean and pathwise σ of **every** pixel once
(:func:`~jaxscope.gp.gridded_posterior.grid_posterior`): :meth:`~GridGP.predictive` is then a
lookup. Memory and time are ``O(HW(H + W))`` a CG iteration, whatever the number of
measurements, where the exact GP's decision step is ``O(n²m)``.

Conventions. The candidates must be a full regular grid (:meth:`GridGP.for_candidates` checks
it and reads the origin and spacing): ``x[0]`` runs along image rows, ``x[1]`` along columns;
a point maps to its nearest pixel. Several measurements of one pixel are averaged (their
mean is kept; the solver's noise is per pixel-measurement, so repeats count as one slightly
noisier point: a documented approximation, nothing is dropped from the buffer). Fantasies
(:meth:`~GridGP.condition`) add pixels and recompute the mean and σ with the hyperparameters
held: exact, but a full solve each, so greedy batches are slower than with the exact GP's rank-1
updates. The lengthscale lives in input units (pixels × spacing), so exclusion radii work.

Example:
    >>> sur = GridGP.for_candidates(problem.candidates)
    >>> cfg = make_config(problem.candidates, surrogate=sur, acquisition="ucb")
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..gp import Observations, Predictive, Standardizer
from ..gp.gridded_fit import SolverSettings, check_settings, fit_grid_map
from ..gp.gridded_posterior import grid_draws, grid_posterior
from ..kernels import by_name
from .surrogate import Surrogate
from .units import model_to_original


class GridState(eqx.Module):
    """Hyperparameters (model units, lengthscales in pixels), scaler, the scattered data and
    the posterior mean and latent variance of every pixel (model units)."""

    params: dict
    scaler: Standardizer
    y: Float[Array, "H W"]
    mask: Float[Array, "H W"]
    mean: Float[Array, "H W"]
    var: Float[Array, "H W"]
    key: Array
    iterations: Array


class GridGP(Surrogate):
    """Gridded GP surrogate (see the module docstring).

    Attributes:
        shape: ``(H, W)`` of the pixel grid.
        origin: ``(2,)`` coordinates of pixel ``(0, 0)``.
        step: ``(2,)`` spacing between pixels along rows and columns.
        kernel: 1-D kernel of each axis.
        refit_steps: Adam steps of each update's warm-started MAP refit (0: hold the
            hyperparameters fitted at :meth:`init`).
        init_steps: Adam steps of the first fit, at :meth:`init` (0: keep the starting values).
        num_samples: pathwise draws for σ (relative error of σ² ``≈ sqrt(2 / num_samples)``).
        init: starting hyperparameters (lengthscale ``(2,)`` in pixels, variance, noise in
            standardised units).
        settings: the solver's :class:`~jaxscope.gp.gridded_fit.SolverSettings`.
    """

    origin: Float[Array, " 2"]
    step: Float[Array, " 2"]
    shape: tuple[int, int] = eqx.field(static=True)
    kernel: str = eqx.field(static=True, default="matern32")
    refit_steps: int = eqx.field(static=True, default=5)
    init_steps: int = eqx.field(static=True, default=30)
    num_samples: int = eqx.field(static=True, default=32)
    init_lengthscale: float = eqx.field(static=True, default=4.0)
    init_noise: float = eqx.field(static=True, default=0.05)
    settings: SolverSettings = eqx.field(static=True, default=SolverSettings())

    def __check_init__(self):
        by_name(self.kernel)
        check_settings(self.settings)
        if self.refit_steps < 0 or self.init_steps < 0 or self.num_samples < 1:
            raise ValueError(
                f"refit_steps and init_steps must be >= 0 and num_samples >= 1, got "
                f"{self.refit_steps}, {self.init_steps}, {self.num_samples}"
            )

    @classmethod
    def for_candidates(cls, candidates, **kwargs) -> GridGP:
        """The surrogate of a candidate set that is a full regular 2-D grid (any order).

        Raises:
            ValueError: not 2-D, not a full grid, or unevenly spaced.
        """
        C = np.asarray(candidates, np.float64)
        if C.ndim != 2 or C.shape[1] != 2:
            raise ValueError(f"GridGP needs (m, 2) candidates, got shape {C.shape}")
        axes = [np.unique(C[:, i]) for i in range(2)]
        H, W = (len(a) for a in axes)
        if H * W != len(C) or len(np.unique(C, axis=0)) != len(C):
            raise ValueError(
                f"the candidates are not a full grid: {len(C)} points, {H} distinct rows × "
                f"{W} distinct columns"
            )
        step = []
        for i, a in enumerate(axes):
            d = np.diff(a) if len(a) > 1 else np.ones(1)
            if not np.allclose(d, d[0], rtol=1e-6, atol=0):
                raise ValueError(f"the candidates are unevenly spaced along axis {i}")
            step.append(d[0])
        dtype = jnp.asarray(candidates).dtype
        origin = jnp.asarray([axes[0][0], axes[1][0]], dtype)
        return cls(origin=origin, step=jnp.asarray(step, dtype), shape=(H, W), **kwargs)

    # --- grid <-> points ------------------------------------------------------------------
    def pixels(self, X: Float[Array, "n d"], valid=None) -> tuple[Array, Array]:
        """Row and column of the nearest pixel of each point.

        A (``valid``) point more than half a pixel outside the grid is an error (raised at run
        time, also under ``jit``), not silently moved to the edge."""
        if X.ndim != 2 or X.shape[1] != 2:
            raise ValueError(f"GridGP takes points of shape (n, 2), got {X.shape}")
        u = (X - self.origin) / self.step
        H, W = self.shape
        hi = jnp.asarray([H - 1, W - 1], u.dtype)
        out = jnp.any((u < -0.5) | (u > hi + 0.5) | ~jnp.isfinite(u), axis=-1)
        if valid is not None:
            out = out & valid
        u = eqx.error_if(u, jnp.any(out), "GridGP: a point lies outside the candidate grid")
        rc = jnp.clip(jnp.round(u), 0, hi).astype(jnp.int32)
        return rc[:, 0], rc[:, 1]

    def _scatter(self, X, z, valid, y0=None, n0=None):
        r, c = self.pixels(X, valid)
        dtype = z.dtype
        w = valid.astype(dtype)
        s = (jnp.zeros(self.shape, dtype) if y0 is None else y0).at[r, c].add(w * z)
        n = (jnp.zeros(self.shape, dtype) if n0 is None else n0).at[r, c].add(w)
        return s, n

    def _images(self, obs: Observations, scaler: Standardizer):
        z = jnp.where(obs.mask, (obs.y - scaler.shift) / scaler.scale, 0.0)
        s, n = self._scatter(obs.X, z, obs.mask)
        return jnp.where(n > 0, s / jnp.maximum(n, 1.0), 0.0), (n > 0).astype(z.dtype)

    # --- protocol ---------------------------------------------------------------------------
    def _solve(self, key, params, scaler, y, mask) -> GridState:
        mom = grid_posterior(key, params, y, mask, self.kernel, num_samples=self.num_samples,
                             settings=self.settings)  # fmt: skip
        return GridState(params, scaler, y, mask, mom.mean, mom.var, key, mom.iterations)

    def init(self, key, obs: Observations) -> GridState:
        dtype = obs.y.dtype
        params = {
            "lengthscale": jnp.full((2,), self.init_lengthscale, dtype),
            "variance": jnp.ones((), dtype),
            "noise": jnp.asarray(self.init_noise, dtype),
        }
        return self._fit(key, params, obs, self.init_steps)

    def update(self, state: GridState, obs: Observations, key) -> GridState:
        return self._fit(key, state.params, obs, self.refit_steps)

    def _fit(self, key, params, obs, steps: int) -> GridState:
        scaler = Standardizer.fit(obs)
        y, mask = self._images(obs, scaler)
        k1, k2 = jax.random.split(key)
        if steps > 0:
            params, _ = fit_grid_map(
                k1, y, mask, self.kernel, params, num_steps=steps,
                settings=self.settings, prior_lengthscale=jnp.full((2,), self.init_lengthscale),
            )  # fmt: skip
        return self._solve(k2, params, scaler, y, mask)

    def predictive(self, state: GridState, X, *, key=None, num_draws: int = 0) -> Predictive:
        r, c = self.pixels(jnp.asarray(X, state.y.dtype))
        draws = None
        if num_draws > 0:
            if key is None:
                raise ValueError("num_draws > 0 needs a key")
            D = grid_draws(key, state.params, state.y, state.mask, self.kernel, num_draws,
                           settings=self.settings, mean=state.mean)  # fmt: skip
            draws = D[:, r, c]
        pred = Predictive(mean=state.mean[r, c][None], var=state.var[r, c][None], draws=draws)
        return model_to_original(pred, state.scaler)

    def condition(self, state: GridState, X, y) -> GridState:
        sc = state.scaler
        z = (jnp.asarray(y, state.y.dtype) - sc.shift) / sc.scale
        n0 = state.mask  # one measurement a pixel after averaging
        s, n = self._scatter(jnp.asarray(X, state.y.dtype), z, jnp.ones(z.shape, bool),
                             state.y * n0, n0)  # fmt: skip
        ynew = jnp.where(n > 0, s / jnp.maximum(n, 1.0), 0.0)
        key = jax.random.fold_in(state.key, 1)
        return self._solve(key, state.params, sc, ynew, (n > 0).astype(ynew.dtype))

    def length_scale(self, state: GridState) -> Array:
        return state.params["lengthscale"] * self.step

    def summary(self, state: GridState) -> dict[str, Any]:
        p = state.params
        return {"lengthscale": p["lengthscale"] * self.step, "variance": p["variance"],
                "noise": p["noise"], "cg_iterations": state.iterations}  # fmt: skip
