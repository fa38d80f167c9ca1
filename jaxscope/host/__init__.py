"""The host side: journal, checkpoints, the event fold, hooks, the host runner and the agent.

* :mod:`~jaxscope.host.journal`: append-only, fsync'ed JSON-lines journal;
* :mod:`~jaxscope.host.checkpoint`: orbax checkpoints of the campaign state;
* :mod:`~jaxscope.host.events`: the one event schema of both drivers and its fold
  (:class:`HostLog`);
* :mod:`~jaxscope.host.session`: what both drivers share: the host view of the problem, the one
  commit path, the agent's decision rule and the one replay (:func:`replay_state`);
* :mod:`~jaxscope.host.hooks`: what a human-in-the-loop hook sees and may do;
* :mod:`~jaxscope.host.runner`: :class:`HostRunner`, the journaled, resumable host loop;
* :mod:`~jaxscope.host.agent`: :class:`Agent`, ask/tell for orchestration.
"""

from .agent import Agent, DecisionRecord, Suggestion, random_choice, replay, suggest_batch
from .checkpoint import StateCheckpointer
from .events import INIT, HostLog, match_candidates
from .hooks import HookContext
from .journal import Journal, JournalError, read_journal
from .runner import HostRunner
from .session import host_view, replay_state

__all__ = [
    "Agent", "DecisionRecord", "Suggestion", "random_choice", "replay", "suggest_batch",
    "StateCheckpointer", "INIT", "HostLog", "match_candidates", "HookContext", "Journal",
    "JournalError", "read_journal", "HostRunner", "host_view", "replay_state",
]  # fmt: skip
