"""Physical / parametric models (installed as ``jaxscope.probmodels``)."""

from .base import ProbModel

__all__ = ["ProbModel"]
