"""The assistant's agent loop (SPEC §5): prompt, bounded history, model calls with retries, tools.

Everything here is computation: it reads what it is given and returns an :class:`AgentTurn`
(or a compile text); nothing is written to Redis. The caller holds a concurrency slot while
this runs and applies the result in one transaction afterwards.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import Assistant, FieldSpec, TaskDefinition
from .ports import Completion, Model, ModelError, Usage
from .questions import what_fits
from .tools import Tool, ToolContext, execute

log = logging.getLogger("taskbot.agent")

PERSONA = "You are taskbot, a concise and friendly assistant who gets work done with people."
FALLBACK = "Sorry, I got tangled up there. Could you say that again, perhaps in other words?"
DONE_TEXT = "Thank you! Your answers are recorded."
NOTE = "[note from taskbot, not from the person] "


@dataclass(frozen=True)
class AgentConfig:
    """How the loop behaves (settings: TASKBOT_HISTORY_MESSAGES, TASKBOT_MAX_TURN_STEPS, ...).

    Attributes:
        history: conversation messages sent with each call, newest kept (0: all of them).
        max_steps: model calls in one turn before the polite fallback.
        retries: further attempts after a rate limit or provider error.
        backoff: seconds before the first retry; doubled each time, at most ``max_backoff``.
        timeout: seconds one model call may take.
    """

    history: int = 20
    max_steps: int = 6
    retries: int = 4
    backoff: float = 1.0
    max_backoff: float = 30.0
    timeout: float = 120.0
    sleep: Callable[[float], None] = time.sleep


@dataclass
class AgentTurn:
    """What one participant message led to, before it is applied."""

    reply: str = ""
    record: dict[str, Any] = field(default_factory=dict)
    done: bool = False
    log: list[dict[str, Any]] = field(default_factory=list)
    saved: list[dict[str, str]] = field(default_factory=list)
    effects: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = Usage()
    calls: int = 0
    failed: str | None = None


def model_opts(assistant: Assistant, config: AgentConfig) -> dict[str, Any]:
    opts: dict[str, Any] = {"timeout": config.timeout}
    if assistant.api_base:
        opts["api_base"] = assistant.api_base
    if assistant.api_key_env:
        opts["api_key_env"] = assistant.api_key_env
    return opts


def call_model(port: Model, assistant: Assistant, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
               config: AgentConfig) -> Completion:
    """One completion, retried with exponential backoff (or the provider's Retry-After).

    Raises:
        ModelError: not retryable, or still failing after ``config.retries`` retries.
    """
    attempt = 0
    while True:
        try:
            return port.complete(assistant.model, messages, tools, **model_opts(assistant, config))
        except ModelError as exc:
            if not exc.retryable or attempt >= config.retries:
                raise
            delay = min(config.max_backoff, max(exc.retry_after or 0.0, config.backoff * 2 ** attempt))
            log.info("model %s: %s; retry %d in %.2fs", assistant.model, exc.reason, attempt + 1, delay)
            config.sleep(delay)
            attempt += 1


def describe_fields(fields: Sequence[FieldSpec], data: dict[str, Any]) -> str:
    lines = []
    for f in fields:
        kind = f.type if f.type == "text" else f"{f.type}: {what_fits(f)}"
        got = f" — recorded: {json.dumps(data[f.key], ensure_ascii=False)}" if f.key in data else ""
        lines.append(f"- {f.key} ({'required' if f.required else 'optional'}, {kind}): {f.prompt}{got}")
    return "\n".join(lines)


def system_prompt(assistant: Assistant, definition: TaskDefinition, instructions: str, fields: Sequence[FieldSpec],
                  data: dict[str, Any], person: str, tools: Sequence[Tool]) -> str:
    """The assistant's prompt, the task, the fields with required flags, and what is recorded so far."""
    parts = [assistant.system_prompt.strip() or PERSONA,
             f'You are in a private conversation with {person} for the task "{definition.name}".']
    if definition.description.strip():
        parts.append(f"The task: {definition.description.strip()}")
    if instructions.strip():
        parts.append(f"Instructions for this conversation: {instructions.strip()}")
    names = {t.name for t in tools}
    if fields:
        missing = [f.key for f in fields if f.required and f.key not in data]
        parts.append("Collect these fields, one question at a time:\n" + describe_fields(fields, data))
        parts.append("Record each answer with record_data as soon as the person gives it. "
                     + (f"Still missing (required): {', '.join(missing)}. " if missing else
                        "Every required field is recorded. ")
                     + ("When every required field is recorded, call complete_subtask and thank them."
                        if "complete_subtask" in names else ""))
    else:
        parts.append("There are no fields to collect: do what the task asks, ask only for what you need"
                     + (", save results with save_content" if "save_content" in names else "")
                     + (", and call complete_subtask when the work is done." if "complete_subtask" in names
                        else "."))
    parts.append("Keep replies short and plain. Never mention other people's answers.")
    return "\n\n".join(parts)


def history(conversation: Sequence[dict[str, Any]], bound: int) -> list[dict[str, Any]]:
    """The stored conversation as model messages, newest ``bound`` kept (0: all).

    Tool calls of earlier turns are left out: what they recorded is in the system prompt.
    Notes from taskbot (a delegated result, a cut message) go as user messages marked as notes,
    which every provider accepts mid-conversation.
    """
    out = []
    for m in conversation:
        role = m.get("role")
        if role == "user" and not m.get("auto_reply"):
            out.append({"role": "user", "content": m["text"]})
        elif role == "assistant":
            out.append({"role": "assistant", "content": m["text"]})
        elif role == "system" and m.get("kind") != "fault":
            out.append({"role": "user", "content": NOTE + m["text"]})
    return out[-bound:] if bound > 0 else out


def run_turn(port: Model, config: AgentConfig, assistant: Assistant, system: str, messages: list[dict[str, Any]],
             tools: Sequence[Tool], ctx: ToolContext) -> AgentTurn:
    """Call the model, run its tool calls, feed the results back, until it answers the person.

    A call to a tool that is not offered is refused (and logged), never run. After
    ``config.max_steps`` model calls the turn ends with a polite fallback.
    """
    turn = AgentTurn()
    offered = {t.name: t for t in tools}
    schemas = [t.schema() for t in tools]
    sent = [{"role": "system", "content": system}, *messages]
    for _ in range(config.max_steps):
        try:
            completion = call_model(port, assistant, sent, schemas, config)
        except ModelError as exc:
            turn.failed = exc.reason
            return turn
        turn.usage += completion.usage
        turn.calls += 1
        if not completion.tool_calls:
            turn.reply = completion.text.strip() or (DONE_TEXT if ctx.done else FALLBACK)
            break
        sent.append({"role": "assistant", "content": completion.text or None, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in completion.tool_calls]})
        for c in completion.tool_calls:
            tool = offered.get(c.name)
            if tool is None:
                result, ok = f"error: tool {c.name!r} is not available in this conversation; it was not run", False
                turn.log.append({"tool": c.name, "arguments": c.arguments, "result": result, "refused": True})
            else:
                result, ok = execute(ctx, tool, c.arguments)
                turn.log.append({"tool": c.name, "arguments": c.arguments, "result": result, "ok": ok})
            sent.append({"role": "tool", "tool_call_id": c.id, "content": result})
    else:
        log.warning("turn of %s stopped after %d model calls without an answer", ctx.sid, config.max_steps)
        turn.reply = DONE_TEXT if ctx.done else FALLBACK
    turn.record, turn.done, turn.saved, turn.effects = ctx.record, ctx.done, ctx.saved, ctx.effects
    return turn


def compile_messages(assistant: Assistant, definition: TaskDefinition, instructions: str, output_instructions: str,
                     material: str) -> list[dict[str, Any]]:
    """The compile step's request: what to write (the output type's instructions) and the material."""
    system = "\n\n".join(p for p in [
        assistant.system_prompt.strip() or PERSONA,
        f'You write the deliverable of the task "{definition.name}".',
        f"The task: {definition.description.strip()}" if definition.description.strip() else "",
        f"Instructions: {instructions.strip()}" if instructions.strip() and instructions != definition.description
        else "",
        f"What to write: {output_instructions}",
        "Answer with the deliverable only."] if p)
    return [{"role": "system", "content": system}, {"role": "user", "content": material}]
