"""Decisions: surrogate, policy, selector and units, the three pieces every campaign step uses.

* :mod:`~jaxscope.decide.surrogate`: the :class:`Surrogate` protocol (``init``/``update``/
  ``predictive``/``condition``) and :class:`Belief`; :mod:`~jaxscope.decide.gp_surrogates`:
  :class:`MAPGP`, :class:`NUTSGP`, :class:`HeldGP`; :mod:`~jaxscope.decide.grid_surrogate`:
  :class:`GridGP` (the structured GP of whole images); :mod:`~jaxscope.decide.hypotheses` and
  :mod:`~jaxscope.decide.hypothesis_learning`: competing physical models fitted in one program
  (:class:`HypothesisSet`, :class:`HypothesisLearner`);
* :mod:`~jaxscope.decide.policy`: acquisition rules + penalties + their state;
  :mod:`~jaxscope.decide.acquisition` (rules), :mod:`~jaxscope.decide.lookahead` (knowledge
  gradient), :mod:`~jaxscope.decide.penalties` (masks, memories, travel cost);
* :mod:`~jaxscope.decide.select`: :class:`Argmax`, :class:`Exclusion`, :class:`Believer`,
  :class:`JointMC`; :mod:`~jaxscope.decide.fantasy` (the one fantasy engine),
  :mod:`~jaxscope.decide.joint` (qEI/qUCB), :mod:`~jaxscope.decide.continuous` (box search);
* :mod:`~jaxscope.decide.units`: original, model and utility units in one place.
"""

from . import acquisition, continuous, fantasy, joint, lookahead, penalties, units
from .gp_surrogates import MAPGP, NUTSGP, CachedGPBelief, GPBelief, GPState, HeldGP
from .grid_surrogate import GridGP, GridState
from .hypotheses import HypothesisSet, StackedFamily
from .hypothesis_learning import (
    HYPOTHESIS_RULES,
    HypothesisLearner,
    HypothesisScores,
    HypothesisState,
    HypothesisTrace,
)
from .policy import (
    PENALTY_NAMES,
    FunctionPenalty,
    InverseDistance,
    Penalty,
    PenaltyContext,
    Policy,
    PolicyState,
    RecentPointsMemory,
    TravelCost,
    make_policy,
    penalties_by_name,
)
from .select import (
    Argmax,
    Believer,
    Exclusion,
    JointMC,
    SelectContext,
    Selector,
    nms,
    selector_by_name,
)
from .surrogate import Belief, FantasyBelief, Surrogate

__all__ = [
    "acquisition", "continuous", "fantasy", "joint", "lookahead", "penalties", "units",
    "GPState", "HeldGP", "MAPGP", "GridGP", "GridState", "NUTSGP", "CachedGPBelief",
    "GPBelief", "FunctionPenalty",
    "InverseDistance", "Penalty", "PenaltyContext", "Policy", "PolicyState",
    "RecentPointsMemory", "TravelCost", "make_policy", "penalties_by_name", "PENALTY_NAMES",
    "Argmax", "Believer", "Exclusion",
    "JointMC", "SelectContext", "Selector", "nms", "selector_by_name", "Belief",
    "FantasyBelief", "Surrogate", "HypothesisSet", "StackedFamily", "HYPOTHESIS_RULES",
    "HypothesisLearner", "HypothesisScores", "HypothesisState", "HypothesisTrace",
]  # fmt: skip
