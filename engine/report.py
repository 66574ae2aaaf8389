"""The scripted compile step: a Markdown report of participants by fields (SPEC §5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .model import FieldSpec


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_report(
    title: str,
    description: str,
    fields: Sequence[FieldSpec],
    participants: Sequence[Mapping[str, Any]],
    gathered: Mapping[str, Any] | None = None,
) -> str:
    """Render the report.

    Args:
        title: the task's name.
        description: the task's description, shown under the title.
        fields: the fields asked (the table's columns).
        participants: dicts with ``id``, ``name``, ``status``, ``data``, ``reason``, and optionally ``late``
            (answered after the fan-out closed) and ``escalated_to`` (who was told they were missing).
        gathered: data gathered outside fan-out (owner conversations, trigger data).
    """
    lines = [f"# {title}", ""]
    if description:
        lines += [description.strip(), ""]
    answered = [p for p in participants if p["status"] == "completed"]
    lines.append(f"{len(answered)} of {len(participants)} participants answered.")
    lines.append("")
    if fields:
        lines.append("| Participant | " + " | ".join(f.key for f in fields) + " | Status |")
        lines.append("|---" * (len(fields) + 2) + "|")
        for p in participants:
            cells = [_cell(p["data"].get(f.key)) for f in fields]
            status = f"{p['status']} (late)" if p.get("late") else p["status"]
            lines.append(f"| {_cell(p['name'])} | " + " | ".join(cells) + f" | {status} |")
        lines.append("")
    for status, heading in (("timed_out", "Timed out"), ("failed", "Failed"), ("excused", "Excused"),
                            ("cancelled", "Cancelled")):
        people = [p for p in participants if p["status"] == status]
        if people:
            lines.append(f"**{heading}:** " + ", ".join(
                _cell(p["name"]) + (f" ({p['reason']})" if p.get("reason") else "") for p in people))
            lines.append("")
    escalated = [p for p in participants if p.get("escalated_to")]
    if escalated:
        lines.append("**Escalated:** " + ", ".join(f"{_cell(p['name'])} (to {_cell(p['escalated_to'])})"
                                                   for p in escalated))
        lines.append("")
    late = [p for p in participants if p.get("late")]
    if late:
        lines.append("**Answered late:** " + ", ".join(_cell(p["name"]) for p in late))
        lines.append("")
    extra = {k: v for k, v in (gathered or {}).items() if k not in ("tasks", "task_status")}
    if extra:
        lines.append("## Inputs")
        lines += [f"- **{k}**: {_cell(v)}" for k, v in sorted(extra.items())]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
