r"""Active hypothesis learning as a surrogate: H competing physical models × C chains, one program.

:class:`HypothesisLearner` is a :class:`~jaxscope.decide.Surrogate`, so the compiled campaign,
the host runner and the agent run it unchanged. Each :meth:`~HypothesisLearner.update` is one
step of the hypothesis-learning loop of Ziatdinov, Liu, Morozovska, Eliseev, Zhang, Takeuchi &
Kalinin, "Hypothesis learning in automated experiment" (Advanced Materials 2022,
arXiv:2112.06649), in one compiled call:

1. *choose* the hypothesis of this step: during the first ``warmup_steps`` steps all are fitted
   and the one with the lowest median predictive variance is credited; afterwards the
   ``hypothesis_rule`` picks one from the running rewards (``"eps_greedy"``, ``"softmax"`` with
   ``temperature``) or from the posterior model probabilities (``"thompson"``);
2. *fit* the hypotheses (``fit="all"``, or only the chosen one after warm-up with
   ``fit="selected"``, the paper's loop) by NUTS: H × C chains under one ``vmap`` of one NUTS
   program (:class:`~jaxscope.decide.hypotheses.StackedFamily`); chains whose mean log density
   is far below their siblings' (``stuck_nats``) or whose hypothesis has split-R̂ above
   ``max_rhat`` restart from the best sibling's last draw, up to ``num_restarts`` times, inside
   the same call;
3. *score* every hypothesis: PSIS-LOO and WAIC (from leave-one-out conditionals), posterior model
   probabilities (pseudo-BMA weights ∝ exp(elpd_loo)), the log predictive density of the newest
   measurements under the previous fit, the median predictive variance over unmeasured
   candidates, and the *reward* of the chosen one (+1 when its median variance fell below the
   previous step's, −1 otherwise; running mean per hypothesis);
4. *predict* with the chosen hypothesis: the campaign's acquisition (``"maxvar"`` is the paper's)
   measures where that model is least certain.

The trace of every step (chosen hypothesis, probabilities, rewards, elpd) is part of the state
(``max_steps`` rows), so a compiled campaign returns the whole history.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..gp import Observations, Posterior, Standardizer, fit_nuts, from_posterior
from ..gp.criteria import pseudo_bma_weights, psis_loo, split_rhat, waic
from ..gp.structured import loo_log_densities
from .gp_surrogates import GPSurrogate
from .hypotheses import (
    HypothesisScores,
    HypothesisSet,
    HypothesisState,
    HypothesisTrace,
    StackedFamily,
)

HYPOTHESIS_RULES = ("eps_greedy", "softmax", "thompson")
FIT = ("all", "selected")
LANES = ("auto", "vmap", "map")


class HypothesisLearner(GPSurrogate):
    """The hypothesis-learning surrogate (see the module docstring).

    Attributes:
        hypotheses: the competing models (:class:`~jaxscope.decide.HypothesisSet`).
        candidates: the campaign's candidates (for the variance over unmeasured points).
        hypothesis_rule: ``"eps_greedy"`` (``eps``), ``"softmax"`` (``temperature``) or
            ``"thompson"`` (a hypothesis drawn from the posterior model probabilities).
        warmup_steps: steps (``init`` included) that fit and score every hypothesis.
        fit: ``"all"`` hypotheses every step, or only the ``"selected"`` one after warm-up.
        num_chains, num_warmup, num_samples: NUTS per hypothesis; ``num_keep`` samples (evenly
            thinned over all chains) form the predictive and the scores.
        num_restarts, stuck_nats, max_rhat: stuck-chain restarts (see the module docstring).
        lanes: how the (hypothesis, chain) lanes share the one NUTS program: ``"vmap"``
            (batched: every lane runs until the longest trajectory ends; the switch runs every
            branch), ``"map"`` (``lax.map``, one lane after another) or ``"auto"`` (map on CPU,
            where it compiles in half the time and runs faster, vmap on accelerators; measured
            by ``benchmarks/hypotheses.py``).
        max_tree_depth: NUTS tree depth limit (8: at most 255 leapfrog steps a draw; a wrong
            hypothesis's posterior can be so ill-conditioned that depth 10 runs 1023 steps on
            every draw, 8× the time, for no better answer).
        max_steps: rows of the trace.
        new_window: the newest measurements scored by ``lpd_new`` (the last ``new_window``).
    """

    hypotheses: HypothesisSet
    candidates: Float[Array, "m d"]
    hypothesis_rule: str = eqx.field(static=True, default="eps_greedy")
    eps: float = 0.4
    temperature: float = 1.0
    warmup_steps: int = eqx.field(static=True, default=3)
    fit: str = eqx.field(static=True, default="all")
    num_chains: int = eqx.field(static=True, default=2)
    num_warmup: int = eqx.field(static=True, default=300)
    num_samples: int = eqx.field(static=True, default=300)
    num_keep: int = eqx.field(static=True, default=100)
    num_restarts: int = eqx.field(static=True, default=1)
    stuck_nats: float = eqx.field(static=True, default=10.0)
    max_rhat: float = eqx.field(static=True, default=1.1)
    max_steps: int = eqx.field(static=True, default=64)
    new_window: int = eqx.field(static=True, default=4)
    dense_mass: bool = eqx.field(static=True, default=True)
    lanes: str = eqx.field(static=True, default="auto")
    max_tree_depth: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        if self.hypothesis_rule not in HYPOTHESIS_RULES:
            raise ValueError(
                f"unknown hypothesis_rule {self.hypothesis_rule!r}; use one of {HYPOTHESIS_RULES}"
            )
        if self.lanes not in LANES:
            raise ValueError(f"unknown lanes {self.lanes!r}; use one of {LANES}")
        if self.fit not in FIT:
            raise ValueError(f"unknown fit {self.fit!r}; use one of {FIT}")
        if self.warmup_steps < 1:
            raise ValueError("warmup_steps must be at least 1 (init is a warm-up step)")
        if self.num_keep > self.num_chains * self.num_samples:
            raise ValueError(
                f"num_keep={self.num_keep} exceeds the {self.num_chains * self.num_samples} "
                "NUTS draws"
            )

    # --- NUTS over (hypothesis, chain) lanes ---------------------------------------------------
    def _fit_lanes(self, fam0: StackedFamily, obs_s, hs, key, init):
        """NUTS for lanes ``hs`` (L,) from ``init`` (L, P): samples (L, S, P), log density."""

        def one(h, k, u0):
            fam = eqx.tree_at(lambda f: f.h, fam0, h)
            res = fit_nuts(
                fam, obs_s, k, num_warmup=self.num_warmup, num_samples=self.num_samples,
                num_chains=1, dense_mass=self.dense_mass, init={"u": u0},
                max_tree_depth=self.max_tree_depth,
            )  # fmt: skip
            return res.samples["u"][0], res.log_density[0]

        keys = jax.random.split(key, hs.shape[0])
        lanes = self.lanes
        if lanes == "auto":
            lanes = "map" if jax.default_backend() == "cpu" else "vmap"
        if lanes == "vmap":
            return jax.vmap(one)(hs, keys, init)
        return jax.lax.map(lambda a: one(*a), (hs, keys, init))

    def _fit(self, fam0, obs_s, key, init, hs):
        """Fit lanes of hypotheses ``hs`` (L,) × C chains with restarts; returns the chains'
        last draws ``(L, C, P)``, samples ``(L, C, S, P)``, R̂ ``(L,)``, restarts ``(L,)``.

        One ``while_loop`` holds the only NUTS program: its first pass runs every chain, later
        passes (at most ``num_restarts``) rerun the stuck ones from the best sibling's last draw.
        """
        L, C = hs.shape[0], self.num_chains
        lane_h = jnp.repeat(hs, C)
        P, S = init.shape[-1], self.num_samples
        dt = init.dtype

        def stuck(s, ld):
            mean_ld = jnp.mean(ld, axis=2)  # (L, C)
            far = mean_ld < jnp.max(mean_ld, axis=1, keepdims=True) - self.stuck_nats
            rhat = jnp.max(jax.vmap(split_rhat)(s), axis=-1)  # (L,)
            worst = mean_ld == jnp.min(mean_ld, axis=1, keepdims=True)
            bad = far | ((rhat > self.max_rhat)[:, None] & worst & (C > 1))
            return bad, rhat

        def cond(c):
            i, bad = c[0], c[4]
            return (i == 0) | ((i <= self.num_restarts) & jnp.any(bad))

        def body(c):
            i, key, s, ld, bad, rhat, restarts = c
            key, k = jax.random.split(key)
            best = jnp.argmax(jnp.mean(ld, axis=2), axis=1)  # (L,)
            start = s[jnp.arange(L), best, -1]  # (L, P): the best sibling's last draw
            start = jnp.where(i == 0, init, jnp.where(bad[..., None], start[:, None], s[:, :, -1]))
            s2, ld2 = self._fit_lanes(fam0, obs_s, lane_h, k, start.reshape(L * C, P))
            s2, ld2 = s2.reshape(L, C, S, P), ld2.reshape(L, C, S)
            s = jnp.where(bad[..., None, None], s2, s)
            ld = jnp.where(bad[..., None], ld2, ld)
            restarts = restarts + (jnp.any(bad, axis=1) & (i > 0))
            bad, rhat = stuck(s, ld)
            return i + 1, key, s, ld, bad, rhat, restarts

        c0 = (
            jnp.zeros((), jnp.int32), key, jnp.zeros((L, C, S, P), dt), jnp.zeros((L, C, S), dt),
            jnp.ones((L, C), bool), jnp.ones((L,), dt), jnp.zeros((L,), jnp.int32),
        )  # fmt: skip
        c = jax.lax.while_loop(cond, body, c0)
        s = c[2]
        return s[:, :, -1], s, c[5], c[6]

    # --- scores ----------------------------------------------------------------------------------
    def _posteriors(self, fam0, u, obs_s):
        """(H, K) posteriors of flat samples ``u`` (H, K, P) on ``obs_s``."""
        H = u.shape[0]

        def one(h, v):
            fam = eqx.tree_at(lambda f: f.h, fam0, h)
            return fam.build({"u": v}).condition(obs_s)

        hs = jnp.broadcast_to(jnp.arange(H, dtype=jnp.int32)[:, None], u.shape[:2])
        return eqx.filter_vmap(eqx.filter_vmap(one))(hs, u)

    def _median_var(self, post: Posterior, scaler, obs: Observations):
        """Median over unmeasured candidates of the mixture variance of ``f`` (original
        units), per hypothesis."""
        C = jnp.asarray(self.candidates, obs.X.dtype)
        same = jnp.all(obs.X[:, None, :] == C[None], axis=-1) & obs.mask[:, None]
        unmeasured = ~jnp.any(same, axis=0)

        def one(p):
            pred = from_posterior(p, C, chunk_size=self.chunk_size)
            m, v = pred.mean, pred.var  # (K, M)
            total = jnp.mean(v, 0) + jnp.var(m, 0)
            return jnp.nanmedian(jnp.where(unmeasured, total, jnp.nan)) * scaler.scale**2

        return eqx.filter_vmap(one)(post)

    def _lpd_new(self, state: HypothesisState, obs: Observations):
        """log mean-density (original units) of the newest rows of ``obs`` not in the previous
        fit, under the previous fit's samples, per hypothesis."""
        W = min(self.new_window, obs.capacity)
        start = jnp.clip(obs.count - W, 0, obs.capacity - W)
        idx = start + jnp.arange(W)
        new = (idx >= state.count) & (idx < obs.count)
        prev = eqx.tree_at(lambda o: (o.mask, o.count), obs, (obs.mask & (jnp.arange(
            obs.capacity) < state.count), state.count))  # fmt: skip
        fam0 = self.hypotheses_family(state.scaler)
        post = self._posteriors(fam0, state.u, state.scaler.apply(prev))
        Xn = obs.X[idx]
        zn = (obs.y[idx] - state.scaler.shift) / state.scaler.scale

        def one(p):  # (K,) posteriors of one hypothesis
            pred = from_posterior(p, Xn)
            var = pred.var + p.gp.noise[:, None]
            ll = -0.5 * (jnp.log(2 * jnp.pi * var) + (zn - pred.mean) ** 2 / var)
            ll = jax.scipy.special.logsumexp(ll, axis=0) - jnp.log(ll.shape[0])
            return jnp.sum(jnp.where(new, ll - jnp.log(state.scaler.scale), 0.0))

        return eqx.filter_vmap(one)(post)

    def hypotheses_family(self, scaler: Standardizer) -> StackedFamily:
        return StackedFamily(self.hypotheses, jnp.zeros((), jnp.int32), scaler.shift, scaler.scale)

    # --- the step ------------------------------------------------------------------------------
    def choose(self, key, state: HypothesisState) -> Array:
        """The hypothesis index the rule picks from ``state`` (before this step's fit)."""
        H = self.hypotheses.num
        k1, k2 = jax.random.split(key)
        rewards = state.record[:, 1]
        if self.hypothesis_rule == "eps_greedy":
            explore = jax.random.uniform(k1) < self.eps
            return jnp.where(explore, jax.random.randint(k2, (), 0, H), jnp.argmax(rewards)).astype(
                jnp.int32
            )
        if self.hypothesis_rule == "softmax":
            return jax.random.categorical(k2, rewards / self.temperature).astype(jnp.int32)
        return jax.random.categorical(k2, jnp.log(state.scores.probs)).astype(jnp.int32)

    def _advance(self, state: HypothesisState, obs: Observations, key) -> HypothesisState:
        H, C = self.hypotheses.num, self.num_chains
        k_sel, k_fit = jax.random.split(key)
        lpd_new = self._lpd_new(state, obs)
        scaler = self._scaler(obs)
        obs_s = scaler.apply(obs)
        fam0 = self.hypotheses_family(scaler)
        warm = state.step < self.warmup_steps
        choice = self.choose(k_sel, state)
        S, K = C * self.num_samples, self.num_keep
        thin = jnp.round(jnp.linspace(0, S - 1, K)).astype(jnp.int32)

        def keep(s):  # (L, C, S, P) -> (L, K, P) evenly thinned over all chains
            return s.reshape(s.shape[0], S, -1)[:, thin]

        if self.fit == "all":  # every hypothesis, H × C lanes in one vmap
            hs = jnp.arange(H, dtype=jnp.int32)
            last, s, rhat, restarts = self._fit(fam0, obs_s, k_fit, state.last, hs)
            u = keep(s)
        else:  # the chosen one; during warm-up each in turn (one NUTS program either way)

            def one(i, c):
                last, u, rhat, restarts = c
                h = jnp.where(warm, i, choice).astype(jnp.int32)
                k = jax.random.fold_in(k_fit, i)
                l1, s1, r1, n1 = self._fit(fam0, obs_s, k, last[h][None], h[None])
                return (last.at[h].set(l1[0]), u.at[h].set(keep(s1)[0]),
                        rhat.at[h].set(r1[0]), restarts.at[h].set(n1[0]))  # fmt: skip

            c0 = (state.last, state.u, state.scores.rhat, state.scores.restarts)
            last, u, rhat, restarts = jax.lax.fori_loop(0, jnp.where(warm, H, 1), one, c0)
        post = self._posteriors(fam0, u, obs_s)
        ll = jax.vmap(jax.vmap(loo_log_densities))(post) - jnp.log(scaler.scale)  # (H, K, n)
        loo = jax.vmap(lambda a: psis_loo(a, obs.mask))(ll)
        wa = jax.vmap(lambda a: waic(a, obs.mask))(ll)
        probs = pseudo_bma_weights(loo.elpd)
        med = self._median_var(post, scaler, obs)

        # rewards (gpax.hypo's record: visits, running mean reward)
        rec = state.record
        warm_best = jnp.argmin(jnp.where(jnp.isfinite(med), med, jnp.inf)).astype(jnp.int32)
        rec_w = rec.at[:, 0].add(1.0).at[warm_best, 1].add(1.0)
        last_warm = state.step == self.warmup_steps - 1
        rec_w = rec_w.at[:, 1].set(
            jnp.where(last_warm, rec_w[:, 1] / self.warmup_steps, rec_w[:, 1])
        )
        r = jnp.where(med[choice] < state.prev_obj, 1.0, -1.0)
        n_c = rec[choice, 0]
        rec_e = rec.at[choice, 1].set((n_c * rec[choice, 1] + r) / (n_c + 1)).at[choice, 0].add(1.0)
        selected = jnp.where(warm, warm_best, choice)
        record = jnp.where(warm, rec_w, rec_e)

        scores = HypothesisScores(
            elpd_loo=loo.elpd, waic=wa.elpd, p_loo=loo.p_loo,
            pareto_k=jnp.max(loo.pareto_k, axis=1), probs=probs, median_var=med,
            lpd_new=lpd_new, rhat=rhat, restarts=restarts,
        )  # fmt: skip
        row = jnp.minimum(state.step, self.max_steps - 1)
        tr = state.trace
        cum = jnp.where(state.step > 0, tr.lpd_new[jnp.maximum(row - 1, 0)], 0.0)
        trace = HypothesisTrace(
            selected=tr.selected.at[row].set(selected),
            probs=tr.probs.at[row].set(probs),
            rewards=tr.rewards.at[row].set(record[:, 1]),
            elpd_loo=tr.elpd_loo.at[row].set(loo.elpd),
            lpd_new=tr.lpd_new.at[row].set(cum + lpd_new),
        )
        sel_post = jax.tree_util.tree_map(lambda a: a[selected], post)
        residual = self.hypotheses.residual_params(
            self.hypotheses.split(jnp.mean(u[selected], axis=0))[1]
        )[0]
        samples = {"u": u[selected]}
        return HypothesisState(
            params=residual, samples=samples, scaler=scaler, post=sel_post, cache=None,
            u=u, last=last, record=record, selected=selected, prev_obj=med[selected],
            count=obs.count, step=state.step + 1, scores=scores, trace=trace,
        )  # fmt: skip

    def init(self, key, obs: Observations) -> HypothesisState:
        """The first warm-up step: every hypothesis fitted from its prior centres (compiled as
        one program also when called eagerly, e.g. by ``campaign.init``)."""
        return _init(self, key, obs)

    def update(self, state: HypothesisState, obs: Observations, key) -> HypothesisState:
        return _update(self, state, obs, key)

    def start(self, key, obs: Observations) -> HypothesisState:
        """:meth:`init` without its own ``jit`` (what :meth:`init` compiles)."""
        H, C, K, T = self.hypotheses.num, self.num_chains, self.num_keep, self.max_steps
        dt = obs.X.dtype
        u0 = jnp.stack([self.hypotheses.init_flat(i, dt) for i in range(H)])
        zf = jnp.zeros((H,), dt)
        zi = jnp.zeros((H,), jnp.int32)
        scores = HypothesisScores(zf, zf, zf, zf, jnp.full((H,), 1.0 / H, dt), zf, zf, zf, zi)
        trace = HypothesisTrace(
            selected=jnp.full((T,), -1, jnp.int32), probs=jnp.full((T, H), jnp.nan, dt),
            rewards=jnp.full((T, H), jnp.nan, dt), elpd_loo=jnp.full((T, H), jnp.nan, dt),
            lpd_new=jnp.full((T, H), jnp.nan, dt),
        )  # fmt: skip
        scaler = self._scaler(obs)
        state = HypothesisState(
            params={}, samples={}, scaler=scaler, post=None, cache=None,
            u=jnp.broadcast_to(u0[:, None], (H, K, u0.shape[1])),
            last=jnp.broadcast_to(u0[:, None], (H, C, u0.shape[1])),
            record=jnp.zeros((H, 2), dt), selected=jnp.zeros((), jnp.int32),
            prev_obj=jnp.asarray(jnp.inf, dt), count=obs.count, step=jnp.zeros((), jnp.int32),
            scores=scores, trace=trace,
        )  # fmt: skip
        return self._advance(state, obs, key)

    def length_scale(self, state) -> Array:
        if self.hypotheses.kernel is None:
            return super().length_scale(state)  # no lengthscale: refuses clearly
        return state.params["lengthscale"]

    def summary(self, state: HypothesisState) -> dict:
        s = state.scores
        return {
            "hypothesis": state.selected, "probs": s.probs, "rewards": state.record[:, 1],
            "elpd_loo": s.elpd_loo, "waic": s.waic, "median_var": s.median_var,
            "rhat": s.rhat, "restarts": s.restarts,
        }  # fmt: skip

    def physics_samples(self, state: HypothesisState, h: int) -> dict:
        """Constrained physics parameter samples ``(K, ...)`` of hypothesis ``h``."""
        return self.hypotheses.physics_values(h, state.u[h])


@eqx.filter_jit
def _init(learner: HypothesisLearner, key, obs):
    return learner.start(key, obs)


@eqx.filter_jit
def _update(learner: HypothesisLearner, state, obs, key):
    return learner._advance(state, obs, key)
