"""The compile step (SPEC §3, §5): the scripted Markdown report, or one model call for the output type.

Through a model, holding a concurrency slot, it gathers what the run collected (answers by
participant, who did not answer, the owner's conversations, content saved by tools), asks the
model for the deliverable the output type describes, and returns it: Markdown text, or a file
(an image made by the model's image generation, or the text saved as a file). A provider that
still fails after the retries, or a model that cannot make images, is a failure with the
reason. Storing the deliverable and moving the run on is the caller's (:mod:`.runs`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from . import outputs
from .agent import AgentConfig, call_model, compile_messages, history, model_opts
from .budget import Budgets
from .conversation import NoModel
from .limits import Slots
from .model import Assistant, CompileState, ConversationState, TaskState
from .ports import Model, ModelError, Usage
from .report import markdown_report
from .store import Store

log = logging.getLogger("taskbot.compiler")

#: The most material sent to the model (characters); a larger run is cut, with a note.
MAX_MATERIAL = 60_000


@dataclass(frozen=True)
class Compiled:
    """A deliverable to store: its fields, the run's one-line summary, its file (image or file types)."""

    deliverable: dict[str, Any]
    summary: str
    file: bytes | None = None
    usage: Usage = Usage()
    calls: int = 0


@dataclass(frozen=True)
class Revision:
    """A new version being compiled: the version it replaces, what changed since, and the late sub-tasks
    waiting for versions of their own (not in this one)."""

    previous: str
    change: str
    pending: frozenset[str] = frozenset()


def as_gathered(sub: dict[str, str], gathered: dict[str, Any], pending: frozenset[str] | None) -> dict[str, str]:
    """A fan-out's sub-task as a new version has it (``pending`` given): one that timed out reads from
    ``gathered`` (a late answer under way, or waiting for a version of its own, is not in this one)."""
    if pending is None or sub.get("kind") == "conversation" or (
            sub["id"] not in pending and sub.get("status") != "timed_out"):
        return sub
    pid = sub["participant_id"]
    data = gathered.get("tasks", {}).get(pid)
    if data is None:
        return sub
    seen = {**sub, "data": json.dumps(data), "status": gathered.get("task_status", {}).get(pid, sub["status"])}
    if sub["id"] in pending:
        seen.update(late="", reason=sub.get("timed_out_reason", ""))
    return seen


@dataclass(frozen=True)
class CompileFailed:
    """The compile step failed for good: the run fails with ``reason`` (the tokens spent still count)."""

    reason: str
    usage: Usage = Usage()
    calls: int = 0


def material(store: Store, config: AgentConfig, run: dict[str, str], step: int,
             pending: frozenset[str] | None = None) -> str:
    """What the run gathered, as Markdown the model reads."""
    states = store.definition_of(run).states()
    everything = json.loads(run["gathered"])
    subs = [as_gathered(s, everything, pending) for s in store.subs_fields(store.sub_ids(run["id"])) if s]
    gathered = {k: v for k, v in everything.items() if k not in ("tasks", "task_status")}
    parts = []
    if gathered:
        parts.append("## Data\n\n```json\n" + json.dumps(gathered, indent=1, ensure_ascii=False) + "\n```")
    for index, state in enumerate(states[:step]):
        mine = [s for s in subs if s.get("step") == str(index)]
        if isinstance(state, TaskState):
            lines = [f"## Answers: {state.name or 'participants'}", "",
                     "Questions: " + "; ".join(f"{f.key} = {f.prompt}" for f in state.fields), ""]
            for s in mine:
                who = f"{s.get('name') or s['participant_id']} ({s['participant_id']})"
                notes = "".join(f" ({note})" for note in (
                    "answered late" if s.get("late") == "1" else "",
                    f"escalated to {s['escalated_name']}" if s.get("escalated_name") else "") if note)
                if s["status"] == "completed":
                    lines.append(f"- {who}: {json.dumps(json.loads(s['data']), ensure_ascii=False)}{notes}")
                else:
                    lines.append(f"- {who}: no answer ({s['status']}{': ' + s['reason'] if s.get('reason') else ''})"
                                 f"{notes}")
            parts.append("\n".join(lines))
        elif isinstance(state, ConversationState):
            for s in mine:
                said = history(store.conversation(s["id"]), config.history)
                transcript = "\n".join(f"{m['role']}: {m['content']}" for m in said)
                parts.append(f"## Conversation with {s.get('name') or s['participant_id']}\n\n{transcript}")
    for item in store.saved(run["id"]):
        parts.append(f"## Saved content {item['id']}: {item['title']}\n\n{item['content']}")
    text = "\n\n".join(parts) or "(nothing was gathered)"
    if len(text) > MAX_MATERIAL:
        text = text[:MAX_MATERIAL] + "\n\n[the material was cut here]"
    return text


def summary_of(text: str, fallback: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#*- ").strip()
        if line:
            return line[:200]
    return fallback


class Compiler:
    """Compile a run's deliverable.

    Args:
        store: the records (what the run gathered).
        slots: the concurrency limits a model's compile holds a slot of.
        model: the LLM port (None: a compile through a model fails clearly).
        config: the agent loop's retries and bounds.
        budgets: whether the run's token budget allows the compile's model call (else the scripted report).
    """

    def __init__(self, store: Store, slots: Slots, model: Model | None, config: AgentConfig,
                 budgets: Budgets) -> None:
        self.store = store
        self.slots = slots
        self.model: Model = model or NoModel()
        self.config = config
        self.budgets = budgets

    def compile(self, run: dict[str, str], step: int, state: CompileState, *, item: str | None = None,
                revision: Revision | None = None) -> Compiled | CompileFailed | None:
        """The deliverable of workflow state ``step``; None while it waits for a model slot (the
        lease ``item``, by default the step's, stays, and a freed slot wakes it).

        ``revision``: compiling a new version (a late answer came); a model sees the previous
        version and the change, the scripted report is simply written again.
        """
        assistant = self.store.assistant_of(run)
        if assistant.scripted:
            return self.report(run, step, state, revision.pending if revision else None)
        if self.budgets.spent(run, assistant):
            return self.without_model(run, assistant, step, state, revision)
        rid = run["id"]
        with self.slots.hold(item or f"step:{rid}:{step}", assistant.id, assistant.max_concurrent_tasks,
                             f"run:{rid}") as got:
            if got != 1:
                return None
            return self.with_model(run, assistant, step, state, revision)

    def report(self, run: dict[str, str], step: int, state: CompileState,
               pending: frozenset[str] | None = None) -> Compiled:
        """The scripted compile: a Markdown report of every fan-out state's answers."""
        definition = self.store.definition_of(run)
        states = definition.states()
        gathered = json.loads(run["gathered"])
        subs = [as_gathered(s, gathered, pending) for s in self.store.subs_fields(self.store.sub_ids(run["id"]))]
        sections = []
        for index, earlier in enumerate(states[:step]):
            if isinstance(earlier, TaskState):
                people = [{"id": s["participant_id"], "name": s["name"], "status": s["status"],
                           "data": json.loads(s["data"]), "reason": s.get("reason", ""), "late": s.get("late") == "1",
                           "escalated_to": s.get("escalated_name") or s.get("escalated_to") or ""}
                          for s in subs if s["step"] == str(index)]
                sections.append((earlier.fields, people))
        if not sections:
            content = markdown_report(definition.name, state.instructions or definition.description, [], [],
                                      gathered)
        else:
            content = "\n".join(markdown_report(definition.name if i == 0 else (states[i].name or "Answers"),
                                                definition.description if i == 0 else "", fields, people,
                                                gathered if i == len(sections) - 1 else None)
                                for i, (fields, people) in enumerate(sections))
        summary = content.splitlines()[2] if len(content.splitlines()) > 2 else definition.name
        return Compiled({"output_type": definition.output_type, "title": definition.name, "content": content},
                        summary)

    def without_model(self, run: dict[str, str], assistant: Assistant, step: int, state: CompileState,
                      revision: Revision | None) -> Compiled | CompileFailed:
        """The run's token budget is spent: the scripted report stands in for the model's deliverable, saying so
        (as the file of a ``file`` type); an image cannot be made without the model, so that compile fails."""
        definition = self.store.definition_of(run)
        output = outputs.get(definition.output_type)
        note = (f"_Written without the model: this run reached its budget of "
                f"{self.budgets.limit(run, assistant):,} model tokens._")
        if output.kind == "image":
            return CompileFailed(f"compile failed: the run reached its token budget, and an image needs the model "
                                 f"({note.strip('_')})")
        compiled = self.report(run, step, state, revision.pending if revision else None)
        content = f"{compiled.deliverable['content']}\n\n{note}\n"
        deliverable = {**compiled.deliverable, "content": content}
        if output.kind != "file":
            return Compiled(deliverable, compiled.summary)
        name = outputs.filename(definition.name, output)
        deliverable.update(filename=name, content_type=output.content_type, size=len(content.encode()))
        return Compiled(deliverable, compiled.summary, content.encode())

    def with_model(self, run: dict[str, str], assistant: Assistant, step: int, state: CompileState,
                   revision: Revision | None = None) -> Compiled | CompileFailed:
        """Write the deliverable with the assistant's model (the caller holds the slot)."""
        definition = self.store.definition_of(run)
        output = outputs.get(definition.output_type)
        text = material(self.store, self.config, run, step, revision.pending if revision else None)
        instructions = state.instructions or definition.description
        if revision is not None:
            text += (f"\n\n## The previous version\n\n{revision.previous[:MAX_MATERIAL // 2]}"
                     f"\n\n## What changed since\n\n{revision.change}")
            instructions += ("\n\nThis is a new version: revise the previous version so that it takes in what "
                             "changed, keeping the rest as it was.")
        messages = compile_messages(assistant, definition, instructions, output.instructions, text)
        try:
            completion = call_model(self.model, assistant, messages, [], self.config)
        except ModelError as exc:
            return CompileFailed(f"compile failed: the model {assistant.model} did not answer ({exc.reason})")
        text = completion.text.strip()
        file: bytes | None = None
        deliverable: dict[str, Any] = {"output_type": definition.output_type, "title": definition.name,
                                       "content": text}
        if output.kind == "image":
            image_model = assistant.image_model or assistant.model
            try:
                file = self.model.image(image_model, text, **model_opts(assistant, self.config))
            except ModelError as exc:
                return CompileFailed(f"image generation failed: the model {image_model} cannot make images "
                                     f"({exc.reason})", completion.usage, 1)
        elif output.kind == "file":
            file = text.encode()
        if file is not None:
            name = outputs.filename(definition.name, output)
            deliverable.update(filename=name, content_type=output.content_type, size=len(file),
                               content=f"{output.kind.capitalize()} {name} ({len(file):,} bytes)"
                                       + (f"\n\n{text}" if output.kind == "image" else ""))
        summary = (summary_of(text, definition.name) if output.kind == "text"
                   else deliverable["content"].splitlines()[0])
        return Compiled(deliverable, summary, file, completion.usage, 1)
