"""Block Kit for Slack: the "new task" modal (and reading it back), and `/task` answers as blocks."""

from __future__ import annotations

import re
from typing import Any

from engine.model import FIELD_KEY, OUTPUT_TYPES

NEW_TASK = "taskbot_new_task"
#: Slack's limits: 3000 characters in a section's text, 50 blocks in a message.
SECTION_MAX = 2900
BLOCKS_MAX = 50

#: Where a definition error shows on the modal: the first field prefix that matches wins.
BLOCK_OF = (
    ("template.chase.interval", "chase_interval"), ("template.chase.max_chases", "max_chases"),
    ("template.chase", "chase_interval"), ("template.fields", "questions"), ("template.instructions", "instructions"),
    ("template.dataset", "dataset"), ("template.filter", "filter"), ("template", "participants"),
    ("output_type", "output_type"), ("description", "description"), ("cron", "schedule"),
    ("timezone", "timezone"), ("id", "name"), ("name", "name"),
)


def block_for(field: str) -> str:
    return next((block for prefix, block in BLOCK_OF if field == prefix or field.startswith(prefix + ".")
                 or field.startswith(prefix + "[")), "name")


def _text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _input(block_id: str, label: str, element: dict[str, Any], *, optional: bool = False,
           hint: str | None = None) -> dict[str, Any]:
    block = {"type": "input", "block_id": block_id, "label": _text(label), "optional": optional,
             "element": {**element, "action_id": "value"}}
    if hint:
        block["hint"] = _text(hint)
    return block


def _plain(placeholder: str = "", *, multiline: bool = False, initial: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "multiline": multiline}
    if placeholder:
        element["placeholder"] = _text(placeholder)
    if initial is not None:
        element["initial_value"] = initial
    return element


def new_task_modal() -> dict[str, Any]:
    """The form `/task new` opens (``views.open``); its answers come back as a ``view_submission``."""
    options = [{"text": _text(t), "value": t} for t in sorted(OUTPUT_TYPES)]
    report = next(o for o in options if o["value"] == "report")
    return {
        "type": "modal", "callback_id": NEW_TASK, "title": _text("New task"), "submit": _text("Save"),
        "close": _text("Cancel"),
        "blocks": [
            _input("name", "Name", _plain("Weekly status")),
            _input("output_type", "Output type", {"type": "static_select", "options": options,
                                                  "initial_option": report}),
            _input("description", "Description", _plain("What the deliverable should be", multiline=True),
                   optional=True),
            _input("instructions", "Message to participants", _plain("Hi! Two quick questions…", multiline=True),
                   optional=True),
            _input("participants", "Participants", {"type": "multi_users_select"}, optional=True,
                   hint="Pick people, or give a dataset (and filter) below."),
            _input("dataset", "Dataset", _plain("team"), optional=True),
            _input("filter", "Filter", _plain("role = 'engineer' and active = true"), optional=True),
            _input("questions", "Questions", _plain("shipped: What did you ship this week?", multiline=True),
                   hint="One per line: key: prompt, or just the prompt. End a line with (optional) to make it so."),
            _input("chase_interval", "Chase after", _plain("24h", initial="24h"),
                   hint="Silence before a reminder: 30s, 15m, 24h, 2d"),
            _input("max_chases", "Reminders at most", {"type": "number_input", "is_decimal_allowed": False,
                                                       "initial_value": "2", "min_value": "0"}),
            _input("schedule", "Schedule (cron)", _plain("0 9 * * MON"), optional=True),
            _input("timezone", "Time zone", _plain("UTC", initial="UTC"), optional=True),
        ],
    }


def submitted(values: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The modal's state as plain values: text stripped, the select's value, the picked user ids."""
    out: dict[str, Any] = {}
    for block, actions in values.items():
        element = actions.get("value") or {}
        if element.get("type") == "multi_users_select":
            out[block] = list(element.get("selected_users") or [])
        elif element.get("type") == "static_select":
            out[block] = (element.get("selected_option") or {}).get("value") or ""
        else:
            out[block] = (element.get("value") or "").strip()
    return out


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].rstrip("-")


def questions(text: str) -> list[dict[str, Any]]:
    """``key: prompt`` or a bare prompt per line (its key made from its words), in order."""
    fields: list[dict[str, Any]] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line:
            continue
        required = not line.lower().endswith("(optional)")
        line = line[: -len("(optional)")].strip() if not required else line
        key, sep, prompt = line.partition(":")
        if not (sep and FIELD_KEY.match(key.strip()) and prompt.strip()):
            key, prompt = re.sub(r"[^a-z0-9]+", "_", line.lower()).strip("_")[:40].rstrip("_") or "answer", line
            key = f"q_{key}" if key[0].isdigit() else key
        key, taken = key.strip(), {f["key"] for f in fields}
        key = next(k for k in [key] + [f"{key}_{n}" for n in range(2, 100)] if k not in taken)
        fields.append({"key": key, "prompt": prompt.strip(), "required": required})
    return fields


# -- /task answers ---------------------------------------------------------------------------
def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def mrkdwn(markdown: str) -> list[str]:
    """The report's Markdown in Slack's mrkdwn: headings and bold as *bold*, tables in a code block."""
    out: list[str] = []
    table: list[str] = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            out.append("```\n" + "\n".join(table) + "\n```")
            table = []
        line = re.sub(r"\*\*(.+?)\*\*", r"*\1*", line)
        line = re.sub(r"^#{1,6}\s+(.*)$", r"*\1*", line)
        out.append(re.sub(r"^- ", "• ", line))
    if table:
        out.append("```\n" + "\n".join(table) + "\n```")
    chunks: list[str] = []
    for part in "\n".join(out).split("\n\n"):
        while len(part) > SECTION_MAX:
            chunks.append(part[:SECTION_MAX])
            part = part[SECTION_MAX:]
        if chunks and len(chunks[-1]) + len(part) + 2 <= SECTION_MAX:
            chunks[-1] += "\n\n" + part
        elif part.strip():
            chunks.append(part)
    return chunks


def _names(subs: list[dict[str, Any]], *statuses: str) -> str:
    return ", ".join(s["name"] for s in subs if s["status"] in statuses) or "—"


def run_blocks(view: dict[str, Any], headline: str) -> list[dict[str, Any]]:
    """Who answered, who is open, who was chased, who timed out or failed, who was excused."""
    subs = [s for s in view.get("subtasks", []) if s.get("kind") != "conversation"]
    chased = ", ".join(f"{s['name']} ({s['chases_sent']})" for s in subs if s["chases_sent"]) or "—"
    failed = ", ".join(f"{s['name']} ({s['reason']})" if s.get("reason") else s["name"]
                       for s in subs if s["status"] == "failed") or "—"
    fields = [("Answered", _names(subs, "completed")), ("Open", _names(subs, "pending", "running")),
              ("Chased", chased), ("Timed out", _names(subs, "timed_out")), ("Failed", failed)]
    if any(s["status"] == "excused" for s in subs):
        fields.append(("Excused", ", ".join(f"{s['name']} ({s['reason']})" if s.get("reason") else s["name"]
                                            for s in subs if s["status"] == "excused")))
    blocks = [section(f"*{headline}*")]
    if subs:
        blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"[:1900]}
                                                     for k, v in fields]})
    if view.get("error_message"):
        blocks.append(section(f"Error: {view['error_message']}"))
    return blocks


def reply_message(command: str, text: str, view: dict[str, Any] | None) -> dict[str, Any]:
    """A `/task` answer as a response_url message: Block Kit for status and results, plain otherwise."""
    message: dict[str, Any] = {"response_type": "ephemeral", "text": text[:3000]}
    if view is None or command not in ("status", "results") or "subtasks" not in view:
        return message
    headline = f"Run {view['id']} of {view['task_id']}: {view['status']}"
    blocks = run_blocks(view, headline)
    if command == "results" and view.get("deliverables"):
        deliverable = view["deliverables"][0]
        blocks.append({"type": "divider"})
        blocks += [section(chunk) for chunk in mrkdwn(deliverable["content"])]
        message["text"] = f"{headline}. {deliverable['title']}"
    elif command == "results":
        blocks.append(section("No deliverable yet."))
    message["blocks"] = blocks[:BLOCKS_MAX]
    return message
