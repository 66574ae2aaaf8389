"""Channel adapters, one module each, behind the engine's ``Channel`` protocol.

Adding a channel is one module plus one line in :data:`REGISTRY`: a factory that takes the
settings and returns the adapter, or None when the channel's settings are absent (it is off).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.ports import Channel

from .web import WebChannel


def _web(settings: Any) -> Channel:
    return WebChannel()


def _slack(settings: Any) -> Channel | None:
    secret = getattr(settings, "slack_bot_token", None)
    token = secret.get_secret_value() if secret else ""
    if not token:
        return None
    from .slack import SlackChannel

    return SlackChannel.from_settings(token, settings)


def _telegram(settings: Any) -> Channel | None:
    secret = getattr(settings, "telegram_bot_token", None)
    token = secret.get_secret_value() if secret else ""
    if not token:
        return None
    from .telegram import TelegramChannel

    return TelegramChannel.from_settings(token, settings)


def _email(settings: Any) -> Channel | None:
    if not getattr(settings, "smtp_host", None) or not getattr(settings, "email_from", None):
        return None
    from .email import EmailChannel

    return EmailChannel.from_settings(settings)


REGISTRY: dict[str, Callable[[Any], Channel | None]] = {
    "web": _web,
    "slack": _slack,
    "telegram": _telegram,
    "email": _email,
}


def build_channels(settings: Any) -> tuple[dict[str, Channel], list[str]]:
    """The configured adapters, and one line for each channel that is off and why."""
    channels: dict[str, Channel] = {}
    off: list[str] = []
    for name in ("slack", "telegram", "email", "web"):
        factory = REGISTRY.get(name)
        adapter = factory(settings) if factory else None
        if adapter is None:
            off.append(f"channel {name} is off: {'its settings are absent' if factory else 'not built yet'}")
        else:
            channels[name] = adapter
    return channels, off
