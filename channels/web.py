"""The web chat channel: a private link per sub-task; the page reads the engine's conversation."""

from __future__ import annotations

from engine.model import Contact
from engine.ports import Delivery, Outbound


class WebChannel:
    """Sending is recording: the conversation the engine stores is what ``/chat/{token}`` shows."""

    name = "web"

    def resolve(self, contact: Contact) -> str | None:
        return contact.id

    def send(self, message: Outbound) -> Delivery:
        return Delivery(ref=None)
