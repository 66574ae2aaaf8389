"""Chase policy as a pure function of a sub-task's timestamps and the chase settings (SPEC §4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .hours import Availability, later, zone
from .model import ChaseSpec


@dataclass(frozen=True)
class ChaseDecision:
    """``chase`` or ``time_out`` now, or ``wait`` until ``at`` for ``then``; ``none`` when nothing is left."""

    action: Literal["wait", "chase", "time_out", "none"]
    at: float
    then: Literal["chase", "time_out", ""] = ""


def next_due(*, chases_sent: int, last_activity_at: float, last_chase_at: float, spec: ChaseSpec,
             window: Availability | None = None) -> tuple[Literal["chase", "time_out"], float]:
    """The sub-task's next step and when it is due.

    Silence is counted from the later of the participant's last message (or the opening)
    and the last chase: every chase gets a full interval before the next step, and one
    interval of silence after the last chase times the sub-task out. Whole days of the
    interval are days on the participant's wall clock (``window``'s zone), and a chase due
    outside their working hours waits for the next window start; a time-out does not wait.
    """
    tz = window.tz if window is not None else zone("UTC")
    due = later(max(last_activity_at, last_chase_at), spec.interval, tz)
    if chases_sent < spec.max_chases:
        return "chase", window.next_open(due) if window is not None else due
    return "time_out", due


def decide(
    *, open_: bool, chases_sent: int, last_activity_at: float, last_chase_at: float, spec: ChaseSpec, now: float,
    window: Availability | None = None,
) -> ChaseDecision:
    """What the chase check for one sub-task should do at ``now`` (see :func:`next_due`)."""
    if not open_:
        return ChaseDecision("none", now)
    then, at = next_due(chases_sent=chases_sent, last_activity_at=last_activity_at, last_chase_at=last_chase_at,
                        spec=spec, window=window)
    if now < at:
        return ChaseDecision("wait", at, then)
    return ChaseDecision(then, now, then)
