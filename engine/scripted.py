"""The `scripted` conversation: offline and deterministic, one field per turn (SPEC §5)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .model import FieldSpec

SKIP_WORDS = frozenset({"skip", "/skip", "pass", "n/a"})


@dataclass(frozen=True)
class Turn:
    """What one participant message does: values to record, where the cursor goes, what to say."""

    reply: str
    cursor: int
    record: dict[str, Any] = field(default_factory=dict)
    done: bool = False


def opening(instructions: str, fields: list[FieldSpec]) -> str:
    """The first message: the instructions, then the first field's prompt (if there are fields)."""
    first = ask(fields[0]) if fields else ""
    if not instructions.strip():
        return first
    return f"{instructions.strip()}\n\n{first}" if first else instructions.strip()


def ask(spec: FieldSpec) -> str:
    text = spec.prompt
    if spec.choices:
        text += "\n" + "\n".join(f"{i}. {c}" for i, c in enumerate(spec.choices, 1))
    if not spec.required:
        text += "\n(optional: reply 'skip' to pass)"
    return text


def parse_value(spec: FieldSpec, text: str) -> tuple[Any, str | None]:
    """Return (value, None) or (None, why it does not fit), so the field can be asked again."""
    if spec.type == "number" or spec.type == "scale":
        try:
            number = float(text.replace(",", "."))
        except ValueError:
            return None, "Please answer with a number."
        return (int(number) if number.is_integer() else number), None
    if spec.type == "choice" and spec.choices:
        lowered = {c.lower(): c for c in spec.choices}
        if text.lower() in lowered:
            return lowered[text.lower()], None
        if text.isdigit() and 1 <= int(text) <= len(spec.choices):
            return spec.choices[int(text) - 1], None
        return None, "Please answer with one of: " + ", ".join(spec.choices) + "."
    if spec.type == "list":
        items = [i.strip() for i in re.split(r"[,;\n]+", text) if i.strip()]
        return items, None
    return text, None


def scripted_turn(fields: list[FieldSpec], cursor: int, text: str) -> Turn:
    """Record ``text`` as the field at ``cursor`` and ask the next one.

    Args:
        fields: the fields of the sub-task, in order.
        cursor: index of the field being asked.
        text: the participant's message.

    Returns:
        The turn; ``done`` once every field was answered or skipped.
    """
    if cursor >= len(fields):
        return Turn(reply="Thanks, your answers are already recorded.", cursor=cursor, done=True)
    spec = fields[cursor]
    text = text.strip()
    record: dict[str, Any] = {}
    if text.lower() in SKIP_WORDS:
        if spec.required:
            return Turn(reply=f"This one is required, sorry: {ask(spec)}", cursor=cursor)
    elif not text:
        return Turn(reply=ask(spec), cursor=cursor)
    else:
        value, problem = parse_value(spec, text)
        if problem:
            return Turn(reply=f"{problem}\n{ask(spec)}", cursor=cursor)
        record[spec.key] = value
    cursor += 1
    if cursor < len(fields):
        return Turn(reply=ask(fields[cursor]), cursor=cursor, record=record)
    return Turn(reply="Thank you! Your answers are recorded.", cursor=cursor, record=record, done=True)
