"""Who may see and do what (SPEC §12): the admin everything, a person what they own. Pure policy.

A person is known by every identity they have (contact id, email, Slack user id, Telegram chat
id), because a task's ``owner`` and a run's ``owner`` may name them by any of these. Entry
points (the HTTP routes, the dashboard, the ``/task`` commands) decide who the caller is, then
ask :func:`may` before acting and filter what they list with the ``visible_*`` functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .model import Contact, TaskDefinition

#: What the owner of a task may do with it and its runs and schedules (and so may the admin).
#: ``delete`` removes the definition; writing one (``define``) stays the admin's.
OWNER_ACTIONS = frozenset({"see", "run", "cancel", "approve", "activate", "deactivate", "schedule", "unschedule",
                           "delete"})
#: What only the admin may do: write task definitions, the directory (contacts, datasets,
#: assistants) and people's tokens.
ADMIN_ACTIONS = frozenset({"define", "directory", "tokens"})
ACTIONS = OWNER_ACTIONS | ADMIN_ACTIONS

T = TypeVar("T")


def normal(identity: str) -> str:
    """Emails compare without case (contacts store them lower-cased); other ids as they are."""
    return identity.strip().lower() if "@" in identity else identity.strip()


@dataclass(frozen=True)
class Caller:
    """Who asks: every identity they have, and whether they are the admin.

    Attributes:
        ids: the identities (normalised with :func:`normal`).
        admin: the admin (``TASKBOT_API_TOKEN``, ``TASKBOT_ADMINS``, the command line) may do everything.
        contact_id: the directory entry a person's token belongs to, when it does.
    """

    ids: frozenset[str] = frozenset()
    admin: bool = False
    contact_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", frozenset(normal(i) for i in self.ids if i))

    @property
    def id(self) -> str:
        """One stable identity to record as who did something (e.g. a run's ``trigger.by``)."""
        if self.contact_id:
            return self.contact_id
        return sorted(self.ids)[0] if self.ids else "unknown"

    def owns(self, owner: str | None) -> bool:
        return bool(owner) and normal(str(owner)) in self.ids


def admin(name: str = "admin") -> Caller:
    return Caller(frozenset({name}), admin=True)


def person(contact: Contact) -> Caller:
    """The caller a person's token stands for: their contact id and every linked identity."""
    ids = {contact.id, contact.email, contact.slack_user_id, contact.telegram_chat_id}
    return Caller(frozenset(i for i in ids if i), contact_id=contact.id)


def may(caller: Caller, action: str, owner: str | None) -> bool:
    """Whether ``caller`` may do ``action`` on something whose owner is ``owner``.

    Args:
        caller: who asks.
        action: one of :data:`ACTIONS` (``see``, ``run``, ``cancel``, ...).
        owner: the task's or the run's ``owner`` (None: nobody owns it, so only the admin may).

    Raises:
        ValueError: an action this policy does not know (a programming error, not user input).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if caller.admin:
        return True
    return action in OWNER_ACTIONS and caller.owns(owner)


def visible_tasks(caller: Caller, definitions: Iterable[TaskDefinition]) -> list[TaskDefinition]:
    return [d for d in definitions if may(caller, "see", d.owner)]


def visible_runs(caller: Caller, runs: Iterable[T]) -> list[T]:
    """Runs (run objects or run fields: mappings with ``owner``) the caller may see, in order."""
    return [run for run in runs if may(caller, "see", _owner(run))]


def visible_schedules(caller: Caller, schedules: Iterable[T], owner_of: Mapping[str, str | None]) -> list[T]:
    """Schedules the caller may see: those of tasks they own (``owner_of``: task id -> owner).

    A schedule of a task that no longer exists is the admin's alone.
    """
    return [s for s in schedules if may(caller, "see", owner_of.get(str(_get(s, "task_id"))))]


def notification_owners(caller: Caller) -> list[str]:
    """Whose in-app notifications are the caller's: one list per identity they could own things by."""
    return sorted(caller.ids)


def _get(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _owner(run: Any) -> str | None:
    value = _get(run, "owner")
    return str(value) if value else None
