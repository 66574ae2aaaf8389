"""RQ job functions: thin, importable, primitive arguments (ids), each calling the engine once.

Arguments arrive as strings when the sweeper re-drives a job, so numbers are converted here.
"""

from __future__ import annotations

import functools
import logging

from .bootstrap import engine


def advance(rid: str, step: str | int) -> None:
    engine().runs.advance(rid, int(step))


def open_batch(rid: str, start: str | int, end: str | int) -> None:
    engine().subtasks.open_batch(rid, int(start), int(end))


def chase_batch(*sids: str) -> None:
    engine().subtasks.chase_batch(sids)


def fan_in(rid: str, step: str | int) -> None:
    engine().runs.fan_in(rid, int(step))


def process_inbound(iid: str) -> None:
    engine().inbox.process(iid)


def notify_owner(rid: str, kind: str) -> None:
    engine().runs.notify_owner(rid, kind)


def poll_mailbox() -> None:
    """Store the email channel's unseen mail (IMAP); queued by the scheduler every TASKBOT_IMAP_POLL seconds."""
    from .mailbox import poll

    poll(engine())


def slack_command(payload: str) -> None:
    """A Slack `/task` (its JSON fields): run it and answer on its response_url."""
    from .slack import run_command

    run_command(engine(), payload)


def slack_task_saved(payload: str) -> None:
    """After the Slack "new task" form saved a task: name its Slack people, confirm to its author."""
    from .slack import after_new_task

    after_new_task(engine(), payload)


def telegram_command(payload: str) -> None:
    """A Telegram `/start`, `/task` or `/help` (its JSON fields): run it and answer in the chat."""
    from .telegram import run_command

    run_command(engine(), payload)


def deliver_webhook(url: str, body: str) -> None:
    """POST one event, signed; an error raises so RQ retries it with backoff.

    Without TASKBOT_WEBHOOK_SECRET the event goes out with no ``X-Taskbot-Signature`` at all:
    an HMAC with an empty key would look signed to a receiver and prove nothing.
    """
    import hashlib
    import hmac
    import json

    import httpx

    from .settings import Settings

    secret = Settings().webhook_secret
    key = secret.get_secret_value().encode() if secret is not None else b""
    headers = {"Content-Type": "application/json", "X-Taskbot-Event": json.loads(body)["event"]}
    if key:
        headers["X-Taskbot-Signature"] = "sha256=" + hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    else:
        unsigned_warning()
    response = httpx.post(url, content=body, timeout=10, headers=headers)
    response.raise_for_status()


@functools.cache
def unsigned_warning() -> None:
    """Once per process: webhooks go out unsigned."""
    logging.getLogger("taskbot.webhooks").warning(
        "TASKBOT_WEBHOOK_SECRET is not set: webhooks are sent without X-Taskbot-Signature")
