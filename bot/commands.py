"""The `/task` command grammar (SPEC §6), shared by Slack, Telegram and `taskbot task`.

Parsing is separate from executing so a channel can render the same result its own way
(Block Kit on Slack, plain text on Telegram and the CLI). A wrong command changes nothing.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from engine.bounds import check_value
from engine.engine import Engine
from engine.errors import Conflict, InvalidInput, NotFound

USAGE = ('usage: /task help | list | show ID | new | run ID [key=value ...] | status [RUN_ID] | '
         'results RUN_ID | cancel RUN_ID | approve RUN_ID | activate ID | deactivate ID | '
         'schedule ID "CRON" [TZ] | unschedule SCHEDULE_ID')

#: name -> (minimum, maximum) positional words after the name; None = unbounded.
ARITY: dict[str, tuple[int, int | None]] = {
    "help": (0, 0), "list": (0, 0), "show": (1, 1), "new": (0, 0), "run": (1, None), "status": (0, 1),
    "results": (1, 1), "cancel": (1, 1), "approve": (1, 1), "activate": (1, 1), "deactivate": (1, 1),
    "schedule": (2, 3), "unschedule": (1, 1),
}
OWNER_MAY = frozenset({"run", "cancel", "approve", "status", "results", "activate", "deactivate", "schedule"})
ANYONE_MAY = frozenset({"help", "list", "show", "new", "status"})


class UsageError(InvalidInput):
    """A command that does not parse: answered with one line and the usage."""

    def __init__(self, reason: str) -> None:
        super().__init__("", f"{reason}\n{USAGE}")


@dataclass(frozen=True)
class Command:
    name: str
    args: list[str]
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Actor:
    """Who asks: every identity they have (Slack id, Telegram chat id, email) and whether admin."""

    ids: frozenset[str]
    admin: bool = False

    @property
    def id(self) -> str:
        return sorted(self.ids)[0] if self.ids else "unknown"


@dataclass
class Reply:
    text: str
    ok: bool = True
    run: dict[str, Any] | None = None


def parse(text: str) -> Command:
    """Turn ``run weekly-status week=47`` into a :class:`Command`, or raise :class:`UsageError`."""
    try:
        words = shlex.split(text.strip())
    except ValueError as exc:
        raise UsageError(f"cannot read the command: {exc}") from None
    if not words:
        return Command("help", [])
    name, rest = words[0].lower().lstrip("/"), words[1:]
    if name not in ARITY:
        raise UsageError(f"unknown command {name!r}")
    data: dict[str, str] = {}
    if name == "run":
        for word in rest[1:]:
            key, sep, value = word.partition("=")
            if not sep or not key:
                raise UsageError(f"run takes key=value pairs after the task id, not {word!r}")
            data[key] = value
        rest = rest[:1]
    low, high = ARITY[name]
    if len(rest) < low or (high is not None and len(rest) > high):
        raise UsageError(f"{name} takes {low if low == high else f'{low} to {high}'} argument(s)")
    return Command(name, rest, data)


def _task_owner(engine: Engine, command: Command) -> str | None:
    ident = command.args[0] if command.args else None
    if ident is None:
        return None
    if command.name in ("cancel", "approve", "status", "results"):
        return engine.store.run_fields(ident).get("owner")
    return engine.store.get_definition(ident).owner


def allowed(engine: Engine, command: Command, actor: Actor) -> bool:
    if actor.admin or (command.name in ANYONE_MAY and not command.args):
        return True
    if command.name in ("list", "show", "help", "new"):
        return True
    owner = _task_owner(engine, command)
    return command.name in OWNER_MAY and owner is not None and owner in actor.ids


def execute(engine: Engine, text: str, actor: Actor, *, kind: str = "slash") -> Reply:
    """Parse and run one command for ``actor``; errors come back as a one-line reply."""
    try:
        check_value(text, "command")  # a lone surrogate would reach Redis as a key or a value
        command = parse(text)
        if not allowed(engine, command, actor):
            return Reply(f"Sorry, only an admin or the task's owner may {command.name} that.", ok=False)
        return _run(engine, command, actor, kind)
    except (InvalidInput, NotFound, Conflict) as exc:
        return Reply(str(exc), ok=False)


def _run(engine: Engine, c: Command, actor: Actor, kind: str) -> Reply:
    a = c.args
    if c.name == "help":
        return Reply(USAGE)
    if c.name == "list":
        defs = engine.store.list_definitions()
        if not defs:
            return Reply("No tasks defined yet.")
        return Reply("\n".join(f"{d.id} — {d.name} ({d.output_type}{'' if d.active else ', inactive'})"
                               for d in defs))
    if c.name == "show":
        d = engine.store.get_definition(a[0])
        return Reply(f"{d.id}: {d.name}\n{d.description}\noutput: {d.output_type} · owner: {d.owner or '—'}"
                     f" · {'active' if d.active else 'inactive'}")
    if c.name == "new":
        return Reply("Define a task in a YAML file and load it with `taskbot tasks apply FILE` "
                     "(in Slack, /task new opens a form).")
    if c.name == "run":
        rid = engine.runs.trigger(a[0], dict(c.data), kind=kind, by=actor.id)
        return Reply(f"Started run {rid} of {a[0]}.", run={"id": rid, "task_id": a[0], "status": "pending"})
    if c.name == "status":
        if not a:
            views = [v for v in engine.list_runs(limit=10) if actor.admin or v["owner"] in actor.ids]
            if not views:
                return Reply("No runs yet.")
            return Reply("\n".join(f"{v['id']} {v['task_id']} {v['status']}" for v in views))
        view = engine.run_view(a[0], conversations=False)
        p = engine.progress(a[0])
        return Reply(f"Run {a[0]} of {view['task_id']}: {view['status']} — {p['answered']} answered, "
                     f"{p['open']} open, {p['chased']} chased, {p['timed_out']} timed out, {p['failed']} failed",
                     run=view)
    if c.name == "results":
        view = engine.run_view(a[0], conversations=False)
        if not view["deliverables"]:
            return Reply(f"Run {a[0]} is {view['status']}; no deliverable yet.", run=view)
        return Reply(view["deliverables"][-1]["content"], run=view)
    if c.name == "cancel":
        engine.runs.cancel(a[0])
        return Reply(f"Run {a[0]} cancelled.")
    if c.name == "approve":
        engine.runs.approve(a[0])
        return Reply(f"Run {a[0]} approved and completed.")
    if c.name in ("activate", "deactivate"):
        engine.runs.set_active(a[0], c.name == "activate")
        return Reply(f"Task {a[0]} is now {'active' if c.name == 'activate' else 'inactive'}.")
    if c.name == "schedule":
        s = engine.schedules.create(a[0], a[1], a[2] if len(a) > 2 else "UTC")
        from engine.views import iso

        return Reply(f"Schedule {s['id']}: {a[0]} at \"{a[1]}\" ({s['timezone']}); next run {iso(s['next_run_at'])}.")
    if c.name == "unschedule":
        engine.schedules.delete(a[0])
        return Reply(f"Schedule {a[0]} removed.")
    raise UsageError(f"unknown command {c.name!r}")  # pragma: no cover - parse() refuses these
