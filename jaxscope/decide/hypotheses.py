r"""Competing structured models as one stacked family: padded parameter vectors and a switch.

Models with different parameter structures cannot be stacked by ``vmap`` directly. A
:class:`HypothesisSet` flattens every hypothesis's physics parameters (unconstrained) into one
vector of the largest length, followed by the parameters of the residual GP and the noise, which
all hypotheses share:

.. code-block:: text

    u = [ u_phys (P, hypothesis h uses the first P_h; the rest is padding) | u_residual ]

:class:`StackedFamily` is a :class:`~jaxscope.gp.ModelFamily` over that vector for a *traced*
hypothesis index ``h``: one NUTS program serves every hypothesis, so ``vmap`` over ``(h, chain)``
fits H hypotheses × C chains in one compiled call. The physics part (log prior, Jacobian, mean
values) is a ``lax.switch`` over the hypotheses; under ``vmap`` a switch runs every branch, so the
switch holds only the cheap part (O(n) mean values), and the O(n³) GP part (one Cholesky) is
outside it, once per lane. Padding entries get a standard normal density: NUTS samples them as
independent N(0, 1), which leaves the hypothesis's own posterior unchanged.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jaxtyping import Array, Float, Int
from numpyro.distributions.transforms import biject_to

from ..gp import GP, Observations, ParametricMean, Params
from ..gp.structured import StructuredFamily, prior_center
from .gp_surrogates import GPState


def _entries(priors: dict) -> tuple[tuple[str, tuple, tuple], ...]:
    """``(name, constrained shape, unconstrained shape)`` of each prior, sorted by name."""
    out = []
    for k in sorted(priors):
        p = priors[k]
        shape = tuple(p.batch_shape + p.event_shape)
        out.append((k, shape, tuple(biject_to(p.support).inverse_shape(shape))))
    return tuple(out)


def _size(shape) -> int:
    return int(np.prod(shape, dtype=int))


def _unpack(flat, entries, which: int):
    """``name -> array`` from the leading entries of ``flat`` (``which`` 1: constrained shapes,
    2: unconstrained)."""
    out, o = {}, 0
    for e in entries:
        n = _size(e[which])
        out[e[0]] = jnp.reshape(flat[o : o + n], e[which])
        o += n
    return out


def _pack(values: dict, entries, which: int, length: int, dtype):
    parts = [jnp.reshape(jnp.asarray(values[e[0]], dtype), (-1,)) for e in entries]
    flat = jnp.concatenate(parts) if parts else jnp.zeros((0,), dtype)
    return jnp.pad(flat, (0, length - flat.shape[0]))


def _to_constrained(priors: dict, entries, u: dict) -> tuple[Params, Any]:
    """Constrained values, and ``log p(θ) + log|dθ/du|``."""
    params, lp = {}, 0.0
    for k, _, _ in entries:
        t = biject_to(priors[k].support)
        params[k] = t(u[k])
        lp = lp + jnp.sum(t.log_abs_det_jacobian(u[k], params[k]))
        lp = lp + jnp.sum(priors[k].log_prob(params[k]))
    return params, lp


class StackedMean(eqx.Module):
    """The physics mean of hypothesis ``p["h"]`` (model units) from its padded constrained
    vector ``p["theta"]``: a ``lax.switch`` over the hypotheses' functions. Static and
    hashable (functions and layouts only), so a GP holding it can be ``vmap``-ped."""

    fns: tuple = eqx.field(static=True)
    layouts: tuple = eqx.field(static=True)

    def value(self, x, h, theta):
        branches = [
            (lambda x, th, f=f, e=e: f(x, _unpack(th, e, 1)))
            for f, e in zip(self.fns, self.layouts, strict=True)
        ]
        return jax.lax.switch(h, branches, x, theta)

    def __call__(self, x, p):
        return (self.value(x, p["h"], p["theta"]) - p["_shift"]) / p["_scale"]


class HypothesisSet(eqx.Module):
    """H structured families (:class:`~jaxscope.gp.structured.StructuredFamily`) that share one
    residual (same kernel and residual priors); see the module docstring.

    Build with :meth:`from_physics`: ``HypothesisSet.from_physics({"second_order": m1, ...},
    kernel="matern52")``.
    """

    families: tuple[StructuredFamily, ...]
    labels: tuple[str, ...] = eqx.field(static=True)

    def __check_init__(self):
        if len(self.families) < 1 or len(self.labels) != len(self.families):
            raise ValueError("give one label per hypothesis and at least one hypothesis")
        f0 = self.families[0]
        for f in self.families[1:]:
            if f.kernel != f0.kernel or sorted(f.residual) != sorted(f0.residual):
                raise ValueError(
                    "hypotheses must share the residual (kernel and its prior names): "
                    f"{f0.kernel!r} {sorted(f0.residual)} vs {f.kernel!r} {sorted(f.residual)}"
                )

    @classmethod
    def from_physics(
        cls, physics: dict, *, kernel: str | None = "matern52", residual: dict | None = None,
        noise_floor: float = 1e-6,
    ) -> HypothesisSet:  # fmt: skip
        """One family per ``label -> physics model`` with a shared residual."""
        fams = tuple(
            StructuredFamily(m, kernel=kernel, residual=residual, noise_floor=noise_floor)
            for m in physics.values()
        )
        return cls(fams, tuple(physics))

    @property
    def num(self) -> int:
        return len(self.families)

    @property
    def kernel(self) -> str | None:
        return self.families[0].kernel

    @property
    def residual(self) -> dict:
        return self.families[0].residual

    def layouts(self):
        return tuple(_entries(f.physics.priors) for f in self.families)

    @property
    def physics_sizes(self) -> tuple[int, int]:
        """The padded ``(unconstrained, constrained)`` lengths of the physics part."""
        lay = self.layouts()
        pu = max(sum(_size(e[2]) for e in es) for es in lay)
        pc = max(sum(_size(e[1]) for e in es) for es in lay)
        return pu, pc

    @property
    def residual_size(self) -> int:
        return sum(_size(e[2]) for e in _entries(self.residual))

    @property
    def size(self) -> int:
        return self.physics_sizes[0] + self.residual_size

    def num_params(self) -> np.ndarray:
        """Unconstrained physics parameter count of each hypothesis (the mask's lengths)."""
        return np.array([sum(_size(e[2]) for e in es) for es in self.layouts()])

    def mean_module(self) -> StackedMean:
        return StackedMean(tuple(f.physics.fn for f in self.families), self.layouts())

    # --- flat vector <-> parameters --------------------------------------------------------------
    def physics_branch(self, h: int):
        """``u_phys -> (padded constrained θ, log prior + Jacobian + padding N(0,1))``."""
        fam, ent = self.families[h], _entries(self.families[h].physics.priors)
        pu, pc = self.physics_sizes
        used = sum(_size(e[2]) for e in ent)

        def branch(u_phys):
            params, lp = _to_constrained(fam.physics.priors, ent, _unpack(u_phys, ent, 2))
            pad = jnp.where(jnp.arange(pu) >= used, u_phys, 0.0)
            lp = lp + jnp.sum(jnp.where(jnp.arange(pu) >= used, -0.5 * pad**2, 0.0))
            lp = lp - 0.5 * (pu - used) * jnp.log(2 * jnp.pi)
            return _pack(params, ent, 1, pc, u_phys.dtype), lp

        return branch

    def physics(self, h, u_phys):
        """Padded constrained physics vector and its log density term, for a traced ``h``."""
        return jax.lax.switch(h, [self.physics_branch(i) for i in range(self.num)], u_phys)

    def residual_params(self, u_res) -> tuple[Params, Any]:
        ent = _entries(self.residual)
        return _to_constrained(self.residual, ent, _unpack(u_res, ent, 2))

    def split(self, u):
        pu = self.physics_sizes[0]
        return u[:pu], u[pu:]

    def init_flat(self, h: int, dtype=None) -> jax.Array:
        """The unconstrained prior centres of hypothesis ``h`` (padding 0), residual appended."""
        dtype = dtype or jnp.result_type(float)
        fam = self.families[h]
        pu = self.physics_sizes[0]

        def unc(priors):
            return {
                k: biject_to(p.support).inv(jnp.asarray(prior_center(p), dtype))
                for k, p in priors.items()
            }

        ent = _entries(fam.physics.priors)
        phys = _pack(unc(fam.physics.priors), ent, 2, pu, dtype)
        rent = _entries(self.residual)
        res = _pack(unc(self.residual), rent, 2, self.residual_size, dtype)
        return jnp.concatenate([phys, res])

    def physics_values(self, h: int, u) -> Params:
        """Constrained physics parameters of hypothesis ``h`` (static) from flat ``u`` with any
        leading axes."""
        fam, ent = self.families[h], _entries(self.families[h].physics.priors)
        pu = self.physics_sizes[0]

        def one(v):
            return _to_constrained(fam.physics.priors, ent, _unpack(v[:pu], ent, 2))[0]

        lead = u.shape[:-1]
        flat = jnp.reshape(u, (-1, u.shape[-1]))
        out = jax.vmap(one)(flat)
        return {k: jnp.reshape(v, lead + v.shape[1:]) for k, v in out.items()}


class StackedFamily(eqx.Module):
    """A :class:`~jaxscope.gp.ModelFamily` over the flat vector ``{"u": u}`` of hypothesis ``h``
    (a traced index) of a :class:`HypothesisSet`; targets in model units ``(y - shift)/scale``.

    ``constrain``/``unconstrain`` are the identity: ``u`` is unconstrained and the density holds
    every Jacobian. ``priors`` is nominal (a standard normal over ``u``) and only names the one
    parameter.
    """

    hypotheses: HypothesisSet
    h: Any
    shift: Any = 0.0
    scale: Any = 1.0

    @property
    def priors(self) -> dict:
        return {"u": dist.Normal(jnp.zeros(self.hypotheses.size), 1.0)}

    @property
    def names(self) -> tuple[str, ...]:
        return ("u",)

    def constrain(self, u: Params) -> Params:
        return dict(u)

    def unconstrain(self, params: Params) -> Params:
        return dict(params)

    def init_params(self, dtype=None) -> Params:
        inits = jnp.stack([self.hypotheses.init_flat(i, dtype) for i in range(self.hypotheses.num)])
        return {"u": inits[self.h]}

    def _parts(self, u):
        hs = self.hypotheses
        u_phys, u_res = hs.split(u)
        theta, lp = hs.physics(self.h, u_phys)
        res, lp_res = hs.residual_params(u_res)
        fam = hs.families[0]
        mean = ParametricMean(
            hs.mean_module(),
            {"theta": theta, "h": self.h, "_shift": self.shift, "_scale": self.scale},
        )
        gp = GP(
            kernel=fam.residual_kernel(res),
            noise=res["noise"] + fam.noise_floor,
            mean=mean,
            jitter=fam.jitter,
        )
        return gp, lp + lp_res

    def build(self, params: Params) -> GP:
        return self._parts(params["u"])[0]

    def log_density_unconstrained(self, u: Params, obs: Observations):
        gp, lp = self._parts(u["u"])
        return gp.log_marginal_likelihood(obs) + lp

    def log_posterior(self, params: Params, obs: Observations):
        return self.log_density_unconstrained(params, obs)


class HypothesisScores(eqx.Module):
    """Per-hypothesis scores of one step (each ``(H,)``)."""

    elpd_loo: Float[Array, " h"]
    waic: Float[Array, " h"]
    p_loo: Float[Array, " h"]
    pareto_k: Float[Array, " h"]
    probs: Float[Array, " h"]
    median_var: Float[Array, " h"]
    lpd_new: Float[Array, " h"]
    rhat: Float[Array, " h"]
    restarts: Int[Array, " h"]


class HypothesisTrace(eqx.Module):
    """One row per step: chosen hypothesis, probabilities, rewards, cumulative new-point lpd."""

    selected: Int[Array, " t"]
    probs: Float[Array, "t h"]
    rewards: Float[Array, "t h"]
    elpd_loo: Float[Array, "t h"]
    lpd_new: Float[Array, "t h"]


class HypothesisState(GPState):
    """:class:`~jaxscope.decide.GPState` of the chosen hypothesis (``post``, ``samples``) plus
    every hypothesis's flat samples ``u`` ``(H, K, P)``, the chains' last draws ``last``
    ``(H, C, P)``, the reward ``record`` ``(H, 2)`` (visits, mean reward), the chosen hypothesis,
    the previous median variance, the step count, the scores and the trace."""

    u: Float[Array, "h k p"] = None
    last: Float[Array, "h c p"] = None
    record: Float[Array, "h 2"] = None
    selected: Int[Array, ""] = None
    prev_obj: Float[Array, ""] = None
    count: Int[Array, ""] = None
    step: Int[Array, ""] = None
    scores: HypothesisScores = None
    trace: HypothesisTrace = None
