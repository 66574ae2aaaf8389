"""The `/task` command grammar (SPEC §6), shared by Slack, Telegram and `taskbot task`.

Parsing is separate from executing so a channel can render the same result its own way
(Block Kit on Slack, plain text on Telegram and the CLI). A wrong command changes nothing.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from engine.access import Caller, may, visible_schedules
from engine.bounds import check_value
from engine.engine import Engine
from engine.errors import Conflict, InvalidInput, NotFound
from engine.hours import back_at, check_away, zone
from engine.views import iso

USAGE = ('usage: /task help | list | show ID | new | run ID [key=value ...] | status [RUN_ID] | '
         'results RUN_ID | cancel RUN_ID | approve RUN_ID | activate ID | deactivate ID | '
         'schedule ID "CRON" [TZ] | schedules [ID] | unschedule SCHEDULE_ID | away until DATE | away off')

#: name -> (minimum, maximum) positional words after the name; None = unbounded.
ARITY: dict[str, tuple[int, int | None]] = {
    "help": (0, 0), "list": (0, 0), "show": (1, 1), "new": (0, 0), "run": (1, None), "status": (0, 1),
    "results": (1, 1), "cancel": (1, 1), "approve": (1, 1), "activate": (1, 1), "deactivate": (1, 1),
    "schedule": (2, 3), "schedules": (0, 1), "unschedule": (1, 1), "away": (1, 3),
}
#: name -> what the engine's policy (engine.access) is asked about the thing it names; None: anyone may.
ACTION: dict[str, str | None] = {
    "help": None, "list": None, "show": None, "new": None, "run": "run", "status": "see", "results": "see",
    "cancel": "cancel", "approve": "approve", "activate": "activate", "deactivate": "deactivate",
    "schedule": "schedule", "schedules": "see", "unschedule": "unschedule", "away": "away",
}
#: Without an id these list only what the asker owns (everything for an admin).
LISTS_OWN = frozenset({"status", "schedules"})


class UsageError(InvalidInput):
    """A command that does not parse: answered with one line and the usage."""

    def __init__(self, reason: str) -> None:
        super().__init__("", f"{reason}\n{USAGE}")


@dataclass(frozen=True)
class Command:
    name: str
    args: list[str]
    data: dict[str, str] = field(default_factory=dict)


#: Who asks: every identity they have (Slack id, Telegram chat id, email) and whether admin.
Actor = Caller


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
    if name == "away" and away_target(rest) is None:
        raise UsageError("away takes: until DATE (e.g. away until 2027-01-10), or off")
    return Command(name, rest, data)


def away_target(args: list[str]) -> tuple[str | None, str | None] | None:
    """``away`` words -> (whose: None for oneself, the date or None for "off"); None when they do not parse.

    ``until DATE`` and ``off`` are about oneself; an admin may put a contact first (``CONTACT until DATE``)."""
    words = [w.lower() for w in args]
    if words == ["off"]:
        return None, None
    if len(words) == 2 and words[0] == "until":
        return None, args[1]
    if len(words) == 2 and words[1] == "off":
        return args[0], None
    if len(words) == 3 and words[1] == "until":
        return args[0], args[2]
    return None


def _owner(engine: Engine, command: Command) -> str | None:
    """The owner of what the command names: a run's, a schedule's task's, or a task's."""
    ident = command.args[0]
    if command.name in ("cancel", "approve", "status", "results"):
        return engine.store.run_fields(ident).get("owner")
    if command.name == "unschedule":
        return engine.schedules.owner(ident)
    return engine.store.get_definition(ident).owner


def allowed(engine: Engine, command: Command, actor: Actor) -> bool:
    action = ACTION[command.name]
    if action is None or actor.admin:
        return True
    if command.name == "away":  # anyone about themselves; only an admin about someone else
        target = away_target(command.args)
        return target is not None and target[0] is None
    if not command.args:
        return command.name in LISTS_OWN
    return may(actor, action, _owner(engine, command))


def schedule_line(s: dict[str, Any]) -> str:
    """``4f2a9c1e standup "0 9 * * MON" Europe/Paris, next 2024-06-03T09:00:00+02:00 (2024-06-03T07:00:00Z)``."""
    if not s["enabled"]:
        state = "disabled"
    elif s["next_run_local"]:
        state = f"next {s['next_run_local']} ({s['next_run_at']})"
    else:
        state = "not due"
    return f"{s['id']} {s['task_id']} \"{s['cron']}\" {s['timezone']}, {state}"


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
            views = engine.list_runs(limit=10, caller=actor)
            if not views:
                return Reply("No runs yet.")
            return Reply("\n".join(f"{v['id']} {v['task_id']} {v['status']}" for v in views))
        view = engine.run_view(a[0], conversations=False)
        p = engine.progress(a[0])
        excused = f", {p['excused']} excused" if p.get("excused") else ""
        return Reply(f"Run {a[0]} of {view['task_id']}: {view['status']} — {p['answered']} answered, "
                     f"{p['open']} open, {p['chased']} chased, {p['timed_out']} timed out, {p['failed']} failed"
                     f"{excused}", run=view)
    if c.name == "results":
        view = engine.run_view(a[0], conversations=False)
        if not view["deliverables"]:
            return Reply(f"Run {a[0]} is {view['status']}; no deliverable yet.", run=view)
        return Reply(view["deliverables"][0]["content"], run=view)
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
        return Reply(f"Schedule {s['id']}: {a[0]} at \"{a[1]}\" ({s['timezone']}); next run {iso(s['next_run_at'])}.")
    if c.name == "schedules":
        if a:
            engine.store.get_definition(a[0])
        owners = {d.id: d.owner for d in engine.store.list_definitions()}
        shown = visible_schedules(actor, engine.schedules.views(a[0] if a else None), owners)
        if not shown:
            return Reply("No schedules." if actor.admin else "No schedules of tasks you own.")
        return Reply("\n".join(schedule_line(s) for s in shown))
    if c.name == "unschedule":
        engine.schedules.delete(a[0])
        return Reply(f"Schedule {a[0]} removed.")
    if c.name == "away":
        return _away(engine, c, actor)
    raise UsageError(f"unknown command {c.name!r}")  # pragma: no cover - parse() refuses these


def _away(engine: Engine, c: Command, actor: Actor) -> Reply:
    """Mark a person away until a date (or back, with ``off``): they are not messaged until then, and a
    sub-task whose opening or chase falls due meanwhile is excused (SPEC §11)."""
    target = away_target(c.args)
    assert target is not None  # parse() checked
    who, until = target
    ids = [who] if who is not None else sorted(actor.ids)
    found = engine.store.find_contacts(ids)
    contact = next((found[i] for i in ids if i in found), None)
    if contact is None:
        if who is not None:
            raise NotFound("contact", who)
        return Reply("You are not in taskbot's directory, so there is no one to mark away; ask an admin to add "
                     "you (taskbot contacts import FILE).", ok=False)
    if until is not None:
        try:
            until = check_away(until)
        except ValueError as exc:
            raise InvalidInput("DATE", str(exc)) from None
        back = back_at(until, zone(contact.timezone))
        if back is not None and back <= engine.now():
            raise InvalidInput("DATE", f"{until} has passed already")
    engine.import_contacts([{**contact.model_dump(exclude_none=True), "away_until": until}])
    you = "You are" if who is None else f"{contact.name} is"
    if until is None:
        return Reply(f"{you} back: tasks reach {'you' if who is None else contact.name} again.")
    return Reply(f"{you} away until {until} ({contact.timezone}): taskbot sends no message before then, and "
                 "tasks that would reach you meanwhile are excused.")
