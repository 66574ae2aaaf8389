"""Dashboard sign-in and protection against cross-site requests (SPEC §12).

Signing in: open any dashboard page once with ``?token=`` (the admin's ``TASKBOT_API_TOKEN`` or a
person's token from ``taskbot tokens create``), or paste the token in the sign-in form. The
answer sets a signed session cookie and redirects to the page without the token.

The cookie holds no secret: ``<who>.<issued>.<nonce>.<mac>``, where ``who`` is ``a`` (the admin)
or a person's token prefix, and the MAC (HMAC-SHA256) is keyed by a key derived from the admin
token. A person's MAC also covers the digest the token is stored by, looked up on every request:
revoking the token (or changing the admin token) ends the session at once. It is HttpOnly,
``SameSite=Lax`` and ``Secure`` over https, and ends after :data:`SESSION_SECONDS`.

Every form POST carries a CSRF token, an HMAC of the session cookie (so one per sign-in, and
useless with another session); a POST without it, with another session's, or whose ``Origin``
(or ``Sec-Fetch-Site``) says it came from another site is refused with 403 before it acts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request

from engine.access import Caller, admin
from engine.engine import Engine
from engine.tokens import PREFIX, digest, prefix_of

from .guards import configured_token, same_secret

COOKIE = "taskbot_dashboard"
CSRF_FIELD = "csrf"
#: A sign-in lasts a week; then the sign-in link (or the token) is asked for again.
SESSION_SECONDS = 7 * 24 * 3600
#: Someone else's sign-in link opened while signed in: the session it would start waits here, to be confirmed.
SWITCH_COOKIE = "taskbot_switch"
SWITCH_SECONDS = 600


@dataclass(frozen=True)
class Session:
    """A signed-in visitor: who they are (the admin, or a person's :class:`Caller`) and their cookie."""

    caller: Caller
    cookie: str

    @property
    def label(self) -> str:
        return "admin" if self.caller.admin else self.caller.id


def _key(admin_token: str) -> bytes:
    return hmac.new(admin_token.encode(), b"taskbot dashboard session v1", hashlib.sha256).digest()


def _mac(key: bytes, *parts: str) -> str:
    return hmac.new(key, ".".join(parts).encode(), hashlib.sha256).hexdigest()


def sign_in(engine: Engine, admin_token: str, given: str, now: float | None = None) -> str | None:
    """The session cookie for a token, or None when it opens nothing (wrong, revoked, or no token at all)."""
    given = given.strip()
    issued, nonce = str(int(now if now is not None else time.time())), secrets.token_hex(12)
    key = _key(admin_token)
    if given and same_secret(given, admin_token):
        return f"a.{issued}.{nonce}.{_mac(key, 'a', issued, nonce, '')}"
    prefix = prefix_of(given) if given.startswith(PREFIX) else None
    if prefix is None or engine.tokens.caller(given) is None:  # caller() checks the digest and records the use
        return None
    return f"{prefix}.{issued}.{nonce}.{_mac(key, prefix, issued, nonce, digest(given))}"


def session_of(engine: Engine, admin_token: str, cookie: str | None, now: float | None = None) -> Session | None:
    """Who the cookie signs in, or None (missing, forged, expired, or its person's token revoked)."""
    parts = (cookie or "").split(".")
    if len(parts) != 4:
        return None
    who, issued, nonce, mac = parts
    if not issued.isdigit() or (now if now is not None else time.time()) - int(issued) > SESSION_SECONDS:
        return None
    key = _key(admin_token)
    if who == "a":
        return Session(admin(), cookie or "") if same_secret(mac, _mac(key, "a", issued, nonce, "")) else None
    if prefix_of(who) != who:
        return None
    held = engine.tokens.holder(who)
    if held is None:
        return None
    stored, caller = held
    return Session(caller, cookie or "") if same_secret(mac, _mac(key, who, issued, nonce, stored)) else None


def csrf_token(admin_token: str, session: Session) -> str:
    """The form token of this session: valid with its cookie only, so a page of another site cannot know it."""
    return _mac(_key(admin_token), "csrf", session.cookie)


def csrf_valid(admin_token: str, session: Session, given: str | None) -> bool:
    return bool(given) and same_secret(str(given), csrf_token(admin_token, session))


def own_origins(request: Request, public_url: str) -> set[str]:
    """The origins this app answers as: the Host the browser used (either scheme: a TLS proxy may sit in front)
    and ``TASKBOT_PUBLIC_URL``'s."""
    host = request.headers.get("host", "")
    origins = {f"http://{host}", f"https://{host}"} if host else set()
    parts = urlsplit(public_url)
    if parts.scheme and parts.netloc:
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins


def cross_site(request: Request, public_url: str) -> str | None:
    """Why a POST looks sent by another site (its ``Origin``, or ``Sec-Fetch-Site``); None when it does not.

    A browser sends ``Origin`` with every form POST (the dashboard's pages send it: their referrer
    policy is ``same-origin``); a client that is no browser may send none, and then the CSRF token
    alone decides.
    """
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/") not in own_origins(request, public_url):
        return f"the request came from another site ({origin[:100]})"
    if request.headers.get("sec-fetch-site") == "cross-site":
        return "the request came from another site"
    return None


def configured_admin_token(request: Request) -> str | None:
    return configured_token(request.app.state.settings)
