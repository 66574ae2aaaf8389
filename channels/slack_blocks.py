"""Slack's side of a typed question: Block Kit buttons, a static select or a date picker, and the click back.

A question's elements carry ``action_id`` ``taskbot:<field key>:<n>``; a click (``block_actions``)
becomes an ``Inbound`` whose text is the option (a select's value is the option, or its number
when the option is too long for a value) and whose provider id is the action's own, so a click
Slack delivers twice is stored once. The clicked message is redrawn with the answer and
without its buttons (``settled``).
"""

from __future__ import annotations

from typing import Any

from engine.ports import Inbound, Question

ACTION = "taskbot:"
#: Slack's limits: a section's text, a button's or an option's label, an option's value.
SECTION_MAX, LABEL_MAX, VALUE_MAX = 3000, 75, 150
BUTTONS_MAX = 5


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:LABEL_MAX] or "…", "emoji": True}


def sections(text: str) -> list[dict[str, Any]]:
    """The text as section blocks (each at most 3,000 characters)."""
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text[i:i + SECTION_MAX]}}
            for i in range(0, max(len(text), 1), SECTION_MAX)]


def elements(question: Question) -> list[dict[str, Any]]:
    """Buttons for up to five options, a static select past five, a date picker for a date."""
    key = question.key
    if question.type == "date":
        return [{"type": "datepicker", "action_id": f"{ACTION}{key}:date", "placeholder": _plain("Pick a date")}]
    options = question.options
    if len(options) <= BUTTONS_MAX:
        return [{"type": "button", "action_id": f"{ACTION}{key}:{n}", "text": _plain(label),
                 "value": label[:2000]} for n, label in enumerate(options, 1)]
    return [{"type": "static_select", "action_id": f"{ACTION}{key}:select", "placeholder": _plain("Choose…"),
             "options": [{"text": _plain(label), "value": label if len(label) <= VALUE_MAX else str(n)}
                         for n, label in enumerate(options, 1)]}]


def question_blocks(text: str, question: Question) -> list[dict[str, Any]]:
    """The message's text, then the question's buttons, select or date picker."""
    return [*sections(text), {"type": "actions", "block_id": f"{ACTION}{question.key}",
                              "elements": elements(question)}]


def settled(data: dict[str, Any], answer: str, escape: Any) -> dict[str, Any]:
    """``chat.update`` arguments that show the clicked message with the answer and no buttons left."""
    kept = [b for b in data.get("blocks") or [] if b.get("type") != "actions"] or sections(data.get("text") or "")
    note = {"type": "context", "elements": [{"type": "mrkdwn", "text": f"✓ You answered: *{escape(answer)}*"}]}
    return {"channel": data["channel"], "ts": data["ts"], "text": data.get("text") or answer, "blocks": [*kept, note]}


def click(body: dict[str, Any]) -> Inbound | None:
    """A person's click on a question's button, select or date picker, as an ``Inbound``; else None."""
    actions = body.get("actions") or []
    if body.get("type") != "block_actions" or not actions:
        return None
    action = actions[0]
    action_id = str(action.get("action_id") or "")
    user = (body.get("user") or {}).get("id")
    text = (action.get("value") or (action.get("selected_option") or {}).get("value")
            or action.get("selected_date"))
    if not action_id.startswith(ACTION) or not user or not text:
        return None
    container, message = body.get("container") or {}, body.get("message") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    ts = container.get("message_ts") or message.get("ts")
    if not channel or not ts:
        return None
    thread = message.get("thread_ts") or container.get("thread_ts")
    settle = {"channel": channel, "ts": ts, "text": message.get("text") or "",
              "blocks": [b for b in message.get("blocks") or [] if b.get("type") != "actions"]}
    at = float(action.get("action_ts") or 0) or None
    return Inbound("slack", str(user), str(text),
                   provider_id=f"action:{channel}:{ts}:{action_id}:{action.get('action_ts') or ''}",
                   reply_to=f"{channel}:{thread or ts}", meta={"answers": action_id.split(":")[1], "settle": settle},
                   **({"at": at} if at else {}))
