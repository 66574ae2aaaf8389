"""The workspace's member list in Redis: every email -> Slack user id, from ``users.list``, read in the background.

Finding people by email one ``users.lookupByEmail`` at a time costs a Tier 3 call each (about
50 a minute): 1,000 people are 20 minutes. ``users.list`` gives 200 members a page (Tier 2,
about 20 pages a minute), so a 1,000-person workspace is 5 calls. The scheduler queues a
refresh every ``TASKBOT_SLACK_DIRECTORY_REFRESH`` seconds; a fan-out before the first listing
lists the workspace itself, once, while other workers wait for it. A listing is written to a
staging hash and swapped in whole (``RENAME``), so lookups never see half a list, and a listing
cut short (the rate limit, a worker stopping) goes on from its cursor the next time. Someone not
in the list (they joined since) is still looked up by email, one by one.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import redis
from slack_sdk.errors import SlackApiError, SlackClientError

from .slack_web import PacedWebClient, SlackRateLimited, key

log = logging.getLogger("taskbot.slack")

EMAILS = key("directory", "emails")  # hash: lower-case email -> user id, the last complete listing
READY = key("directory", "ready")  # string: when the complete listing in EMAILS was read (TTL), or "refused"
STAGING = key("directory", "staging")  # hash: the listing in progress
CURSOR = key("directory", "cursor")  # string: next_cursor of the listing in progress
LOCK = key("directory", "lock")  # string: held by the one process listing
DUE = key("directory", "due")  # string: exists until the next background refresh may be queued
PAGE = 200  # Slack: "we recommend no more than 200 results at a time"
PROGRESS_TTL = 3600
#: When users.list is refused for good (e.g. the app lacks users:read), lookups by email are used this long.
REFUSED_TTL = 600

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class NotReady(Exception):  # noqa: N818 - a state, like DeliveryFailed
    """The member list is not there yet; try again in ``retry_after`` seconds."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Directory:
    """Emails to Slack user ids for the whole workspace, kept in Redis and listed again every ``refresh`` s."""

    def __init__(self, client: PacedWebClient, r: redis.Redis, *, refresh: float = 3600.0,
                 max_wait: float = 10.0) -> None:
        self.client = client
        self.r = r
        self.refresh_every = refresh
        self.max_wait = max_wait
        self._release = r.register_script(RELEASE)

    def user_id(self, email: str) -> str | None:
        """The listed user id of ``email``, or None when they are not in the listing.

        Raises:
            NotReady: there is no listing yet and it could not be made now (Slack unreachable or busy).
        """
        if not self.r.exists(READY):
            self.ensure()
        found = self.r.hget(EMAILS, email.strip().lower())
        return found.decode() if found else None

    def ensure(self) -> None:
        """Make sure a complete listing is there: list the workspace now, or wait for the process listing it."""
        deadline = time.monotonic() + self.max_wait
        while not self.r.exists(READY):
            if self.list_all(deadline):
                return
            if time.monotonic() >= deadline:
                raise NotReady("the Slack member list is being read", retry_after=2.0)
            time.sleep(0.1)  # another process is listing: its listing appears in a moment

    # -- listing ---------------------------------------------------------------------------------------
    def due(self) -> bool:
        """True once per ``refresh`` seconds: the scheduler pass then queues :meth:`refresh`."""
        return bool(self.r.set(DUE, "1", nx=True, px=max(1, int(self.refresh_every * 1000))))

    def refresh(self) -> None:
        """List the workspace again (the background job); a listing cut short is taken up again soon."""
        listed = self.r.get(READY)
        if listed and listed != b"refused" and time.time() - float(listed) < self.refresh_every / 2:
            return  # a fan-out just read it
        try:
            done = self.list_all(time.monotonic() + self.max_wait)
        except NotReady as exc:
            log.warning("Slack member list not refreshed (%s); trying again in %.0fs", exc, exc.retry_after)
            self.r.set(DUE, "1", px=max(1, int(exc.retry_after * 1000)))
            return
        if not done and self.r.exists(CURSOR):  # cut short by the rate limit: the next pass goes on
            self.r.set(DUE, "1", px=5000)

    def list_all(self, deadline: float) -> bool:
        """Read pages until the listing is complete (True), or False when another process holds the listing
        or ``deadline`` (monotonic) passed first; what was read is kept for next time.

        Raises:
            NotReady: Slack did not answer (network, 5xx, a 429 all the same).
        """
        token = secrets.token_hex(8)
        if not self.r.set(LOCK, token, nx=True, px=int((self.max_wait + 30) * 1000)):
            return False
        try:
            while time.monotonic() < deadline:
                cursor = (self.r.get(CURSOR) or b"").decode()
                if not cursor:
                    self.r.delete(STAGING)
                try:
                    page = self.page(cursor)
                except SlackRateLimited:
                    return False
                if page is None:  # refused for good: lookups by email, for a while
                    self.r.set(READY, "refused", ex=REFUSED_TTL)
                    return True
                members, cursor = page
                with self.r.pipeline() as p:
                    if members:
                        p.hset(STAGING, mapping=members)
                        p.expire(STAGING, PROGRESS_TTL)
                    if cursor:
                        p.set(CURSOR, cursor, ex=PROGRESS_TTL)
                    else:
                        self._swap_in(p, staged=bool(members) or bool(self.r.exists(STAGING)))
                    p.execute()
                if not cursor:
                    return True
            return False
        finally:
            self._release(keys=[LOCK], args=[token])

    def page(self, cursor: str) -> tuple[dict[str, str], str] | None:
        """One ``users.list`` page: (email -> id of its people, next cursor or ''); None when Slack refuses it.

        Raises:
            SlackRateLimited: no slot within the client's wait.
            NotReady: Slack did not answer.
        """
        try:
            answer: Any = self.client.users_list(limit=PAGE, cursor=cursor or None)
        except SlackApiError as exc:
            error = exc.response.get("error")
            if exc.response.status_code == 429 or exc.response.status_code >= 500:
                raise NotReady(f"users.list: HTTP {exc.response.status_code}", retry_after=5.0) from None
            if error == "invalid_cursor":  # a listing left too long: start again
                self.r.delete(CURSOR, STAGING)
                raise NotReady("users.list: the cursor expired", retry_after=0.1) from None
            log.warning("users.list refused (%s): people are looked up by email one by one", error)
            return None
        except SlackRateLimited:
            raise
        except (SlackClientError, OSError) as exc:
            raise NotReady(f"Slack unreachable: {exc}", retry_after=5.0) from None
        members = {str(m["profile"]["email"]).strip().lower(): str(m["id"]) for m in answer.get("members") or []
                   if (m.get("profile") or {}).get("email") and not m.get("deleted") and not m.get("is_bot")}
        return members, str((answer.get("response_metadata") or {}).get("next_cursor") or "")

    def _swap_in(self, p: Any, *, staged: bool) -> None:
        """The listing is complete: it replaces the last one at once, and is trusted for three refreshes."""
        keep = max(1, int(3 * self.refresh_every))
        if staged:
            p.rename(STAGING, EMAILS)
            p.expire(EMAILS, keep)
        else:  # a workspace with nobody listed
            p.delete(EMAILS)
        p.delete(CURSOR)
        p.set(READY, str(time.time()), ex=keep)
        p.set(DUE, "1", px=max(1, int(self.refresh_every * 1000)))  # read just now: the next refresh in a while
