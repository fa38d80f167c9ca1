r"""Variational autoencoders for microscopy: VAE, invariant rVAE, conditional, joint
continuous + discrete (jVAE / jrVAE), semi-supervised (ss-VAE / ss-rVAE), and the variational
encoder-decoder (im2spec / spec2im). Flax **linen** networks (see :mod:`jaxscope.dkl.networks`
for why); weights are plain nested dicts.

Data: images ``(n, h, w)`` / ``(n, h, w, c)`` or spectra ``(n, L)`` / ``(n, L, c)``; every
model takes any size and channel count. With ``likelihood="bernoulli"`` (pyroVED's default)
values must lie in ``[0, 1]``.

Models (constructors; each returns a frozen, hashable :class:`Model` — the static description
of a network family plus its objective; weights live outside it)::

    VAE(shape, latent_dim=2, **opts)
    RVAE(shape, latent_dim=2, invariances=("r", "t"), **opts)   # "r","t","s" on 2-D; "t" on 1-D
    CVAE(shape, condition_dim, latent_dim=2, invariances=(), **opts)  # one-hot or continuous
    JVAE(shape, discrete=(K,), latent_dim=2, invariances=(), **opts)  # jrVAE: invariances=("r",)
    SSVAE(shape, num_classes=K, latent_dim=2, invariances=(), **opts)     # classification
    SSVAE(shape, regression_dim=1, latent_dim=2, invariances=(), **opts)  # regression
    VED(in_shape, out_shape, latent_dim=2, **opts)                         # im2spec / spec2im

``opts``: ``encoder_hidden=(128, 128)``, ``decoder_hidden=(128, 128)``, ``activation="tanh"``,
``likelihood="bernoulli" | "gaussian"``, ``noise_scale=…`` (gaussian), ``shift_prior=0.1``,
``scale_prior=0.1``, ``temperature=0.67`` (Gumbel-softmax), ``objective=Objective(…)``,
``symmetry=1`` (``n``: angle defined modulo ``2π/n``, e.g. lattices), ``aligned=True``
(two-stage encoder for invariant models: a pose encoder, then the content / class encoder reads
the input turned back to the canonical pose — an MLP need not learn rotation invariance),
``pixel_fraction=1.0`` (< 1: each training step decodes a random fraction of the pixels and
scales their likelihood — an unbiased estimate at that fraction of the spatial decoder's FLOPs;
measured on 28×28, 6000 samples with 64 Fourier features: 0.25 → 2.6 s/epoch vs 9.7 s, same
angle recovery; evaluation always decodes every pixel), ``coord_scale=1.0`` (multiplies the
decoder's coordinates),
``fourier=64`` on 2-D images with invariances, 0 otherwise (``m > 0``: the spatial decoder
reads ``[x', sin 2πBx', cos 2πBx']`` with ``m`` fixed Gaussian frequencies ``B``, std
``fourier_scale=2.0`` cycles per grid unit — Tancik et al. 2020 — computed after the pose
transform, so equivariance is exact; needed for lattices: on 28-px perovskite patches the plain
coordinate MLP never renders the lattice, see :class:`~.networks.SpatialDecoder`).
Widths follow pyroVED (fully connected encoders 2 × 128 tanh, softplus scales; spatial
decoder: ``tanh(W_x·x' + W_z·z)`` then 2 × 128 tanh, sigmoid output).

Invariant models decode with a *spatial* decoder: each pixel's coordinate ``x`` (pixel
units / half the larger side, centre 0) goes through ``x' = R(-φ)(x - t) / s`` and the network
sees ``[x', z]`` (the content turns counter-clockwise on screen by ``φ``, like ``numpy.rot90``).
The angle latent is circular: a 2-D Gaussian ``u ~ N(m, σ²I)`` with prior ``N(0, I)``, angle
``φ = atan2(u₂, u₁) / symmetry`` (a projected-normal posterior; the prior is uniform on the
circle); ``m`` = encoder head + a learned multiple of the image's circular moment direction
(rotation-equivariant: it breaks the symmetry that otherwise lets the angle collapse).
Discrete latents are relaxed one-hot Gumbel-softmax samples (one decoder pass;
pyroVED enumerates, one pass per class); KL to the uniform categorical is exact.

Objective (:class:`Objective`, schedules are functions of the optimiser step ``t``)::

    recon + β_p(t)·KL_pose + β_c(t)·|KL_cont − C_z(t)| + β_d(t)·|KL_disc − C_α(t)|
          + λ·Σ KL(q̄ ‖ U) + α·supervised

(without capacities: ``β_c(t)·KL_cont + β_d(t)·KL_disc``; all β = 1, λ = 0: the negative
ELBO). ``KL_pose`` (angle, shift, scale) stays out of the capacities. ``λ``
(``disc_balance``, ``joint_objective``'s default γ) penalises uneven use of each categorical
over the batch (``q̄`` its batch-mean probabilities). Schedules: ``constant(v)``,
``linear(start, stop, steps, delay=0)``; ``joint_objective(discrete, steps=500, gamma=30,
cont_cap=1.0, balance=None, disc_delay=0, disc_steps=None)`` is JVAE's default (lattice
patches: ``disc_delay=360, disc_steps=120``, see its docstring).

Training and inference::

    params = model.init(key)                         # plain dict pytree
    res = train(model, x, epochs=10, batch_size=100, key=key, lr=1e-3,
                labels=None,      # SSVAE: int (n,) with -1 = unlabelled, or float (n, d) NaN
                condition=None,   # CVAE: (n, condition_dim)
                targets=None,     # VED: (n, *out_shape)
                resume=None,      # a TrainResult (or load_checkpoint(...)) to continue from
                checkpoint_dir=None, progress=False)
    res.params, res.opt_state, res.step, res.epoch, res.key
    res.history                     # dict name -> np.ndarray (epochs,), epoch means of
                                    # METRICS = "loss", "recon", "kl_cont", "kl_pose",
                                    # "kl_disc", "supervised"
    evaluate(model, params, x, key=key, ...) -> dict name -> float (weights never change)
    enc = encode(model, params, x, condition=None, batch_size=1000) -> Encoding
        # Encoding fields (None where absent): z (n, latent_dim) mean, z_scale,
        # angle (n,) radians, angle_concentration (n,), shift (n, 2|1) pixels (row, col order),
        # scale (n,), class_probs (n, K_total), y (n, d) regression mean
    decode(model, params, z, angle=0.0, shift=0.0, scale=1.0, classes=None, condition=None)
        -> (n, *shape) means; angle radians, shift pixels (row, col), classes one-hot (n, K_total)
    latent_map(model, params, image, window, normalize="minmax") -> dict name -> (H, W[, k])
        NaN where a pixel has no whole window (via jaxscope.images.patches.extract)
    save_checkpoint(directory, res);  load_checkpoint(directory, model) -> TrainResult
    circular_correlation(a, b, symmetry=1) -> float   # Fisher–Lee, in [-1, 1]
    model.flops_per_sample() -> {"encoder", "decoder"} forward FLOPs

Compiles: ``train`` compiles one epoch program per (model, optimiser, batch size, data size)
and reuses it across epochs and resumed runs; ``encode`` / ``decode`` / ``evaluate`` at most
two chunk shapes each.

Example:
    >>> model = RVAE((28, 28), latent_dim=2, invariances=("r", "t"))
    >>> res = train(model, patches, epochs=20, batch_size=100, key=jax.random.key(0))
    >>> enc = encode(model, res.params, patches)
    >>> imgs = decode(model, res.params, enc.z, angle=0.5)
"""

from .checkpoints import load_checkpoint, save_checkpoint
from .distributions import circular_correlation
from .families import CVAE, JVAE, RVAE, SSVAE, VAE, VED, joint_objective
from .inference import Encoding, decode, encode, latent_map
from .model import Model
from .objectives import METRICS, Objective, constant, linear
from .results import TrainResult
from .trainer import evaluate, train

__all__ = [
    "CVAE", "JVAE", "RVAE", "SSVAE", "VAE", "VED", "Model", "Objective", "constant", "linear",
    "joint_objective", "train", "evaluate", "TrainResult", "METRICS", "encode", "decode",
    "Encoding", "latent_map", "save_checkpoint", "load_checkpoint", "circular_correlation",
]  # fmt: skip

# Synthetic lattice data and atom finding (the data and atom-finding parts of the VAE issue).
from .atom_latents import AtomLatents, atoms_to_latents  # noqa: E402
from .atoms import (  # noqa: E402
    FoundAtoms,
    Matching,
    find_atoms,
    match_points,
    peak_finder,
    precision_recall,
    tune_peak_finder,
)
from .lattice import (  # noqa: E402
    MASK_CLASSES,
    SITE_CLASSES,
    Lattice,
    LatticeImages,
    column_mask,
    honeycomb,
    lattice_images,
    perovskite,
    present_atoms,
)
from .lattice_patches import PATCH_CLASSES, LatticePatches, lattice_patches  # noqa: E402
from .unet import UNet, UNetFit, UNetPrediction, segment, train_unet  # noqa: E402

__all__ += [
    "AtomLatents", "atoms_to_latents", "FoundAtoms", "Matching", "find_atoms", "match_points",
    "peak_finder", "precision_recall", "tune_peak_finder", "MASK_CLASSES", "SITE_CLASSES",
    "Lattice", "LatticeImages", "column_mask", "honeycomb", "lattice_images", "perovskite",
    "present_atoms", "PATCH_CLASSES", "LatticePatches", "lattice_patches", "UNet", "UNetFit",
    "UNetPrediction", "segment", "train_unet",
]  # fmt: skip
