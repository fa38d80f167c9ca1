"""The campaign's defaults, in one place.

Chosen by ``benchmarks/quality.py --choose``: every candidate default (acquisition rule × where
MAP refits start × priors) runs on every simulated problem, on the same seeds, seed points and
noise as BoTorch's standard loop; the choice is the candidate at least as good as BoTorch on
every problem (within the seeds' standard error) with the lowest mean regret relative to
random search. The table is the ``default_campaign_choice`` record of
``benchmarks/results/quality.json``, and a test checks that these defaults equal its choice.

Each default lives where it acts (the rule in :mod:`jaxscope.decide.acquisition`, the refit
start in :class:`~jaxscope.decide.MAPGP`, the priors in
:meth:`~jaxscope.gp.GPModel.for_candidates`); this module only collects them for
:func:`~jaxscope.campaign.make_config`'s readers and the command line.
"""

from __future__ import annotations

from types import MappingProxyType

from ..decide.acquisition import DEFAULT as DEFAULT_RULE
from ..decide.gp_surrogates import DEFAULT_REFIT
from ..gp.model import DEFAULT_PRIORS

#: rule, surrogate, penalty and budget of a campaign whose settings are not given
CAMPAIGN_DEFAULTS = MappingProxyType(
    {
        "acquisition": DEFAULT_RULE,
        "mode": "map",
        "priors": DEFAULT_PRIORS,
        "refit_from": DEFAULT_REFIT,
        "penalty": "none",
        "num_init": 10,
        "steps": 40,
    }
)
