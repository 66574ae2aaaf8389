"""People's API tokens (SPEC §12): made for a contact, shown once, kept only as a SHA-256 digest.

A token reads ``tb_<prefix>_<secret>``. The prefix (8 hex digits) is its public id: it names
the token in listings and in ``taskbot tokens revoke``, and finds its record in one lookup.
The secret is 256 random bits, so an unsalted SHA-256 of the whole token is as strong as a
slow password hash would be and costs microseconds per request; the token itself is never
stored, so a copy of Redis opens nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from . import keys
from .access import Caller, person
from .errors import InvalidInput, NotFound
from .model import Contact
from .ports import Clock
from .store import Store, dumps

PREFIX = "tb_"
#: Record the last use only while the token still exists: a revoke racing a request leaves nothing behind.
TOUCH = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
"""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def prefix_of(text: str) -> str | None:
    """The 8-hex-digit id in ``tb_1a2b3c4d``, ``1a2b3c4d`` or a whole token; None if there is none."""
    body = text.strip().removeprefix(PREFIX)
    head = body.split("_", 1)[0]
    if len(head) == 8 and all(c in "0123456789abcdef" for c in head):
        return head
    return None


class Tokens:
    """Create, identify, list and revoke people's tokens.

    Args:
        store: the records (contacts; tokens live beside them).
        clock: the time source (created and last-used times).
    """

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.r = store.r
        self.clock = clock
        self._touch = self.r.register_script(TOUCH)

    def create(self, contact_id: str) -> tuple[str, dict[str, Any]]:
        """A new token for the contact (by id, or by email): (the token, its record without the digest).

        The token is returned here and nowhere else: only its digest is stored.

        Raises:
            NotFound: no such contact.
        """
        contact = self._contact(contact_id)
        while True:
            prefix = secrets.token_hex(4)
            token = f"{PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
            record = {"prefix": f"{PREFIX}{prefix}", "contact_id": contact.id, "sha256": digest(token),
                      "created_at": self.clock.now()}
            if self.r.hsetnx(keys.TOKENS, prefix, dumps(record)):  # 2^32 prefixes: a clash is rare, never kept
                return token, self._public(record, None)

    def identify(self, token: str) -> str | None:
        """The contact id a token belongs to, or None (unknown, revoked or wrong); records its use."""
        prefix = prefix_of(token)
        if prefix is None or not token.startswith(PREFIX):
            return None
        raw = self.r.hget(keys.TOKENS, prefix)
        if raw is None:
            return None
        record = json.loads(raw)
        if not hmac.compare_digest(record["sha256"], digest(token)):
            return None
        self._touch(keys=[keys.TOKENS, keys.TOKENS_USED], args=[prefix, self.clock.now()])
        contact_id: str = record["contact_id"]
        return contact_id

    def caller(self, token: str) -> Caller | None:
        """Who a person's token stands for, with every identity of their contact; None if it opens nothing."""
        contact_id = self.identify(token)
        if contact_id is None:
            return None
        contact = self.store.find_contacts([contact_id]).get(contact_id)
        # A contact removed from the directory still owns what names its id.
        return person(contact or Contact(id=contact_id))

    def holder(self, prefix: str) -> tuple[str, Caller] | None:
        """The stored digest of the token with this prefix and who it stands for; None once it is revoked.

        A dashboard session signed in with a person's token keeps only the prefix and a MAC over
        this digest, never the token: each page view asks here again, so revoking the token ends
        the session at once (and a new token that happened to get the same prefix opens nothing).
        """
        head = prefix_of(prefix)
        raw = self.r.hget(keys.TOKENS, head) if head is not None else None
        if raw is None:
            return None
        record = json.loads(raw)
        self._touch(keys=[keys.TOKENS, keys.TOKENS_USED], args=[head, self.clock.now()])
        contact = self.store.find_contacts([record["contact_id"]]).get(record["contact_id"])
        return str(record["sha256"]), person(contact or Contact(id=record["contact_id"]))

    def revoke(self, text: str) -> dict[str, Any]:
        """Revoke a token named by its prefix (``tb_1a2b3c4d``, ``1a2b3c4d``) or given whole.

        Raises:
            InvalidInput: not a token prefix. NotFound: no such token.
        """
        prefix = prefix_of(text)
        if prefix is None:
            raise InvalidInput("TOKEN_PREFIX", f"{text!r} is not a token prefix (like tb_1a2b3c4d)")
        with self.r.pipeline() as p:
            p.hget(keys.TOKENS, prefix)
            p.hget(keys.TOKENS_USED, prefix)
            p.hdel(keys.TOKENS, prefix)
            p.hdel(keys.TOKENS_USED, prefix)
            raw, used, _, _ = p.execute()
        if raw is None:
            raise NotFound("token", f"{PREFIX}{prefix}")
        return self._public(json.loads(raw), used)

    def list(self, contact_id: str | None = None) -> list[dict[str, Any]]:
        """Every token's record (prefix, contact, created, last used; never the token), oldest first."""
        with self.r.pipeline(transaction=False) as p:
            p.hgetall(keys.TOKENS)
            p.hgetall(keys.TOKENS_USED)
            raw, used = p.execute()
        records = [self._public(json.loads(v), used.get(k)) for k, v in raw.items()]
        if contact_id is not None:
            records = [r for r in records if r["contact_id"] == contact_id]
        return sorted(records, key=lambda r: (r["created_at"], r["prefix"]))

    def _contact(self, contact_id: str) -> Contact:
        found = self.store.find_contacts([contact_id.strip()]).get(contact_id.strip())
        if found is None:
            raise NotFound("contact", contact_id)
        return found

    @staticmethod
    def _public(record: dict[str, Any], used: bytes | str | None) -> dict[str, Any]:
        return {"prefix": record["prefix"], "contact_id": record["contact_id"], "created_at": record["created_at"],
                "last_used_at": float(used) if used is not None else None}
