"""Deep-kernel campaigns: image → patches → deep-kernel GP → acquisition → instrument →
scalarizer → observations.

``dkl_config(problem)`` is what ``jaxscope campaign --problem pfm_twin`` runs (and the
``eels_twin`` and ``stem4d_twin`` problems): the problem's structural image cut into a window
around every candidate pixel (:meth:`~jaxscope.instruments.ImageTwin.patches`, or ``patches=``
for a user's image), an MLP feature extractor on the flattened window (``network="cnn"``: a
small CNN) with an RBF head trained on the exact
marginal likelihood at every step (:class:`~jaxscope.dkl.DKLGP`: two members, one from the
previous step's weights and one from fresh weights, their predictive a mixture), and expected
improvement. Candidates stay pixel coordinates; the surrogate looks up
their patches.

Example:
    >>> sim = make_simulator("pfm_twin", key=jax.random.key(0), size=50)
    >>> config = dkl_config(sim)                         # 1225 candidates, 16-px windows
    >>> final = run_campaign(jax.random.key(1), config, sim, num_init=3, num_steps=50)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dkl import CNN, DKLGP, MLP, DeepKernelFamily
from ..images import Patches
from .config import CampaignConfig, make_config

#: the settings of a deep-kernel campaign (CLI and library)
DKL_DEFAULTS: dict[str, Any] = {
    "acquisition": "ei",
    "num_init": 3,
    "steps": 50,
    # an MLP on the flattened window (gpax viDKL's choice too); the CNN costs ~5x more a refit
    # on CPU (200 Adam steps at N = 200, 16-px windows: 2.9 s against 0.54 s)
    "network": "mlp",
    "latent": 2,
    # one warm-started member and one fresh member each refit (``DKLGP.refit_from``): a warm
    # member alone stopped finding the PFM twin's top-1 % pixels after ~100 steps (0.82 found
    # at 200 steps, 5 seeds) where the pair finds them all (1.00), at ~1.7x the time of one
    "num_members": 2,
    "train_steps": 200,
    "learning_rate": 1e-2,
    "refit_from": "previous+init",
    "shrink": 0.6,
    "perturb": 0.4,
    "batch_size": None,
    "weight_prior": 1.0,
    "normalize": "image",
}
NETWORKS = {"cnn": CNN, "mlp": MLP}


def dkl_config(
    problem: Any, *, patches: Patches | None = None, net: Any = None, **options: Any
) -> CampaignConfig:
    """A deep-kernel campaign on ``problem`` (defaults :data:`DKL_DEFAULTS`).

    Args:
        problem: a problem whose candidates are pixels of an image (a twin of
            :data:`~jaxscope.instruments.IMAGE_PROBLEMS`, or any problem with ``patches=``).
        patches: the candidates' windows; default ``problem.patches(normalize)``. Their
            coordinates must be the problem's candidates, row for row.
        net: a linen module (default: ``network`` by name with ``latent`` features).
        options: :data:`DKL_DEFAULTS` keys (``acquisition``, ``num_members``, ``train_steps``,
            ``learning_rate``, ``weight_prior``, ...) and any :func:`make_config` option.
    """
    d = {**DKL_DEFAULTS, **options}
    if patches is None:
        if not hasattr(problem, "patches"):
            raise ValueError(
                f"{type(problem).__name__} has no image patches: pass patches=extract(image, w)"
            )
        patches = problem.patches(normalize=d["normalize"])
    C = np.asarray(problem.candidates)
    if C.shape != tuple(patches.coords.shape) or not np.array_equal(C, np.asarray(patches.coords)):
        raise ValueError(
            f"the patches' coordinates ({tuple(patches.coords.shape)}) are not the problem's "
            f"candidates ({C.shape}), row for row"
        )
    if net is None:
        if d["network"] not in NETWORKS:
            raise ValueError(f"unknown network {d['network']!r}; use one of {sorted(NETWORKS)}")
        net = NETWORKS[d["network"]](latent=d["latent"])
    fam = DeepKernelFamily(net, patches=patches, weight_prior=d["weight_prior"])
    sur = DKLGP(fam, num_members=d["num_members"], train_steps=d["train_steps"],
                learning_rate=d["learning_rate"], refit_from=d["refit_from"],
                shrink=d["shrink"], perturb=d["perturb"], batch_size=d["batch_size"])  # fmt: skip
    rest = {k: v for k, v in d.items() if k not in DKL_DEFAULTS}
    return make_config(surrogate=sur, acquisition=d["acquisition"], **rest)
