"""Covariance kernels (installed as ``jaxscope.kernels``)."""

from .base import (
    Constant,
    FunctionKernel,
    Kernel,
    Product,
    Scaled,
    Sum,
    Transformed,
    White,
    as_points,
)
from .dot import Linear, Polynomial
from .stationary import (
    RBF,
    Matern12,
    Matern32,
    Matern52,
    Periodic,
    RationalQuadratic,
    Stationary,
)

__all__ = [
    "Kernel", "Sum", "Product", "Scaled", "Transformed", "FunctionKernel", "Constant", "White",
    "Stationary", "RBF", "Matern12", "Matern32", "Matern52", "RationalQuadratic", "Periodic",
    "Linear", "Polynomial", "as_points", "by_name",
]

_NAMES = {
    "rbf": RBF, "matern12": Matern12, "matern32": Matern32, "matern52": Matern52,
    "rq": RationalQuadratic, "rationalquadratic": RationalQuadratic,
}


def by_name(name: str) -> type[Stationary]:
    """Stationary kernel class from a name such as ``"rbf"`` or ``"matern52"``."""
    try:
        return _NAMES[name.lower().replace("_", "").replace("-", "")]
    except KeyError:
        raise ValueError(f"unknown kernel {name!r}; choose one of {sorted(_NAMES)}") from None
