"""RQ job functions: thin, importable, primitive arguments (ids), each calling the engine once.

Arguments arrive as strings when the sweeper re-drives a job, so numbers are converted here.
"""

from __future__ import annotations

from .bootstrap import engine


def advance(rid: str, step: str | int) -> None:
    engine().runs.advance(rid, int(step))


def open_batch(rid: str, start: str | int, end: str | int) -> None:
    engine().subtasks.open_batch(rid, int(start), int(end))


def chase(sid: str, seq: str | int | None = None) -> None:
    engine().subtasks.chase(sid, int(seq) if seq is not None else None)


def fan_in(rid: str, step: str | int) -> None:
    engine().runs.fan_in(rid, int(step))


def process_inbound(iid: str) -> None:
    engine().inbox.process(iid)
