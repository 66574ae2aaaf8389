"""Chase policy as a pure function of a sub-task's timestamps and the chase settings (SPEC §4, §11)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .hours import Availability, later, zone
from .model import ChaseSpec

Step = Literal["chase", "escalate", "time_out"]


@dataclass(frozen=True)
class ChaseDecision:
    """``chase``, ``escalate`` or ``time_out`` now, or ``wait`` until ``at`` for ``then``; ``none``: nothing left."""

    action: Literal["wait", "chase", "escalate", "time_out", "none"]
    at: float
    then: Step | Literal[""] = ""


def next_due(*, chases_sent: int, last_activity_at: float, last_chase_at: float, spec: ChaseSpec,
             window: Availability | None = None, escalated: bool = False) -> tuple[Step, float]:
    """The sub-task's next step and when it is due.

    Silence is counted from the later of the participant's last message (or the opening)
    and the last chase: every chase gets a full interval before the next step, and one
    interval of silence after the last chase times the sub-task out. Whole days of the
    interval are days on the participant's wall clock (``window``'s zone), and a chase due
    outside their working hours waits for the next window start; a time-out does not wait.
    With ``escalate_to``, half way through that last interval (after the last chase, before
    the time-out) the escalation goes out, once; a time-out never overtakes an escalation
    still to send.
    """
    tz = window.tz if window is not None else zone("UTC")
    since = max(last_activity_at, last_chase_at)
    due = later(since, spec.interval, tz)
    if chases_sent < spec.max_chases:
        return "chase", window.next_open(due) if window is not None else due
    if spec.escalate_to and not escalated:
        return "escalate", since + (due - since) / 2
    return "time_out", due


def decide(
    *, open_: bool, chases_sent: int, last_activity_at: float, last_chase_at: float, spec: ChaseSpec, now: float,
    window: Availability | None = None, escalated: bool = False,
) -> ChaseDecision:
    """What the chase check for one sub-task should do at ``now`` (see :func:`next_due`)."""
    if not open_:
        return ChaseDecision("none", now)
    then, at = next_due(chases_sent=chases_sent, last_activity_at=last_activity_at, last_chase_at=last_chase_at,
                        spec=spec, window=window, escalated=escalated)
    if now < at:
        return ChaseDecision("wait", at, then)
    return ChaseDecision(then, now, then)


def next_check(spec: ChaseSpec, chases_sent: int, since: float, window: Availability | None = None) -> float:
    """When to look at a sub-task next, silent since ``since`` with ``chases_sent`` reminders sent (and not
    escalated yet): the next chase, the escalation or the time-out, whichever :func:`decide` waits for."""
    return next_due(chases_sent=chases_sent, last_activity_at=since, last_chase_at=since, spec=spec,
                    window=window)[1]
