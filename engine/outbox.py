"""Sending through the channels, at most once per message: claims, sent marks, and reply refs.

A message is claimed (``claim:<sid>:<key>``, short-lived) before it is handed to a channel and
marked sent (``sub:<sid>:sent``) after, in the same transaction as the state it belongs to, so
two workers racing on one sub-task never both send it, and a worker that dies mid-send leaves
a claim that lapses for the next to try again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

from . import keys
from .ports import Channel, Delivery, DeliveryFailed, Outbound

#: How long a reply to one of the bot's messages still finds its sub-task (late answers included).
REF_TTL = 90 * 86400

# A Lua function, so that another script can claim too (the record of an opening claims the next).
CLAIM_FUNCTION = """
local function claim(sent, claim_key, member, px)
  if redis.call('SISMEMBER', sent, member) == 1 then return 0 end
  if redis.call('SET', claim_key, '1', 'NX', 'PX', px) then return 1 end
  return -1
end
"""
CLAIM = CLAIM_FUNCTION + "return claim(KEYS[1], KEYS[2], ARGV[1], ARGV[2])\n"


class Outbox:
    """Hand messages to the configured channels.

    Args:
        r: the Redis connection.
        channels: the configured channel adapters by name.
        lease_seconds: how long a claim on a send lives (a dead sender's claim lapses after it).
    """

    def __init__(self, r: redis.Redis, channels: Mapping[str, Channel], lease_seconds: float) -> None:
        self.r = r
        self.channels = dict(channels)
        self.lease_seconds = lease_seconds
        self._claim = r.register_script(CLAIM)

    def channel(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def claim(self, sid: str, key: str) -> int:
        """1: you may send ``key``; 0: it was sent already; -1: another worker is sending it now."""
        return int(self._claim(keys=[keys.sub_sent(sid), keys.claim(sid, key)],
                               args=[key, int(self.lease_seconds * 1000)]))

    def unclaim(self, sid: str, key: str) -> None:
        """The send failed: let it be tried again."""
        self.r.delete(keys.claim(sid, key))

    def mark_sent(self, pipe: Any, sid: str, key: str) -> None:
        pipe.sadd(keys.sub_sent(sid), key)
        pipe.delete(keys.claim(sid, key))

    def remember_ref(self, pipe: Any, channel: str, ref: str | None, sid: str) -> None:
        """Let a reply to this very message (Telegram reply_to, email In-Reply-To) find the sub-task."""
        if ref:
            pipe.set(keys.thread(channel, ref), sid, ex=REF_TTL)

    def send(self, out: Outbound) -> Delivery:
        """Deliver one message on its address's channel.

        Raises:
            DeliveryFailed: the channel is not configured (permanent), or the provider refused.
        """
        channel = self.channels.get(out.address.channel)
        if channel is None:
            raise DeliveryFailed(f"channel {out.address.channel} is not configured", permanent=True)
        try:
            return channel.send(out)
        except DeliveryFailed as exc:
            exc.channel = exc.channel or out.address.channel
            raise
