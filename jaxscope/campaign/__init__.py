"""Campaigns: state, config, the pure step, the compiled scan, metrics and strategy batches.

* :mod:`~jaxscope.campaign.state`: :class:`CampaignState`, :class:`History`, :class:`Decision`;
* :mod:`~jaxscope.campaign.config`: :class:`CampaignConfig` (surrogate, policy, selector) and
  :func:`make_config`;
* :mod:`~jaxscope.campaign.step`: :func:`init`, :func:`init_random`, :func:`decide`,
  :func:`record`, :func:`step`;
* :mod:`~jaxscope.campaign.compiled`: a whole campaign as one ``lax.scan``;
* :mod:`~jaxscope.campaign.metrics`: regret, top-1 % found, map RMSE, cost;
* :mod:`~jaxscope.campaign.strategies`: rules × problems × seeds in one program, sharded;
* :mod:`~jaxscope.campaign.hypotheses`: hypothesis-learning campaigns (which law holds);
* :mod:`~jaxscope.campaign.dkl`: deep-kernel campaigns on image patches.
"""

from .compiled import run, run_campaign
from .config import BATCH_RULES, MODES, CampaignConfig, make_config, make_surrogate
from .defaults import CAMPAIGN_DEFAULTS
from .dkl import DKL_DEFAULTS, dkl_config
from .hypotheses import (
    HYPOTHESIS_DEFAULTS,
    PROBLEM_LAWS,
    hypothesis_config,
    transition_hypotheses,
)
from .metrics import campaign_metrics, map_rmse, step_cost
from .state import CampaignState, Decision, History
from .step import decide, init, init_random, match_candidates, record, step
from .strategies import batch_mesh, run_strategies

__all__ = [
    "run", "run_campaign", "CAMPAIGN_DEFAULTS", "BATCH_RULES", "MODES", "CampaignConfig",
    "make_config", "make_surrogate", "campaign_metrics", "map_rmse", "step_cost", "CampaignState",
    "Decision", "History", "decide", "init", "init_random", "match_candidates", "record", "step",
    "batch_mesh", "run_strategies", "HYPOTHESIS_DEFAULTS", "PROBLEM_LAWS", "hypothesis_config",
    "transition_hypotheses", "DKL_DEFAULTS", "dkl_config",
]  # fmt: skip
