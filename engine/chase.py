"""Chase policy as a pure function of a sub-task's timestamps and the chase settings (SPEC §4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .model import ChaseSpec


@dataclass(frozen=True)
class ChaseDecision:
    """``chase``, ``escalate`` or ``time_out`` now, or ``wait`` until ``at``; ``none`` when nothing is left to do."""

    action: Literal["wait", "chase", "escalate", "time_out", "none"]
    at: float


def decide(
    *, open_: bool, chases_sent: int, last_activity_at: float, last_chase_at: float, spec: ChaseSpec, now: float,
    escalated: bool = False,
) -> ChaseDecision:
    """What the chase check for one sub-task should do at ``now``.

    Silence is counted from the later of the participant's last message (or the opening)
    and the last chase: every chase gets a full interval before the next step, and one
    interval of silence after the last chase times the sub-task out. With ``escalate_to``,
    half way through that last interval (after the last chase, before the time-out) the
    escalation goes out, once; a time-out never overtakes an escalation still to send.
    """
    if not open_:
        return ChaseDecision("none", now)
    silent_since = max(last_activity_at, last_chase_at)
    due = silent_since + spec.interval
    if chases_sent < spec.max_chases:
        return ChaseDecision("chase", now) if now >= due else ChaseDecision("wait", due)
    if spec.escalate_to and not escalated:
        at = silent_since + spec.interval / 2
        return ChaseDecision("escalate", now) if now >= at else ChaseDecision("wait", at)
    return ChaseDecision("time_out", now) if now >= due else ChaseDecision("wait", due)


def next_check(spec: ChaseSpec, chases_sent: int, since: float) -> float:
    """When to look at a sub-task next, silent since ``since`` with ``chases_sent`` reminders sent (and not
    escalated yet): the next chase, the escalation or the time-out, whichever :func:`decide` waits for."""
    return decide(open_=True, chases_sent=chases_sent, last_activity_at=since, last_chase_at=since, spec=spec,
                  now=since).at
