"""Signed POSTs out: system webhooks and Web Trigger callbacks (SPEC §8, §11), over httpx.

Both carry ``X-Taskbot-Event`` and ``X-Taskbot-Signature: sha256=<HMAC-SHA256 of the body keyed
with TASKBOT_WEBHOOK_SECRET>``. Without the secret they go out with no signature at all (said once
per process): an HMAC with an empty key would look signed to a receiver and prove nothing.
Redirects are not followed: a callback URL that was checked must not lead somewhere that was not.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging

import httpx

from engine.ports import DeliveryFailed

TIMEOUT = 10.0


def signature(body: str, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


@functools.cache
def unsigned_warning() -> None:
    logging.getLogger("taskbot.webhooks").warning(
        "TASKBOT_WEBHOOK_SECRET is not set: webhooks and callbacks are sent without X-Taskbot-Signature")


def post_signed(url: str, body: str, event: str, secret: str) -> None:
    """POST ``body``, signed when there is a secret; raises ``httpx.HTTPError`` unless the receiver answers 2xx."""
    headers = {"Content-Type": "application/json", "X-Taskbot-Event": event}
    if secret:
        headers["X-Taskbot-Signature"] = signature(body, secret)
    else:
        unsigned_warning()
    response = httpx.post(url, content=body, timeout=TIMEOUT, follow_redirects=False, headers=headers)
    response.raise_for_status()  # anything but 2xx, a redirect too


class SignedPoster:
    """Implements the engine's ``Poster`` port: a failed POST is a ``DeliveryFailed`` worth retrying."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def post(self, url: str, body: str, event: str) -> None:
        try:
            post_signed(url, body, event, self.secret)
        except httpx.HTTPStatusError as exc:
            raise DeliveryFailed(f"the receiver answered {exc.response.status_code}", permanent=False) from None
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"the receiver is unreachable: {type(exc).__name__}", permanent=False) from None
