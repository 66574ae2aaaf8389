"""The tools an assistant may call in a conversation (SPEC §5), as a registry a plugin can add to.

A tool runs *inside the turn's computation*, before anything is written: it stages its effect
in the :class:`ToolContext` (data to record, content to save, a run to delegate, a schedule to
create) and returns the text the model reads. The turn's effects are then applied in one
transaction with the conversation, so a turn computed twice never records twice; effects
outside the sub-task (a delegated run, a schedule) get ids derived from the turn and run once.
A participant's tools see only that participant's sub-task.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .bounds import check_value
from .errors import TaskbotError
from .hours import zone
from .model import Assistant, FieldSpec, TaskDefinition
from .questions import accept, shown, what_fits
from .store import Store

#: What a tool hands back at most (a longer result is cut, with a note): every result goes into the next prompt.
MAX_RESULT = 8000


class ToolError(Exception):
    """A refusal the model reads as the tool's result (``error: ...``) and can act on."""


@dataclass
class ToolContext:
    """What a tool may touch: the records (read), one sub-task's own data, and effects staged for the turn."""

    store: Store
    now: float
    sid: str
    run: dict[str, str]
    definition: TaskDefinition
    fields: list[FieldSpec]
    data: dict[str, Any]
    turn_key: str
    record: dict[str, Any] = field(default_factory=dict)
    done: bool = False
    saved: list[dict[str, str]] = field(default_factory=list)
    effects: list[dict[str, Any]] = field(default_factory=list)
    tz: str = "UTC"  # the participant's: "tomorrow" is their tomorrow

    def effect_id(self, kind: str) -> str:
        """An id for the n-th effect of this turn, the same however many times the turn is computed."""
        seed = f"{self.turn_key}:{kind}:{len(self.effects) + len(self.saved)}"
        return hashlib.sha256(seed.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[ToolContext, dict[str, Any]], str]

    def schema(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}


REGISTRY: dict[str, Tool] = {}


def register(tool: Tool) -> Tool:
    """Add a tool (a plugin's, or a built-in); assistants enable it by name."""
    REGISTRY[tool.name] = tool
    return tool


def offered(assistant: Assistant, definition: TaskDefinition) -> list[Tool]:
    """The assistant's enabled tools intersected with the task's ``allowed_tools`` (empty = all)."""
    names = [n for n in REGISTRY if (not assistant.tools or n in assistant.tools)
             and (not definition.allowed_tools or n in definition.allowed_tools)]
    return [REGISTRY[n] for n in names]


def execute(ctx: ToolContext, tool: Tool, arguments: str) -> tuple[str, bool]:
    """Run one call; returns (what the model reads, whether it succeeded)."""
    try:
        args = json.loads(arguments or "{}")
        if not isinstance(args, dict):
            raise ToolError("arguments must be a JSON object")
        check_value(args, "arguments")  # what a tool records is stored and read back: no lone surrogate, 32 deep
        result = tool.run(ctx, args)
    except (json.JSONDecodeError, RecursionError):
        return "error: the arguments are not valid JSON", False
    except (ToolError, TaskbotError) as exc:
        return _cut(f"error: {exc}"), False
    except (KeyError, TypeError) as exc:
        return _cut(f"error: missing or wrong argument ({exc})"), False
    if not isinstance(result, str):  # a plugin's tool that returned something else: the model reads text
        result = json.dumps(result, default=str, ensure_ascii=False) if result is not None else "(no result)"
    return _cut(result), True  # a plugin's tool too: every result goes into the next prompt, at most this long


def _obj(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


# -- the built-in tools ------------------------------------------------------------------------
def record_data(ctx: ToolContext, args: dict[str, Any]) -> str:
    """Record one field's value, checked like a typed reply; recording a field again changes it (the old
    value goes to the sub-task's ``data_history``)."""
    key = str(args["key"])
    spec = next((f for f in ctx.fields if f.key == key), None)
    if spec is None:
        known = ", ".join(f.key for f in ctx.fields) or "none"
        raise ToolError(f"unknown field {key!r}; this conversation's fields are: {known}")
    value, problem = accept(spec, args["value"], datetime.fromtimestamp(ctx.now, zone(ctx.tz)).date())
    if problem:
        raise ToolError(f"{key}: {json.dumps(args['value'], ensure_ascii=False)} does not fit; "
                        f"record {what_fits(spec)}")
    before = ctx.data.get(key)
    ctx.record[key] = value
    ctx.data[key] = value
    if before is not None and before != value:
        return f"changed {key} from {shown(before)} to {shown(value)}; tell the person what changed"
    return f"recorded {key}"


def complete_subtask(ctx: ToolContext, args: dict[str, Any]) -> str:
    missing = [f.key for f in ctx.fields if f.required and ctx.data.get(f.key) in (None, "", [])]
    if missing:
        raise ToolError(f"cannot complete yet: required field(s) not recorded: {', '.join(missing)}")
    ctx.done = True
    return "completed: thank the person briefly; the conversation is closed"


def save_content(ctx: ToolContext, args: dict[str, Any]) -> str:
    title, content = str(args["title"]).strip(), str(args["content"])
    if not content.strip():
        raise ToolError("content is empty")
    sid = ctx.effect_id("save")
    ctx.saved.append({"id": sid, "title": title or "Untitled", "content": content})
    return f"saved as {sid}; the compile step will use it"


def get_deliverable(ctx: ToolContext, args: dict[str, Any]) -> str:
    did = str(args["id"]).strip()
    for item in ctx.saved + ctx.store.saved(ctx.run["id"]):
        if item["id"] == did:
            return _cut(f"# {item['title']}\n\n{item['content']}")
    found = ctx.store.deliverable_text(did)
    if found is None:
        raise ToolError(f"no deliverable {did!r}")
    return _cut(f"# {found[0]}\n\n{found[1]}")


def delegate(ctx: ToolContext, args: dict[str, Any]) -> str:
    aid, instructions = str(args["assistant_id"]).strip(), str(args["instructions"]).strip()
    if not instructions:
        raise ToolError("instructions are empty")
    ctx.store.assistant(aid)  # NotFound reads as an error
    rid = ctx.effect_id("delegate")
    ctx.effects.append({"kind": "delegate", "id": rid, "assistant": aid, "instructions": instructions})
    return (f"delegated to {aid} as run {rid}; its result will be posted in this conversation when it "
            "is ready. Tell the person you are waiting for it.")


def schedule_task(ctx: ToolContext, args: dict[str, Any]) -> str:
    from .cron import check, next_time
    from .errors import Conflict

    task_id, cron = str(args["task_id"]).strip(), str(args["cron"]).strip()
    tz = str(args.get("timezone") or "UTC")
    definition = ctx.store.get_definition(task_id)
    if not definition.active:
        raise Conflict(f"task {task_id!r} is inactive")
    check(cron, tz)
    schedule_id = ctx.effect_id("schedule")[:8]
    ctx.effects.append({"kind": "schedule", "id": schedule_id, "task_id": task_id, "cron": cron, "timezone": tz})
    when = next_time(cron, tz, ctx.now)
    return f"scheduled {task_id} as {schedule_id} ({cron} {tz}); first run at unix time {when:.0f}"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_RESULT else text[:MAX_RESULT] + "\n[cut]"


for _tool in (
    Tool("record_data", "Record the person's answer for one field of this conversation.",
         _obj({"key": {"type": "string", "description": "the field key"},
               "value": {"description": "the answer (text, number or list)"}}, ["key", "value"]), record_data),
    Tool("complete_subtask", "Close this conversation once every required field is recorded.",
         _obj({}, []), complete_subtask),
    Tool("save_content", "Save a piece of content (a draft, a text) for the task's deliverable.",
         _obj({"title": {"type": "string"}, "content": {"type": "string", "description": "Markdown"}},
              ["title", "content"]), save_content),
    Tool("get_deliverable", "Read a deliverable or saved content by its id.",
         _obj({"id": {"type": "string"}}, ["id"]), get_deliverable),
    Tool("delegate", "Hand a piece of work to another assistant; its result comes back here.",
         _obj({"assistant_id": {"type": "string"}, "instructions": {"type": "string"}},
              ["assistant_id", "instructions"]), delegate),
    Tool("schedule_task", "Schedule a task to run on a cron schedule.",
         _obj({"task_id": {"type": "string"}, "cron": {"type": "string", "description": 'e.g. "0 9 * * MON"'},
               "timezone": {"type": "string", "description": "IANA zone, default UTC"}}, ["task_id", "cron"]),
         schedule_task),
):
    register(_tool)
