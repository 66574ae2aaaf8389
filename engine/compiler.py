"""The compile step through a model: the material of the run, the output type's instructions, one call.

Holding a slot (taken by the caller), it gathers what the run collected (answers by participant,
who did not answer, the owner's conversations, content saved by tools), asks the model for the
deliverable the output type describes, and stores it: Markdown text, or a file (an image made
by the model's image generation, or the text saved as a file). A provider that still fails after
the retries, or a model that cannot make images, fails the run with the reason.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from . import outputs
from .agent import call_model, compile_messages, history, model_opts
from .model import Assistant, CompileState, ConversationState, TaskState
from .ports import ModelError

if TYPE_CHECKING:
    from .conversation import Conversations

log = logging.getLogger("taskbot.compiler")

#: The most material sent to the model (characters); a larger run is cut, with a note.
MAX_MATERIAL = 60_000


def material(conv: Conversations, run: dict[str, str], step: int) -> str:
    """What the run gathered, as Markdown the model reads."""
    e = conv.e
    states = e.definition_of(run).states()
    subs = [s for s in e.store.subs_fields(e.store.sub_ids(run["id"])) if s]
    gathered = {k: v for k, v in json.loads(run["gathered"]).items() if k not in ("tasks", "task_status")}
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
                if s["status"] == "completed":
                    lines.append(f"- {who}: {json.dumps(json.loads(s['data']), ensure_ascii=False)}")
                else:
                    lines.append(f"- {who}: no answer ({s['status']}{': ' + s['reason'] if s.get('reason') else ''})")
            parts.append("\n".join(lines))
        elif isinstance(state, ConversationState):
            for s in mine:
                said = history(e.store.conversation(s["id"]), conv.config.history)
                transcript = "\n".join(f"{m['role']}: {m['content']}" for m in said)
                parts.append(f"## Conversation with {s.get('name') or s['participant_id']}\n\n{transcript}")
    for item in e.store.saved(run["id"]):
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


def compile_with_model(conv: Conversations, run: dict[str, str], assistant: Assistant, step: int,
                       state: CompileState) -> bool:
    """Write and store the deliverable; True when stored (the caller moves the run on)."""
    e, rid = conv.e, run["id"]
    definition = e.definition_of(run)
    output = outputs.get(definition.output_type)
    messages = compile_messages(assistant, definition, state.instructions or definition.description,
                                output.instructions, material(conv, run, step))
    try:
        completion = call_model(conv.model, assistant, messages, [], conv.config)
    except ModelError as exc:
        e.runs.fail(rid, f"compile failed: the model {assistant.model} did not answer ({exc.reason})")
        return False
    text = completion.text.strip()
    file: bytes | None = None
    deliverable: dict[str, Any] = {"output_type": definition.output_type, "title": definition.name, "content": text}
    if output.kind == "image":
        image_model = assistant.image_model or assistant.model
        try:
            file = conv.model.image(image_model, text, **model_opts(assistant, conv.config))
        except ModelError as exc:
            conv.count_now(rid, completion.usage, 1)
            e.runs.fail(rid, f"image generation failed: the model {image_model} cannot make images ({exc.reason})")
            return False
    elif output.kind == "file":
        file = text.encode()
    if file is not None:
        name = outputs.filename(definition.name, output)
        deliverable.update(filename=name, content_type=output.content_type, size=len(file),
                           content=f"{output.kind.capitalize()} {name} ({len(file):,} bytes)"
                                   + (f"\n\n{text}" if output.kind == "image" else ""))

    def usage(p: Any) -> None:
        conv.count(p, rid, completion.usage, 1)

    summary = summary_of(text, definition.name) if output.kind == "text" else deliverable["content"].splitlines()[0]
    if e.runs.deliver(rid, step, deliverable, summary, file=file, usage=usage):
        return True
    conv.count_now(rid, completion.usage, 1)
    return False
