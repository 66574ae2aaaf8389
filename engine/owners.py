"""Telling a run's owner something on each chat channel they are linked on, once per channel."""

from __future__ import annotations

import logging

from . import keys
from .model import Contact
from .outbox import Outbox
from .ports import Address, DeliveryFailed, Outbound
from .selection import reaching
from .store import Store

log = logging.getLogger("taskbot.owners")



class Owners:
    """Send owner messages.

    Args:
        store: the records (the owner's contact).
        outbox: the channels.
    """

    def __init__(self, store: Store, outbox: Outbox) -> None:
        self.store = store
        self.r = store.r
        self.outbox = outbox

    def contact(self, owner: str) -> Contact:
        return self.store.find_contacts([owner]).get(owner) or Contact(id=owner, email=owner if "@" in owner else None)

    def tell(self, rid: str, what: str, text: str) -> None:
        """Send ``text`` to the run's owner on each channel they are linked on; ``what`` names the message.

        Each (``what``, channel) pair is sent at most once: it is claimed in a set first, and the
        claim is given back only when the send fails in a way worth retrying (then this raises,
        so the job is run again and sends the ones left).
        """
        owner = self.store.run_fields(rid)["owner"]
        contact = self.contact(owner)
        for name in reaching():  # every channel that reaches them (the web channel reaches nobody by itself)
            channel = self.outbox.channel(name)
            address = channel.resolve(contact) if channel else None
            if channel is None or not address:
                continue
            if not self.r.sadd(keys.run_notified(rid), f"{what}:{name}"):
                continue
            out = Outbound(Address(name, address), text, key=f"{rid}:{what}", kind="notification",
                           subject=f"taskbot: {text.splitlines()[0][:150]}")
            try:
                channel.send(out)
            except DeliveryFailed as exc:
                if not exc.permanent:
                    self.r.srem(keys.run_notified(rid), f"{what}:{name}")
                    raise
                log.warning("telling %s on %s failed: %s", owner, name, exc.reason)
