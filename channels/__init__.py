"""Channel adapters, one module each, behind the engine's ``Channel`` protocol.

Adding a channel is one module plus one line in :data:`REGISTRY`: a factory that takes the
settings and returns the adapter, or None when the channel's settings are absent (it is off).
A plugin adds one with :func:`register`, which also lets contacts and assistants name it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.model import register_channel
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


def register(name: str, factory: Callable[[Any], Channel | None]) -> None:
    """Add a channel (a plugin's): its adapter's factory, and its name for contacts' ``preferred_channel`` and
    ``addresses`` and for assistants' ``channels``. It is tried after the built-in channels (SPEC §4's order)."""
    register_channel(name)
    REGISTRY[name] = factory


def build_channels(settings: Any) -> tuple[dict[str, Channel], list[str]]:
    """The configured adapters, and one line for each channel that is off and why."""
    channels: dict[str, Channel] = {}
    off: list[str] = []
    for name, factory in REGISTRY.items():  # the built-in ones, then those plugins registered
        adapter = factory(settings)
        if adapter is None:
            off.append(f"channel {name} is off: its settings are absent")
        else:
            channels[name] = adapter
    return channels, off
