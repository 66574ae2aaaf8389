"""The IMAP poller: unseen mail in the bot's mailbox becomes stored ``Inbound`` messages.

The scheduler pass calls :func:`schedule_poll`, which queues the ``poll_mailbox`` job at most
once per ``TASKBOT_IMAP_POLL`` seconds; the job holds a lock, so one poll runs at a time however
many workers there are. A message is flagged ``\\Seen`` only after ``engine.inbox.receive``
stored it: a crash in between makes the next poll hand it over again, and the engine drops the
second copy by its Message-ID. A Redis restart fails the poll (RQ retries it) but never leaves its
lock behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from channels.email import EmailChannel, MailboxConfig
from engine.engine import Engine
from engine.keys import PREFIX
from engine.store import new_id

from .reconnect import GONE, wait_for_redis

log = logging.getLogger("taskbot.mailbox")

POLL_DUE = PREFIX + "email:poll:due"
POLL_LOCK = PREFIX + "email:poll:lock"
#: A poll that dies keeps the lock this long at most; a live one renews it after each batch.
LOCK_SECONDS = 120
BATCH = 25
MAX_PER_POLL = 500
TIMEOUT = 30
SEEN = b"\\Seen"

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def channel_of(engine: Engine) -> EmailChannel | None:
    """The email channel when it reads a mailbox (IMAP configured), else None."""
    channel = engine.channels.get("email")
    return channel if isinstance(channel, EmailChannel) and channel.mailbox is not None else None


def schedule_poll(engine: Engine) -> bool:
    """Queue a poll when the last one was queued ``poll`` seconds ago or more (scheduler pass)."""
    channel = channel_of(engine)
    if channel is None or channel.mailbox is None:
        return False
    if not engine.r.set(POLL_DUE, "1", nx=True, px=max(1, int(channel.mailbox.poll * 1000))):
        return False
    engine.jobs.enqueue("poll_mailbox")
    return True


@contextmanager
def connect(config: MailboxConfig) -> Iterator[IMAPClient]:
    """A logged-in IMAP session on the mailbox folder (TLS unless ``TASKBOT_IMAP_SSL=false``)."""
    with IMAPClient(config.host, port=config.port, ssl=config.ssl, timeout=TIMEOUT) as client:
        client.login(config.user, config.password)
        client.select_folder(config.folder)
        yield client


def poll(engine: Engine) -> int:
    """Hand every unseen message to the engine, oldest first; returns how many were stored anew.

    Returns 0 at once when another poll holds the lock. A mailbox that cannot be reached is
    logged, not raised: the next poll, ``TASKBOT_IMAP_POLL`` seconds later, tries again.
    """
    channel = channel_of(engine)
    if channel is None or channel.mailbox is None:
        return 0
    holder = new_id(8)
    if not engine.r.set(POLL_LOCK, holder, nx=True, ex=LOCK_SECONDS):
        return 0
    stored = 0
    try:
        with connect(channel.mailbox) as client:
            uids = sorted(client.search(["UNSEEN"]))[:MAX_PER_POLL]
            for start in range(0, len(uids), BATCH):
                stored += _batch(engine, channel, client, uids[start:start + BATCH])
                engine.r.expire(POLL_LOCK, LOCK_SECONDS)
    except (OSError, IMAPClientError) as exc:
        # The next poll is the retry; what was stored so far is flagged seen or dropped as a duplicate.
        log.warning("mailbox %s@%s unreachable or refused: %s", channel.mailbox.user, channel.mailbox.host, exc)
    finally:
        release(engine, holder)
    return stored


def release(engine: Engine, holder: str) -> None:
    """Give the poll lock back. Redis gone meanwhile: wait for it (at most the lock's own lifetime),
    else a restart would leave a dead poll's lock that blocks polling for two minutes. A poll that
    failed on the outage is retried by RQ; what it stored is flagged seen or dropped as a duplicate."""
    try:
        engine.r.eval(RELEASE, 1, POLL_LOCK, holder)
    except GONE:
        if wait_for_redis(engine.r, what="mailbox poll", timeout=LOCK_SECONDS):
            engine.r.eval(RELEASE, 1, POLL_LOCK, holder)


def _batch(engine: Engine, channel: EmailChannel, client: IMAPClient, uids: list[int]) -> int:
    fetched = client.fetch(uids, ["BODY.PEEK[]"])
    done: list[int] = []
    stored = 0
    for uid in uids:
        raw = fetched.get(uid, {}).get(b"BODY[]")
        if raw is None:
            continue  # expunged since the search
        try:
            inbound = channel.inbound(bytes(raw))
        except Exception:
            log.exception("mail uid %s could not be read; it stays unseen and is tried again next poll", uid)
            continue
        if inbound is None:
            log.warning("mail uid %s has no sender address; ignored", uid)
        elif inbound.sender == channel.address:
            log.info("mail uid %s is from taskbot's own address; ignored", uid)
        else:
            _, new = engine.inbox.receive(inbound)
            stored += new
        done.append(uid)
    if done:
        try:
            client.add_flags(done, [SEEN])
        except IMAPClientError:
            log.exception("could not flag %d stored messages as seen; the next poll skips them as duplicates",
                          len(done))
    return stored
