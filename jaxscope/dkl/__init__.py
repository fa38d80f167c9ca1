"""Deep kernel learning: Flax feature extractors composed with a base kernel, trained jointly
with the GP head on the exact marginal likelihood; ensembles, a Bayesian head, embeddings.

* :mod:`~jaxscope.dkl.networks`: linen :class:`MLP` and :class:`CNN` (and why linen);
* :class:`DeepKernelFamily`: the GP family on learned features (patches looked up by
  coordinate, or vector inputs);
* :class:`DKLGP` (one network or a deep ensemble, Adam under ``vmap``) and :class:`DKLNUTS`
  (NUTS over the kernel hyperparameters with the network held): campaign surrogates;
* :func:`train`, :func:`train_channels`: the pure training step, and one GP per target channel.
"""

from .family import DeepKernelFamily, FeatureMap, default_priors
from .networks import CNN, MLP
from .surrogate import DKLGP, DKLNUTS, train, train_channels

__all__ = [
    "CNN", "MLP", "DeepKernelFamily", "FeatureMap", "default_priors", "DKLGP", "DKLNUTS",
    "train", "train_channels",
]  # fmt: skip
