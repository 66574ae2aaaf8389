"""Errors the engine raises to its callers; entry points map them to exit codes and HTTP statuses."""

from __future__ import annotations


class TaskbotError(Exception):
    """Base class: everything the engine refuses on purpose."""


class InvalidInput(TaskbotError, ValueError):
    """Bad input from a user: names the field so the message alone tells what to fix.

    CLI exit code 2, HTTP 422. Raised before anything is stored.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class NotFound(TaskbotError, LookupError):
    """An id that names nothing (CLI exit 2, HTTP 404)."""

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident!r} not found")


class Conflict(TaskbotError):
    """The thing exists but is in a state that refuses the request (HTTP 409), e.g. cancelling a final run."""
