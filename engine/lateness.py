"""Late answers (SPEC §11 ``accept_late``): which messages to a sub-task that ended still count as answers.

A message to a final sub-task is kept and marked ``late``. With ``accept_late: true`` on its
fan-out state, one to a sub-task that ended ``timed_out`` is an answer too (while its run is
not failed or cancelled): it is recorded like any answer, and the sub-task that gets every
answer this way becomes ``completed``, marked ``late`` (see :mod:`.revisions`).
"""

from __future__ import annotations

from collections.abc import Mapping

from . import keys
from .model import TaskState
from .store import Store

#: Run states in which a late answer still counts (a failed or cancelled run takes none).
TAKING = frozenset({"running", "completed", "awaiting_review"})


def accepts_late(state: object) -> bool:
    """Whether a workflow state takes answers to its sub-tasks that timed out."""
    return isinstance(state, TaskState) and state.accept_late


def takes_answer(store: Store, sub: Mapping[str, str]) -> bool:
    """Whether a message to ``sub`` is recorded as an answer: it is open, or it timed out and its
    state accepts late answers (its run still going or completed)."""
    if sub.get("status") == "running":
        return True
    if sub.get("status") != "timed_out" or sub.get("kind") == "conversation":
        return False
    if not accepts_late(store.state_of(sub["run_id"], int(sub["step"]))):
        return False
    status = store.r.hget(keys.run(sub["run_id"]), "status")
    return status is not None and status.decode() in TAKING
