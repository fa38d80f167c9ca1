"""The host side: journal, checkpoints, the event fold, hooks, the host runner and the agent.

* :mod:`~jaxscope.host.journal`: append-only, fsync'ed JSON-lines journal;
* :mod:`~jaxscope.host.checkpoint`: orbax checkpoints of the campaign state;
* :mod:`~jaxscope.host.events`: the one event schema of both drivers and its fold
  (:class:`HostLog`);
* :mod:`~jaxscope.host.session`: what both drivers share: the host view of the problem, the one
  commit path, the agent's decision rule and the one replay (:func:`replay_state`);
* :mod:`~jaxscope.host.hooks`: what a human-in-the-loop hook sees and may do;
* :mod:`~jaxscope.host.runner`: :class:`HostRunner`, the journaled, resumable host loop;
* :mod:`~jaxscope.host.agent`: :class:`Agent`, ask/tell for orchestration;
* :mod:`~jaxscope.host.waiting`: request ids passed to instruments, transient outages waited out;
* :mod:`~jaxscope.host.recording`: :class:`RecordingInstrument`, a journal of every callback;
* :mod:`~jaxscope.host.nsid`: a journal as a pycroscopy NSID/HDF5 file, and back;
* :mod:`~jaxscope.host.counterfactual`: a journal's decisions re-made by another rule or model.
"""

from .agent import Agent, DecisionRecord, Suggestion, random_choice, replay, suggest_batch
from .checkpoint import StateCheckpointer
from .counterfactual import Counterfactual  # (the function keeps the module's name free)
from .events import INIT, HostLog, match_candidates
from .hooks import HookContext
from .journal import Journal, JournalError, read_journal
from .nsid import export_nsid, import_nsid, read_nsid_journal
from .recording import RecordingInstrument
from .runner import HostRunner
from .session import host_view, replay_state
from .waiting import WaitPolicy

__all__ = [
    "Agent", "DecisionRecord", "Suggestion", "random_choice", "replay", "suggest_batch",
    "StateCheckpointer", "INIT", "HostLog", "match_candidates", "HookContext", "Journal",
    "JournalError", "read_journal", "HostRunner", "host_view", "replay_state",
    "RecordingInstrument", "WaitPolicy", "Counterfactual", "export_nsid", "import_nsid",
    "read_nsid_journal",
]  # fmt: skip
