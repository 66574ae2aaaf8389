"""Tokens and secrets never reach a log (SPEC §10): a filter that redacts them in every record.

A web chat link (``/chat/<token>``) and the dashboard's sign-in link (``/?token=<API token>``)
carry credentials in their URLs, and uvicorn's access log writes each URL; the Bot API puts
the Telegram bot token in every request URL, which httpx logs at INFO. The filter rewrites
such records before any handler formats them: credentials in URLs by their shape, and the
configured secrets by their values wherever they appear.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from .settings import Settings

REDACTED = "<redacted>"
#: Credentials recognised by their place in a URL or header, whatever their value.
PATTERNS = (
    re.compile(r"(/chat/)[^/?#\s\"']+"),  # a participant's web chat link
    re.compile(r"([?&](?:token|start)=)[^&#\s\"']+"),  # the dashboard sign-in link, a Telegram deep link
    re.compile(r"(/bot)\d+:[\w-]+"),  # the Bot API's URLs hold the bot token
    re.compile(r"(\bBearer\s+)[^\s\"',]+", re.IGNORECASE),
    re.compile(r"(\b)xox[abposr]-[\w-]+|(\b)xapp-[\w-]+"),  # Slack tokens
)
#: Configured values shorter than this are not redacted by value (they would blank out ordinary words).
MIN_SECRET = 8


def secrets_of(settings: Settings) -> list[str]:
    """Every configured secret value (API token, webhook and signing secrets, bot tokens, passwords)."""
    values = [settings.api_token, settings.webhook_secret, settings.slack_bot_token, settings.slack_signing_secret,
              settings.slack_app_token, settings.telegram_bot_token, settings.telegram_webhook_secret,
              settings.smtp_password, settings.imap_password]
    return sorted({v.get_secret_value() for v in values if v is not None and len(v.get_secret_value()) >= MIN_SECRET},
                  key=len, reverse=True)


class Redact(logging.Filter):
    """Rewrites a record's message (and traceback) with credentials replaced by ``<redacted>``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        for pattern in PATTERNS:
            value = pattern.sub(lambda m: (m.group(1) or "") + REDACTED, value)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            # uvicorn's access formatter reads (client, method, path, http version, status) from args
            client, method, path, version, status = record.args
            record.args = (client, method, self.text(str(path)), version, status)
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed log call: logging itself reports it, unchanged
            return True
        cleaned = self.text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.text(logging.Formatter().formatException(record.exc_info))
        return True


def _install(target: logging.Logger | logging.Handler, settings: Settings) -> None:
    """Put one current ``Redact`` on ``target`` (replacing an earlier one: the settings may have changed)."""
    for old in [f for f in target.filters if isinstance(f, Redact)]:
        target.removeFilter(old)
    target.addFilter(Redact(secrets_of(settings)))


def redact_uvicorn_logs(settings: Settings) -> None:
    """Redact uvicorn's access and error logs (their records are logged on these loggers directly)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        _install(logging.getLogger(name), settings)


def redact_handlers(settings: Settings, logger: logging.Logger | None = None) -> None:
    """Redact every record the handlers of ``logger`` (the root logger) write, from any library."""
    for handler in (logger or logging.getLogger()).handlers:
        _install(handler, settings)
