r"""Constructors of the VAE families: checked arguments in, a :class:`~.model.Model` out.

=========  =====================================================================
``VAE``    content latents only, dense decoder (pyroVED ``iVAE(invariances=None)``)
``RVAE``   + pose latents (``"r"`` rotation, ``"t"`` translation, ``"s"`` scale on 2-D;
           ``"t"`` on 1-D), spatial decoder (pyroVED ``iVAE(invariances=[...])``)
``CVAE``   + a given condition (one-hot class or continuous vector)
``JVAE``   + categorical latents, capacity-controlled objective (``jiVAE``; jrVAE with
           ``invariances``)
``SSVAE``  semi-supervised: ``num_classes`` (classification) or ``regression_dim``
           (regression) labels, partly known (``ssiVAE``; ss-rVAE with ``invariances``)
``VED``    variational encoder-decoder between modalities, e.g. im2spec / spec2im
=========  =====================================================================

``shape`` is one sample's shape: ``(h, w)`` / ``(h, w, c)`` images, ``(L,)`` spectra, or
``(L, c)`` spectra with ``spectrum=True``. Common options (``**opts``): ``encoder_hidden``,
``decoder_hidden``, ``activation``, ``likelihood``, ``noise_scale``, ``shift_prior``,
``scale_prior``, ``temperature``, ``objective``, ``pixel_fraction`` (see
:func:`~jaxscope.vae.objectives.loss`), ``coord_scale``, ``fourier`` / ``fourier_scale``
(Fourier-feature coordinates for the spatial decoder, see
:class:`~jaxscope.vae.networks.SpatialDecoder`; default :data:`DEFAULT_FOURIER` = 64 for 2-D
images with invariances — the plain coordinate MLP never renders an atomic lattice: angle
|ρ| 0.007 after 3 epochs on 28-px perovskite patches vs 0.987 with 64 features, at 1.5× the
decoder's FLOPs — and 0 for spectra; ``fourier=0`` gives the plain decoder), ``aligned``
(default True: a two-stage encoder, content read from the de-posed input), ``symmetry``
(``n``: the angle is defined modulo ``2π/n``, for ``n``-fold symmetric objects such as
lattices; the angle latent's circle then maps to ``[−π/n, π/n)``).

Example:
    >>> m = RVAE((28, 28), latent_dim=2, invariances=("r", "t"))
    >>> m.shape, m.invariances                     # ((28, 28, 1), ('r', 't'))
"""

from __future__ import annotations

import dataclasses
import math

from .model import INVARIANCES, LIKELIHOODS, Model
from .networks import ACTIVATIONS
from .objectives import Objective, constant, linear

#: Fourier features of a 2-D spatial decoder unless ``fourier=`` says otherwise (0: plain)
DEFAULT_FOURIER = 64

_OPTS = {
    "encoder_hidden", "decoder_hidden", "activation", "likelihood", "noise_scale",
    "shift_prior", "scale_prior", "temperature", "objective", "symmetry",
    "aligned", "coord_scale", "pixel_fraction", "fourier", "fourier_scale",
}  # fmt: skip


def _shape(shape, spectrum, name="shape"):
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError as e:
        raise TypeError(f"{name} must be a tuple of ints; got {shape!r}") from e
    if not shape or any(s < 1 for s in shape) or len(shape) > 3:
        raise ValueError(f"{name} must be (h, w), (h, w, c), (L,) or (L, c); got {shape}")
    if len(shape) == 1:
        return (shape[0], 1), 1
    if len(shape) == 2:
        return (shape, 1) if spectrum else ((*shape, 1), 2)
    if spectrum:
        raise ValueError(f"a spectrum has shape (L,) or (L, c); got {shape}")
    return shape, 2


def _build(family, shape, *, spectrum=False, latent_dim=2, invariances=(), **kw) -> Model:
    opts = {k: kw.pop(k) for k in list(kw) if k in _OPTS}
    if kw:
        raise TypeError(f"{family}: unknown option(s) {sorted(kw)}")
    (shp, spatial), out = _shape(shape, spectrum), {}
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"latent_dim must be a positive int; got {latent_dim!r}")
    if isinstance(invariances, str):
        invariances = tuple(invariances) if invariances in ("r", "t", "s") else (invariances,)
    invariances = tuple(invariances or ())
    allowed = INVARIANCES[spatial]
    for inv in invariances:
        if inv not in allowed:
            raise ValueError(
                f"unknown invariance {inv!r} for {spatial}-D data; use a subset of {allowed}"
            )
    if len(set(invariances)) != len(invariances):
        raise ValueError(f"invariances repeat an entry: {invariances}")
    invariances = tuple(i for i in allowed if i in invariances)  # canonical order
    if opts.get("activation", "tanh") not in ACTIVATIONS:
        raise ValueError(f"unknown activation {opts['activation']!r}; use {sorted(ACTIVATIONS)}")
    if opts.get("likelihood", "bernoulli") not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {opts['likelihood']!r}; use one of {LIKELIHOODS}")
    for k in ("encoder_hidden", "decoder_hidden"):
        if k in opts:
            opts[k] = tuple(int(v) for v in opts[k])
            if not opts[k] or min(opts[k]) < 1:
                raise ValueError(f"{k} must be a non-empty tuple of positive widths")
    if "fourier" not in opts and spatial == 2 and invariances:
        opts["fourier"] = DEFAULT_FOURIER  # 2-D spatial decoders: see the module docstring
    fourier = opts.get("fourier", 0)
    if not isinstance(fourier, int) or isinstance(fourier, bool) or fourier < 0:
        raise ValueError(
            f"fourier must be a non-negative int (number of frequencies); got {fourier!r}"
        )
    if fourier and not invariances:
        raise ValueError("fourier features need a spatial decoder: give invariances")
    for k in ("noise_scale", "shift_prior", "scale_prior", "temperature", "coord_scale",
              "fourier_scale"):  # fmt: skip
        if k in opts and not float(opts[k]) > 0:
            raise ValueError(f"{k} must be positive; got {opts[k]}")
    if not 0 < float(opts.get("pixel_fraction", 1.0)) <= 1:
        raise ValueError(f"pixel_fraction must lie in (0, 1]; got {opts['pixel_fraction']}")
    sym = opts.get("symmetry", 1)
    if not isinstance(sym, int) or sym < 1:
        raise ValueError(f"symmetry must be a positive int (n-fold); got {sym!r}")
    if sym > 1 and "r" not in invariances:
        raise ValueError("symmetry > 1 needs the rotation invariance 'r'")
    out.update(opts)
    out.setdefault("objective", Objective())
    return Model(family, shp, spatial, latent_dim, invariances, **out)


def VAE(shape, latent_dim: int = 2, *, spectrum: bool = False, **opts) -> Model:  # noqa: N802
    """A plain VAE: ``z ~ N(0, I)``, dense encoder and decoder."""
    return _build("vae", shape, spectrum=spectrum, latent_dim=latent_dim, **opts)


def RVAE(  # noqa: N802
    shape, latent_dim: int = 2, invariances=("r", "t"), *, spectrum=False, **opts
) -> Model:
    """An invariant VAE (rVAE): pose latents for ``invariances`` and a spatial decoder."""
    if not invariances:
        raise ValueError("RVAE needs at least one invariance; use VAE for none")
    return _build("rvae", shape, spectrum=spectrum, latent_dim=latent_dim,
                  invariances=invariances, **opts)  # fmt: skip


def CVAE(  # noqa: N802
    shape, condition_dim: int, latent_dim: int = 2, invariances=(), *, spectrum=False, **opts
) -> Model:
    """A conditional VAE: encoder and decoder also see a ``condition_dim`` vector."""
    if not isinstance(condition_dim, int) or condition_dim < 1:
        raise ValueError(f"condition_dim must be a positive int; got {condition_dim!r}")
    m = _build("cvae", shape, spectrum=spectrum, latent_dim=latent_dim,
               invariances=invariances, **opts)  # fmt: skip
    return _replace(m, condition_dim=condition_dim)


def joint_objective(
    discrete,
    steps: int = 500,
    gamma: float = 30.0,
    cont_cap: float = 1.0,
    balance=None,
    disc_delay: int = 0,
    disc_steps: int | None = None,
) -> Objective:
    """Default jVAE objective: ``β_c = β_d = γ``; ``C_z`` rising 0 → ``cont_cap`` and ``C_α``
    0 → ``Σ log K`` (the most the categoricals can carry: confident samples) over ``steps``
    steps; and a balance term ``balance · Σ_j KL(q̄_j ‖ Uniform)`` (default ``γ``) on each
    categorical's batch-mean probabilities. Without it the capacity is met by a confident
    *constant* class (``KL(q(c|x) ‖ U) = log K`` for every ``x``, no information) — measured:
    all samples in one class — while with it the discrete code must be confident *and* used
    evenly, i.e. carry ``log K`` nats about ``x``.

    ``disc_delay`` / ``disc_steps`` (default 0 / ``steps``): ``C_α`` stays 0 for
    ``disc_delay`` steps, then rises over ``disc_steps``. When the decoder needs epochs to
    render the data (lattice patches), a categorical that must carry ``log K`` nats from the
    start settles on a balanced code of noise; measured on 6000 perovskite patches
    (``fourier=64``, batch 100): delay 360 / 120 steps reaches accuracy 0.95 / 1.0 after 14 /
    15 epochs where the default stays at 0.27–0.31 through 10 epochs, and delay 500 / 125
    (after ``C_z``'s ramp) stalls at 0.75 (three of four classes) through 16 epochs."""
    disc_max = float(sum(math.log(k) for k in discrete))
    d_steps = steps if disc_steps is None else int(disc_steps)
    return Objective(
        beta_cont=constant(gamma), beta_disc=constant(gamma),
        cont_capacity=linear(0.0, cont_cap, steps),
        disc_capacity=linear(0.0, disc_max, d_steps, int(disc_delay)),
        disc_balance=float(gamma if balance is None else balance),
    )  # fmt: skip


def JVAE(  # noqa: N802
    shape, discrete=(2,), latent_dim: int = 2, invariances=(), *, spectrum=False, **opts
) -> Model:
    """Joint continuous + discrete VAE (jrVAE with ``invariances``): one categorical latent per
    entry of ``discrete``, relaxed (Gumbel-softmax) in training; objective defaults to
    :func:`joint_objective`."""
    discrete = _discrete(discrete)
    opts.setdefault("objective", joint_objective(discrete))
    m = _build("jvae", shape, spectrum=spectrum, latent_dim=latent_dim,
               invariances=invariances, **opts)  # fmt: skip
    return _replace(m, discrete=discrete)


def SSVAE(  # noqa: N802
    shape, num_classes: int = 0, regression_dim: int = 0, latent_dim: int = 2,
    invariances=(), *, spectrum=False, **opts,
) -> Model:  # fmt: skip
    """Semi-supervised VAE (ss-rVAE with ``invariances``): exactly one of ``num_classes`` (a
    categorical label latent) or ``regression_dim`` (Gaussian label latents)."""
    if (num_classes > 0) == (regression_dim > 0):
        raise ValueError("SSVAE needs exactly one of num_classes > 1 or regression_dim > 0")
    m = _build("ssvae", shape, spectrum=spectrum, latent_dim=latent_dim,
               invariances=invariances, **opts)  # fmt: skip
    if num_classes:
        return _replace(m, discrete=_discrete((num_classes,)), supervised="class")
    return _replace(m, regression_dim=int(regression_dim), supervised="regression")


def VED(  # noqa: N802
    in_shape, out_shape, latent_dim: int = 2, *, in_spectrum=False, out_spectrum=None, **opts
) -> Model:
    """Variational encoder-decoder from one modality to another (im2spec: image in, spectrum
    out; spec2im the reverse); dense decoder, ``likelihood="gaussian"`` by default."""
    opts.setdefault("likelihood", "gaussian")
    m = _build("ved", in_shape, spectrum=in_spectrum, latent_dim=latent_dim, **opts)
    if out_spectrum is None:
        out_spectrum = len(tuple(out_shape)) == 1
    oshape, ospatial = _shape(out_shape, out_spectrum, "out_shape")
    return _replace(m, out_shape=oshape, out_spatial=ospatial)


def _discrete(discrete):
    if isinstance(discrete, int):
        discrete = (discrete,)
    discrete = tuple(int(k) for k in discrete)
    if not discrete or min(discrete) < 2:
        raise ValueError(f"discrete must list categorical sizes ≥ 2; got {discrete}")
    return discrete


def _replace(m: Model, **kw) -> Model:
    return dataclasses.replace(m, **kw)
