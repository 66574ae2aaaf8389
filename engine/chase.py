"""Chase policy as a pure function of a sub-task's timestamps and the chase settings (SPEC §4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .model import ChaseSpec


@dataclass(frozen=True)
class ChaseDecision:
    """``chase`` or ``time_out`` now, or ``wait`` until ``at``; ``none`` when nothing is left to do."""

    action: Literal["wait", "chase", "time_out", "none"]
    at: float


def decide(
    *, open_: bool, chases_sent: int, last_activity_at: float, last_chase_at: float, spec: ChaseSpec, now: float
) -> ChaseDecision:
    """What the chase check for one sub-task should do at ``now``.

    Silence is counted from the later of the participant's last message (or the opening)
    and the last chase: every chase gets a full interval before the next step, and one
    interval of silence after the last chase times the sub-task out.
    """
    if not open_:
        return ChaseDecision("none", now)
    due = max(last_activity_at, last_chase_at) + spec.interval
    if now < due:
        return ChaseDecision("wait", due)
    if chases_sent < spec.max_chases:
        return ChaseDecision("chase", now)
    return ChaseDecision("time_out", now)
