"""Hypothesis-learning campaigns: the competing laws of a problem and the learner's defaults.

``hypothesis_config(problem)`` is what ``jaxscope campaign --problem combi_library`` runs: the
three transition laws of :mod:`jaxscope.probmodels` (second order, first order, smeared) as
structured models without a GP (physics mean + noise), fitted by NUTS at every step, the
``eps_greedy`` rule of the hypothesis-learning paper, and the maximum-variance acquisition of the
chosen law.

Example:
    >>> sim = make_simulator("combi_library", key=jax.random.key(3))
    >>> config = hypothesis_config(sim)
    >>> final = run_campaign(jax.random.key(0), config, sim, num_init=4, num_steps=12)
    >>> final.model.trace.probs          # posterior probability of each law, per step
"""

from __future__ import annotations

from typing import Any

from .. import probmodels
from ..decide import HypothesisLearner, HypothesisSet
from .config import CampaignConfig, make_config

#: the settings of a hypothesis-learning campaign (CLI and library)
HYPOTHESIS_DEFAULTS: dict[str, Any] = {
    "acquisition": "maxvar",
    "kernel": None,
    "hypothesis_rule": "eps_greedy",
    "num_init": 4,
    "steps": 12,
    "num_chains": 2,
    "num_warmup": 300,
    "num_samples": 300,
}

#: the competing laws of each problem with a hypothesis-learning default
PROBLEM_LAWS = {"combi_library": ("second_order", "first_order", "smeared")}


def transition_hypotheses(kernel: str | None = None, laws=PROBLEM_LAWS["combi_library"]):
    """The phase-transition laws of :mod:`jaxscope.probmodels` as a
    :class:`~jaxscope.decide.HypothesisSet` (``kernel=None``: physics mean + noise)."""
    return HypothesisSet.from_physics({k: getattr(probmodels, k)() for k in laws}, kernel=kernel)


def hypothesis_config(
    problem: Any, hypotheses: HypothesisSet | None = None, *, max_steps: int = 64, **options: Any
) -> CampaignConfig:
    """A campaign that learns which hypothesis holds (defaults :data:`HYPOTHESIS_DEFAULTS`).

    ``options`` go to :class:`~jaxscope.decide.HypothesisLearner` (``hypothesis_rule``, ``eps``,
    ``fit``, ``num_chains``, ``num_warmup``, ``num_samples``, ...), except ``acquisition``.
    """
    d = {**HYPOTHESIS_DEFAULTS, **options}
    if hypotheses is None:
        laws = PROBLEM_LAWS.get(getattr(problem, "name", ""), PROBLEM_LAWS["combi_library"])
        hypotheses = transition_hypotheses(d["kernel"], laws)
    learner_opts = {
        k: v for k, v in d.items() if k not in ("acquisition", "kernel", "num_init", "steps")
    }
    learner = HypothesisLearner(hypotheses, problem.candidates, max_steps=max_steps, **learner_opts)
    return make_config(surrogate=learner, acquisition=d["acquisition"], track_rmse=False)
