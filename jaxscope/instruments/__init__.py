"""Instruments: the campaign and host protocols, their adapters and the simulated instruments.

* :class:`Problem`: what a campaign measures (pure JAX; the nominal protocol the campaign core
  calls): :class:`Simulator`, :class:`GridProblem` (tabulated grids for strategy benchmarks),
  :class:`CallbackProblem` (a host instrument through ``jax.pure_callback``) and
  :class:`GuardedProblem` (the host runner's masked view) all subclass it.
* :class:`Simulator`: pure-JAX simulated instrument (candidates, bounds, ``measure``, ``truth``,
  ``cost``); :class:`ThreeGaussians` (GPim toy), :class:`IsingSimulator` (J1–J2 specific heat),
  :class:`SparseScanSimulator` (surface topography), :class:`SyntheticFunction` (Branin,
  Hartmann-3/6, Ackley, Levy, Rosenbrock, Shekel); with a hidden law drawn from a key, for
  hypothesis learning: :class:`CombiLibrary` (a composition spread whose property follows one of
  three transition laws) and :class:`DomainWriting` (ferroelectric domain radius against write
  bias and pulse time, measured from a thresholded phase image); digital twins
  (:class:`ImageTwin`: a structural image, a spectrum per pixel, a scalarizer):
  :class:`PFMTwin` (PFM domains and BEPS loops), :class:`EELSTwin` (HAADF nanoparticles and
  low-loss EELS), :class:`DiffractionTwin` (4D-STEM disks shifted by a local field).
* :class:`Instrument`: host protocol, an abstract base (``dim``, ``measure(X) -> y``);
  :class:`SimulatorInstrument`
  adapts a simulator to it; :func:`as_callback` makes any instrument callable from ``jit``.
* :func:`make_simulator`: a simulator by problem name (for the CLI and benchmarks).
* :class:`Microscope`: the microscope protocol (describe, move, image, batched spectra,
  stimulus, status, abort; :class:`Data` with axes and units; :class:`ScanFrame` coordinate
  frames); :class:`SimulatedMicroscope` wraps any simulator, :class:`MicroscopeInstrument` makes
  any microscope an ``Instrument``; :mod:`~jaxscope.instruments.server` and
  :mod:`~jaxscope.instruments.client` put one on the network (Pyro5).
"""

from .base import (
    Instrument,
    InstrumentError,
    InstrumentUnavailable,
    Negated,
    Problem,
    Simulator,
    SimulatorInstrument,
    check_points,
    travel_cost,
)
from .callback import CallbackProblem, as_callback
from .combi import CombiLibrary
from .domains import DomainWriting
from .eels import EELSTwin
from .frames import ScanFrame
from .grid import GridProblem, stack_problems, tabulate
from .guarded import GuardedProblem, guard
from .ising import T_CRITICAL, IsingSimulator
from .microscope import Axis, Data, Microscope, MicroscopeInfo, MicroscopeInstrument
from .pfm import PFMTwin
from .replay import SpectralReplay, beps_replay, read_nsid, zero_bias_image
from .simulated import SimulatedMicroscope
from .sparse_scan import SparseScanSimulator
from .stem4d import DiffractionTwin
from .surface import grid_points, make_surface
from .testfunctions import FUNCTIONS, SyntheticFunction
from .toy import ThreeGaussians
from .twin import ImageTwin

# simulators whose main use is learning a hidden law (their optimum is trivial)
HYPOTHESIS_PROBLEMS = ("combi_library", "domain_writing")
# digital twins: an image, a spectrum per pixel, a scalarizer (structure–property campaigns)
IMAGE_PROBLEMS = ("pfm_twin", "eels_twin", "stem4d_twin")
PROBLEMS = (
    "three_gaussians", "ising", "sparse_scan", *FUNCTIONS, *HYPOTHESIS_PROBLEMS, *IMAGE_PROBLEMS,
)  # fmt: skip

__all__ = [
    "Problem", "CallbackProblem", "GridProblem", "stack_problems", "tabulate", "GuardedProblem",
    "guard", "Instrument", "InstrumentError", "Negated", "Simulator", "SimulatorInstrument",
    "check_points", "travel_cost", "as_callback", "T_CRITICAL", "IsingSimulator",
    "SparseScanSimulator", "FUNCTIONS", "SyntheticFunction", "ThreeGaussians", "PROBLEMS",
    "make_simulator", "grid_points", "make_surface", "CombiLibrary", "DomainWriting",
    "HYPOTHESIS_PROBLEMS", "IMAGE_PROBLEMS", "ImageTwin", "PFMTwin", "EELSTwin", "DiffractionTwin",
    "SpectralReplay", "beps_replay", "read_nsid", "zero_bias_image",
    "InstrumentUnavailable", "ScanFrame", "Axis", "Data", "Microscope", "MicroscopeInfo",
    "MicroscopeInstrument", "SimulatedMicroscope",
]  # fmt: skip


def make_simulator(name: str, *, key=None, **kwargs) -> Simulator:
    """A simulator by name: one of :data:`PROBLEMS`.

    Names: ``three_gaussians``, ``ising``, ``sparse_scan``, a test function (:data:`FUNCTIONS`),
    ``combi_library`` (:meth:`CombiLibrary.draw`), ``domain_writing``
    (:meth:`DomainWriting.draw`) or a digital twin (:data:`IMAGE_PROBLEMS`: ``pfm_twin``,
    ``eels_twin``, ``stem4d_twin``, built by ``create(key, **kwargs)``). ``key`` seeds what is
    random in the problem (the sparse-scan surface, the test-function candidates, the hidden law
    and its parameters, the twin's specimen; default ``jax.random.key(0)`` where one is
    needed); ``kwargs`` go to the constructor (``law=...`` fixes the hidden law of
    ``combi_library`` and ``domain_writing``). The result is *not* negated: campaigns call
    :meth:`Simulator.as_maximization`.

    Example:
        >>> sim = make_simulator("combi_library", key=jax.random.key(3))   # doctest: +SKIP
        >>> sim.law, sim.params                                              # scoring only
    """
    import jax

    if name == "three_gaussians":
        return ThreeGaussians(**kwargs)
    if name == "ising":
        return IsingSimulator(**kwargs)
    if name == "sparse_scan":
        return SparseScanSimulator.create(jax.random.key(0) if key is None else key, **kwargs)
    if name == "combi_library":
        return CombiLibrary.draw(jax.random.key(0) if key is None else key, **kwargs)
    if name == "domain_writing":
        return DomainWriting.draw(jax.random.key(0) if key is None else key, **kwargs)
    twins = {"pfm_twin": PFMTwin, "eels_twin": EELSTwin, "stem4d_twin": DiffractionTwin}
    if name in twins:
        return twins[name].create(jax.random.key(0) if key is None else key, **kwargs)
    if name in FUNCTIONS:
        return SyntheticFunction(name, key=key, **kwargs)
    raise ValueError(f"unknown problem {name!r}; choose one of {PROBLEMS}")
