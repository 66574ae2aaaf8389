"""Channel selection for one participant (SPEC §4), over whatever channels are configured."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .model import EXTRA_CHANNELS, Contact
from .ports import Address, Channel

#: The built-in channels that reach a person by themselves, in SPEC §4's order (web needs its link handed over).
FALLBACK_ORDER = ("slack", "telegram", "email")


def reaching() -> tuple[str, ...]:
    """The channels that may reach a person by themselves, in the order they are tried: the built-in ones
    (SPEC §4), then those plugins added, in the order they were added."""
    return (*FALLBACK_ORDER, *EXTRA_CHANNELS)


def select_channel(
    contact: Contact, enabled: Sequence[str], channels: Mapping[str, Channel]
) -> Address | str:
    """The address to reach ``contact`` on, or a one-line reason why there is none.

    Preferred channel first when it is linked and enabled on the assistant; then Slack,
    Telegram and email, then the channels plugins added (:func:`reaching`), each only when
    linked (``Channel.resolve``) and enabled. The web
    channel is only ever chosen as a preference: a web link reaches nobody by itself.
    """
    order = ([contact.preferred_channel] if contact.preferred_channel else []) + [
        c for c in reaching() if c != contact.preferred_channel
    ]
    for name in order:
        channel = channels.get(name)
        if channel is None or name not in enabled:
            continue
        address = channel.resolve(contact)
        if address:
            return Address(name, address)
    usable = [c for c in enabled if c in channels]
    return f"no usable channel for {contact.id} (enabled: {', '.join(usable) or 'none'})"
