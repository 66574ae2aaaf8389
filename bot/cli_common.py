"""What every `taskbot` command shares: the consoles, SPEC §7's exit codes, the engine, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
import redis
from rich.console import Console

from engine.bounds import printable
from engine.engine import Engine
from engine.errors import Conflict, InvalidInput, NotFound

from .settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
# Piped output is read by scripts and people with wide windows: do not cut it at 80 columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, highlight=False, soft_wrap=True)
FINAL = ("completed", "awaiting_review", "failed", "cancelled")


def fail(message: str, code: int) -> NoReturn:
    err.print(f"taskbot: error: {printable(message)}", markup=False)
    sys.exit(code)


def without_password(url: str) -> str:
    """A Redis URL fit to print: ``rediss://:***@host:6380/0`` (a password must never reach a log)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def handles_errors(func: F) -> F:
    """Map the engine's refusals to SPEC exit codes with a one-line message."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (InvalidInput, NotFound) as exc:
            fail(str(exc).splitlines()[0], 2)
        except Conflict as exc:
            fail(str(exc), 1)
        except redis.AuthenticationError as exc:
            fail(f"Redis at {without_password(Settings().redis_url)} refused the password: {exc}", 1)
        except redis.ConnectionError as exc:
            fail(f"cannot reach Redis at {without_password(Settings().redis_url)} ({exc}); is it running? "
                 "`taskbot demo` runs one of its own", 1)

    return wrapper  # type: ignore[return-value]


def engine() -> Engine:
    from .bootstrap import build_engine

    return build_engine()


def dump(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def parse_data(pairs: tuple[str, ...], option: str = "--data") -> dict[str, str]:
    data = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(option, f"expected key=value, got {pair!r}")
        data[key] = value
    return data
