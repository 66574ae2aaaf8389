"""RQ job functions: thin, importable, primitive arguments (ids), each calling the engine once.

Arguments arrive as strings when the sweeper re-drives a job, so numbers are converted here.
"""

from __future__ import annotations

from .bootstrap import engine


def advance(rid: str, step: str | int) -> None:
    engine().runs.advance(rid, int(step))


def open_batch(rid: str, start: str | int, end: str | int) -> None:
    engine().subtasks.open_batch(rid, int(start), int(end))


def chase_batch(*sids: str) -> None:
    engine().subtasks.chase_batch(sids)


def fan_in(rid: str, step: str | int) -> None:
    engine().runs.fan_in(rid, int(step))


def process_inbox(qid: str) -> None:
    """Apply a sender's stored messages in the order they came."""
    engine().inbound.drain(qid)


def process_inbound(iid: str) -> None:
    """A message stored by an earlier version (lease ``in:<iid>``): drained with its sender's inbox."""
    engine().inbound.process_legacy(iid)


def notify_owner(rid: str, kind: str) -> None:
    engine().runs.notify_owner(rid, kind)


def close_state(rid: str, step: str | int) -> None:
    """A fan-out's deadline came: close it (unless it closed already) and fan in."""
    engine().deadlines.close(rid, int(step))


def revise(rid: str) -> None:
    """Late answers after fan-in: one new version of the deliverable each, in order."""
    engine().revisions.revise(rid)


def announce_revision(rid: str, version: str | int) -> None:
    engine().revisions.announce(rid, int(version))


def post_report(rid: str, version: str | int, index: str | int) -> None:
    """Post one version of the deliverable to one ``report_to`` target."""
    engine().reporting.post(rid, int(version), int(index))


def deliver_callback(rid: str) -> None:
    """POST the ended run's object to its Web Trigger ``callback_url``, signed."""
    engine().callbacks.deliver(rid)


def poll_mailbox() -> None:
    """Store the email channel's unseen mail (IMAP); queued by the scheduler every TASKBOT_IMAP_POLL seconds."""
    from .mailbox import poll

    poll(engine())


def slack_directory() -> None:
    """Read Slack's member list again (users.list, every page); queued by the scheduler."""
    directory = getattr(engine().channels.get("slack"), "directory", None)
    if directory is not None:
        directory.refresh()


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
    """POST one event, signed (unsigned without TASKBOT_WEBHOOK_SECRET); an error raises so RQ retries it."""
    import json

    from .settings import Settings
    from .webhooks import post_signed

    secret = Settings().webhook_secret
    post_signed(url, body, json.loads(body)["event"], secret.get_secret_value() if secret else "")
