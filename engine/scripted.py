"""The `scripted` conversation: offline and deterministic, one field per turn (SPEC §5, §11).

Each reply answers the field being asked, unless it is a greeting or a question to the bot
(explained, then asked again), ``skip`` (an optional field), or ``change <field>: <value>``
(an earlier answer replaced). A reply that does not fit the field's type is not recorded: the
question comes again, with what fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .model import FieldSpec
from .questions import Change, find_change, hint, parse_answer, said, shown, small_talk

SKIP_WORDS = frozenset({"skip", "/skip", "pass", "n/a"})
DONE_TEXT = "Thank you! Your answers are recorded."


@dataclass(frozen=True)
class Turn:
    """What one participant message does: values to record, where the cursor goes, what to say.

    ``asks`` is the index of the field the reply asks (so a channel can add its buttons), or None.
    """

    reply: str
    cursor: int
    record: dict[str, Any] = field(default_factory=dict)
    done: bool = False
    asks: int | None = None


def opening(instructions: str, fields: list[FieldSpec]) -> str:
    """The first message: the instructions, then the first field's prompt (if there are fields)."""
    first = ask(fields[0]) if fields else ""
    if not instructions.strip():
        return first
    return f"{instructions.strip()}\n\n{first}" if first else instructions.strip()


def ask(spec: FieldSpec) -> str:
    text = spec.prompt
    if spec.type == "choice" and spec.choices:
        text += "\n" + "\n".join(f"{i}. {c}" for i, c in enumerate(spec.choices, 1))
    if hint(spec):
        text += "\n" + hint(spec)
    if not spec.required:
        text += "\n(optional: reply 'skip' to pass)"
    return text


def parse_value(spec: FieldSpec, text: str, today: date | None = None) -> tuple[Any, str | None]:
    """Return (value, None) or (None, why it does not fit), so the field can be asked again."""
    return parse_answer(spec, text, today or date.today())


def explain(about: str) -> str:
    task = f" for “{about}”" if about else ""
    return (f"Hi! I am taskbot, collecting a few answers{task}. Just answer the question below; 'skip' passes an "
            "optional one, and 'change <question>: <new answer>' changes an answer you gave.")


def _asking(fields: list[FieldSpec], cursor: int, reply: str, record: dict[str, Any] | None = None) -> Turn:
    """A turn that stays on the field at ``cursor`` and asks it again after ``reply``."""
    return Turn(reply=f"{reply}\n\n{ask(fields[cursor])}", cursor=cursor, record=record or {}, asks=cursor)


def file_turn(fields: list[FieldSpec], cursor: int, names: list[str]) -> Turn | None:
    """A message that is files only answers a ``text`` field (its files' names are recorded); a
    typed field needs a typed answer: the person is told, and asked again (None: not this case)."""
    if cursor >= len(fields) or fields[cursor].type == "text":
        return None
    what = ", ".join(names) or "your file"
    return _asking(fields, cursor, f"Thanks, I kept {what}. This question needs a typed answer "
                                   f"({fields[cursor].type}), not a file: please write it.")


def scripted_turn(fields: list[FieldSpec], cursor: int, text: str, *, data: dict[str, Any] | None = None,
                  today: date | None = None, about: str = "", answers: str | None = None) -> Turn:
    """Record ``text`` as the field at ``cursor`` and ask the next one.

    Args:
        fields: the fields of the sub-task, in order.
        cursor: index of the field being asked.
        text: the participant's message.
        data: what is recorded so far (a change says what it replaces).
        today: the participant's own date, for dates like ``tomorrow``.
        about: the task's name, for the explanation a greeting gets.
        answers: the field a button belongs to (a click): it answers that field, whichever is asked.

    Returns:
        The turn; ``done`` once every field was answered or skipped.
    """
    if cursor >= len(fields):
        return Turn(reply="Thanks, your answers are already recorded.", cursor=cursor, done=True)
    today = today or date.today()
    data = data or {}
    spec = fields[cursor]
    text = text.strip()
    keys = [f.key for f in fields]
    if answers is not None and answers in keys and answers != spec.key:
        return _change(fields, cursor, fields[keys.index(answers)], text, data, today, click=True)
    change = find_change(text, fields) if answers is None else None
    if change is not None and change[0].key != spec.key:
        return _change(fields, cursor, change[0], change[1], data, today)
    if change is not None:
        text = change[1]
    record: dict[str, Any] = {}
    if text.lower() in SKIP_WORDS:
        if spec.required:
            return _asking(fields, cursor, "This one is required, sorry.")
    elif not text:
        return Turn(reply=ask(spec), cursor=cursor, asks=cursor)
    elif answers is None and small_talk(text):
        return _asking(fields, cursor, explain(about))
    else:
        value, problem = parse_answer(spec, text, today)
        if problem:
            return _asking(fields, cursor, problem)
        record[spec.key] = value
    cursor += 1
    if cursor < len(fields):
        return Turn(reply=ask(fields[cursor]), cursor=cursor, record=record, asks=cursor)
    return Turn(reply=DONE_TEXT, cursor=cursor, record=record, done=True)


def _change(fields: list[FieldSpec], cursor: int, target: FieldSpec, text: str, data: dict[str, Any],
            today: date, *, click: bool = False) -> Turn:
    """Replace the answer to ``target``, an earlier field; the field being asked stays the cursor's."""
    if fields.index(target) > cursor:
        return _asking(fields, cursor, f"We have not got to “{target.prompt}” yet; it comes in turn.")
    value, problem = parse_answer(target, text, today)
    if problem:
        return _asking(fields, cursor, f"{problem} Your answer to “{target.prompt}” stays "
                                       f"{shown(data.get(target.key))}.")
    if target.key in data and data[target.key] == value:
        # a second click of the same button (or the same change again): nothing to say twice
        again = f"Your answer to “{target.prompt}” is already {shown(value)}."
        return Turn(reply="" if click else again, cursor=cursor, asks=None if click else cursor)
    told = said([Change(target.key, data.get(target.key), value)], fields)
    return _asking(fields, cursor, told, {target.key: value})


def edit_turn(fields: list[FieldSpec], cursor: int, key: str | None, text: str, *, data: dict[str, Any],
              today: date) -> Turn:
    """An edited message: when it gave the answer to field ``key``, the edit is that answer now.

    An edit of a message that answered nothing changes nothing (and says nothing).
    """
    target = next((f for f in fields if f.key == key), None)
    if target is None:
        return Turn(reply="", cursor=cursor)
    value, problem = parse_answer(target, text.strip(), today)
    more = f"\n\n{ask(fields[cursor])}" if cursor < len(fields) else ""
    asks = cursor if cursor < len(fields) else None
    if problem:
        return Turn(reply=f"{problem} Your answer to “{target.prompt}” stays {shown(data.get(target.key))}.{more}",
                    cursor=cursor, asks=asks)
    if data.get(target.key) == value:
        return Turn(reply="", cursor=cursor)
    told = said([Change(target.key, data.get(target.key), value)], fields)
    return Turn(reply=told + more, cursor=cursor, record={target.key: value}, asks=asks)
