"""The Web Trigger callback (SPEC §11): the run object POSTed to ``callback_url`` when the run ends.

The URL is checked when the run is triggered: ``http`` or ``https`` only, and (unless
``TASKBOT_CALLBACK_ALLOW_PRIVATE=true``) its host must resolve to public addresses only, so a
caller of the API cannot make taskbot reach services on its own network (loopback, private
ranges, link-local cloud metadata endpoints). It is checked again just before each delivery,
since a name can resolve elsewhere by then. The delivery is leased in the transaction that
ends the run and retried with backoff; its outcome is shown in the run object's ``callback``.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from . import keys
from .errors import InvalidInput
from .leases import Leases
from .ports import Clock, DeliveryFailed, Poster
from .store import Store, dumps
from .views import run_view

log = logging.getLogger("taskbot.callbacks")

#: Seconds before each retry of a callback that failed; after the last one it is marked failed.
BACKOFF = (1.0, 5.0, 30.0, 120.0, 600.0)
FINAL = ("completed", "failed", "cancelled")
Resolver = Callable[..., list[Any]]


def check_url(url: str, allow_private: bool, resolve: Resolver = socket.getaddrinfo) -> None:
    """Refuse a callback URL that is not http(s), or whose host is (or resolves to) a non-public address.

    Raises:
        InvalidInput: naming ``callback_url`` and why.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("callback_url", "must be an http or https URL with a host")
    if allow_private:
        return
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = resolve(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError) as exc:
        raise InvalidInput("callback_url", f"cannot resolve {host}: {exc}") from None
    for info in found:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            what = host if host == str(address) else f"{host} resolves to {address}, which"
            raise InvalidInput("callback_url", f"{what} is a private, loopback or link-local address; "
                                               "set TASKBOT_CALLBACK_ALLOW_PRIVATE=true to allow such callbacks")


class Callbacks:
    """Check and deliver Web Trigger callbacks.

    Args:
        store: the records.
        clock: the time source.
        leases: the delivery's lease (a retry is a deferred lease, so restarts lose none).
        poster: signs and POSTs (the httpx adapter in production).
        public_url: base of web chat links in the run object.
        allow_private: TASKBOT_CALLBACK_ALLOW_PRIVATE.
    """

    def __init__(self, store: Store, clock: Clock, leases: Leases, poster: Poster | None, public_url: str,
                 allow_private: bool = False) -> None:
        self.store = store
        self.r = store.r
        self.clock = clock
        self.leases = leases
        self.poster = poster
        self.public_url = public_url.rstrip("/")
        self.allow_private = allow_private

    def check(self, url: str) -> None:
        check_url(url, self.allow_private)

    def plan(self, pipe: Any, run: Mapping[str, str], status: str) -> list[tuple[str, tuple[Any, ...]]]:
        """Lease the callback inside the transaction that ends the run; returns the job to queue after it."""
        if not run.get("callback_url") or status not in FINAL:
            return []
        pipe.hset(keys.run(run["id"]), "callback_status", "pending")
        self.leases.lease(pipe, f"callback:{run['id']}")
        return [("deliver_callback", (run["id"],))]

    def deliver(self, rid: str) -> None:
        """POST the run object, signed (the ``deliver_callback`` job); idempotent once delivered."""
        member = f"callback:{rid}"
        run = self.store.run_fields(rid)
        url = run.get("callback_url")
        if not url or run.get("callback_status") in ("delivered", "failed") or self.poster is None:
            self.leases.release(member)
            return
        claim = keys.claim(rid, "callback")
        if not self.r.set(claim, "1", nx=True, px=int(self.leases.lease_seconds * 1000)):
            return  # another worker is delivering it
        attempts = int(run.get("callback_attempts") or 0) + 1
        try:
            try:
                self.check(url)
                body = dumps(run_view(self.store, lambda token: f"{self.public_url}/chat/{token}", rid,
                                      conversations=False))
                self.poster.post(url, body, f"run.{run['status']}")
            except (DeliveryFailed, InvalidInput) as exc:
                self._failed(run, attempts, exc)
                return
            with self.r.pipeline() as p:
                p.hset(keys.run(rid), mapping={"callback_status": "delivered", "callback_attempts": attempts,
                                               "callback_error": "", "callback_at": self.clock.now()})
                self.leases.release(member, p)
                p.execute()
        finally:
            self.r.delete(claim)

    def _failed(self, run: Mapping[str, str], attempts: int, exc: DeliveryFailed | InvalidInput) -> None:
        rid, member = run["id"], f"callback:{run['id']}"
        final = isinstance(exc, InvalidInput) or exc.permanent or attempts > len(BACKOFF)
        reason = str(exc)
        log.warning("callback of run %s %s: %s", rid, "failed for good" if final else "failed; retried", reason)
        with self.r.pipeline() as p:
            p.hset(keys.run(rid), mapping={"callback_status": "failed" if final else "retrying",
                                           "callback_attempts": attempts, "callback_error": reason,
                                           "callback_at": self.clock.now()})
            if final:
                self.store.notify(p, self.clock.now(), run["owner"], "callback_failed", run,
                                  f"The callback of run {rid} of {run['task_id']} failed: {reason}")
                self.leases.release(member, p)
            p.execute()
        if not final:
            retry = exc.retry_after if isinstance(exc, DeliveryFailed) and exc.retry_after else None
            self.leases.defer(member, self.clock.now() + (retry or BACKOFF[attempts - 1]))
