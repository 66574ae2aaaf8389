"""Telegram's entry points: ``POST /telegram/webhook`` (or long polling), `/start` linking, `/task` for owners.

Receiving only stores and enqueues: a person's message goes to ``Inbox.receive`` (stored, and
de-duplicated by ``update_id``) and a command (``/start``, ``/task``, ``/help``) to a
``telegram_command`` job, each before Telegram gets its 200. With ``TASKBOT_PUBLIC_URL`` set,
``taskbot serve`` registers the webhook with ``setWebhook`` (and its secret token); without it, a
background task of the app long-polls ``getUpdates``. The engine is sync: the async code hands
every Redis and engine call to a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from telegram import Bot
from telegram.error import BadRequest, RetryAfter, TelegramError

from channels.telegram import TelegramChannel, retry_seconds
from channels.telegram_updates import ALLOWED_UPDATES as TELEGRAM_UPDATES
from engine import keys
from engine.bounds import check_value
from engine.engine import Engine
from engine.errors import InvalidInput
from engine.model import Contact
from engine.ports import Address, DeliveryFailed, Outbound

from .commands import Actor, execute
from .reconnect import GONE, answers
from .reconnect import backoff as redis_backoff
from .settings import Settings

log = logging.getLogger("taskbot.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
COMMANDS = frozenset({"start", "task", "help"})
LINK_TTL = 7 * 86400
UPDATE_TTL = 7 * 86400
POLL_TIMEOUT = 25
#: Exactly the updates handled below: messages and their edits, buttons pressed, the bot blocked or unblocked.
ALLOWED_UPDATES = TELEGRAM_UPDATES
#: Answers to a command wait out a short flood wait in place; a longer one drops the answer (logged).
ANSWER_MAX_WAIT = 10.0

#: A link token works once: read and delete in one step.
REDEEM = """
local contact = redis.call('GET', KEYS[1])
if contact then redis.call('DEL', KEYS[1]) end
return contact
"""

NOT_LINKED_TEXT = ("Hi! I am taskbot. This chat is not linked to anyone yet: ask whoever runs taskbot for your "
                   "personal link (they make it with `taskbot contacts link telegram <your email>`), then open it "
                   "here. Tasks for you will then come to this chat.")
UNREADABLE_TEXT = ("I cannot record {what} as an answer. I can read text, photos, documents, voice, video and "
                   "audio messages (a caption is read as the text): please answer that way.")
USED_TEXT = ("This link has already been used or has expired, so nothing was linked. Ask for a new link "
             "(`taskbot contacts link telegram <your email>`); each link works once, for 7 days.")


def secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


def telegram_channel(engine: Engine) -> TelegramChannel | None:
    channel = engine.channels.get("telegram")
    return channel if isinstance(channel, TelegramChannel) else None


# -- receiving: translate, store or enqueue, acknowledge ---------------------------------------------------
def handle_update(engine: Engine, update: dict[str, Any]) -> str:
    """Store one update (a message) or enqueue it (a command), once per ``update_id``.

    Returns:
        what was done: ``stored``, ``command``, ``duplicate`` or ``ignored`` (with the reason when
        its text cannot be stored). Only after this returns may the update be acknowledged.
    """
    message = TelegramChannel.inbound(update)
    if message is None:
        return other_update(engine, update)
    try:
        check_value(message.text, "message.text")
    except InvalidInput as exc:  # acknowledged, so Telegram does not deliver it again, and never stored
        log.warning("Telegram update %s ignored: %s", message.provider_id, exc)
        return f"ignored: {exc}"
    command = TelegramChannel.command(message.text)
    if command is not None and ("edit_of" in message.meta or "settle" in message.meta):
        return "ignored"  # an edited command does not run again
    if command is None or command[0] not in COMMANDS:
        _, new = engine.inbox.receive(message)
        return "stored" if new else "duplicate"
    seen = keys.telegram_update(message.provider_id)
    if not engine.r.set(seen, message.sender, nx=True, ex=UPDATE_TTL):
        return "duplicate"
    try:
        engine.jobs.enqueue("telegram_command", json.dumps({
            "update_id": message.provider_id, "chat_id": message.sender, "command": command[0], "args": command[1]}))
    except Exception:
        engine.r.delete(seen)  # not queued: let Telegram's redelivery try again
        raise
    return "command"


def other_update(engine: Engine, update: dict[str, Any]) -> str:
    """An update that is no answer: a sticker, a location… (``answered``: the bot says what it can read), the
    bot blocked or unblocked (``blocked``, ``unblocked``: a job moves the person's sub-tasks), or ``ignored``.
    Each is queued once per ``update_id``; nothing is recorded in a conversation."""
    what = TelegramChannel.unreadable(update)
    change = TelegramChannel.membership(update) if what is None else None
    if what is None and (change is None or change[1] not in ("kicked", "member")):
        return "ignored"
    update_id = update.get("update_id")
    seen = keys.telegram_update(str(update_id))
    chat = what[0] if what else change[0] if change else ""
    if not engine.r.set(seen, chat, nx=True, ex=UPDATE_TTL):
        return "duplicate"
    if what is not None:
        job = {"update_id": str(update_id), "chat_id": what[0], "command": "unreadable", "args": what[1]}
    else:
        job = {"update_id": str(update_id), "chat_id": chat, "command": "blocked" if change and change[1] == "kicked"
               else "unblocked", "args": ""}
    try:
        engine.jobs.enqueue("telegram_command", json.dumps(job))
    except Exception:
        engine.r.delete(seen)  # not queued: let Telegram's redelivery try again
        raise
    return "answered" if what is not None else job["command"]


def chat_blocked(engine: Engine, channel: TelegramChannel, chat_id: str, is_blocked: bool) -> None:
    """The person blocked the bot: their chat is no channel any more, and each of their open Telegram
    sub-tasks moves to their next usable channel or fails with the reason (``Subtasks.reroute``)."""
    channel.blocked(chat_id, is_blocked)
    if not is_blocked:
        return
    for sid in [s.decode() for s in engine.r.zrange(keys.active("telegram", chat_id), 0, -1)]:
        engine.subtasks.reroute(sid, f"the Telegram chat {chat_id} blocked the bot")


def mount_telegram(app: FastAPI, engine: Engine, settings: Settings) -> None:
    """Add ``POST /telegram/webhook``; with Telegram on, register the webhook or long-poll for the app's lifetime."""
    channel = telegram_channel(engine)
    webhook_secret = secret(settings.telegram_webhook_secret)

    async def telegram_webhook(request: Request) -> Response:
        """Telegram updates; 401 unless ``X-Telegram-Bot-Api-Secret-Token`` is TELEGRAM_WEBHOOK_SECRET."""
        if channel is None:
            return JSONResponse({"detail": "Telegram is off: TELEGRAM_BOT_TOKEN is not set"}, status_code=404)
        if not webhook_secret:  # an empty secret would let anyone post updates
            return JSONResponse({"detail": "TELEGRAM_WEBHOOK_SECRET is not set"}, status_code=401)
        given = request.headers.get(SECRET_HEADER, "")
        if not secrets.compare_digest(given.encode(), webhook_secret.encode()):
            return JSONResponse({"detail": "missing or wrong secret token"}, status_code=401)
        body = await request.body()  # at most TASKBOT_MAX_BODY: the app answers 413 beyond it
        try:
            update = json.loads(body)
        except (ValueError, RecursionError):
            return JSONResponse({"detail": "the body is not JSON"}, status_code=400)
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            return JSONResponse({"detail": "not a Telegram update (no update_id)"}, status_code=400)
        done = await asyncio.to_thread(handle_update, engine, update)
        return JSONResponse({"ok": True, "result": done})

    app.add_api_route("/telegram/webhook", telegram_webhook, methods=["POST"], tags=["telegram"],
                      summary="Telegram updates (X-Telegram-Bot-Api-Secret-Token checked)",
                      responses={400: {"description": "not a Telegram update"},
                                 401: {"description": "a wrong or missing X-Telegram-Bot-Api-Secret-Token"},
                                 404: {"description": "Telegram is off (no TELEGRAM_BOT_TOKEN)"},
                                 413: {"description": "a body over 1 MiB"}})
    if channel is None:
        return
    url = f"{settings.public_url.rstrip('/')}/telegram/webhook" if settings.public_url else None
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(asgi_app: Any) -> AsyncIterator[Any]:
        task = asyncio.create_task(receive(engine, channel, url, webhook_secret), name="taskbot-telegram")
        try:
            async with inner(asgi_app) as state:
                yield state
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.router.lifespan_context = lifespan


async def receive(engine: Engine, channel: TelegramChannel, url: str | None, webhook_secret: str) -> None:
    """Register the webhook when there is a public URL and a secret; long-poll otherwise (or when refused)."""
    async with channel.bot() as bot:
        if url and webhook_secret:
            backoff = 1.0
            while True:
                try:
                    await bot.set_webhook(url, secret_token=webhook_secret, allowed_updates=ALLOWED_UPDATES)
                    log.info("Telegram webhook set to %s", url)
                    return
                except RetryAfter as exc:
                    await asyncio.sleep(retry_seconds(exc))
                except BadRequest as exc:  # e.g. not an HTTPS URL: no retry will change Telegram's mind
                    log.error("Telegram refused the webhook %s (%s): receiving by long polling instead", url, exc)
                    break
                except TelegramError as exc:  # unreachable, or a token to fix: keep the webhook way, try again
                    log.warning("setWebhook failed (%s); trying again in %.0fs", exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 60.0)
        elif url:
            log.warning("TELEGRAM_WEBHOOK_SECRET is not set: receiving Telegram updates by long polling")
        await poll(engine, bot)


async def poll(engine: Engine, bot: Bot) -> None:
    """Long-poll ``getUpdates``; the offset moves past an update only once it is stored.

    While Redis is away nothing can be stored: the poller waits with backoff until Redis answers,
    then fetches the same updates again (Telegram keeps them until the offset moves past them).
    """
    offset: int | None = None
    webhook_removed = False
    backoff = 1.0
    log.info("Telegram: receiving by long polling")
    while True:
        await redis_answers(engine)
        try:
            if not webhook_removed:
                webhook_removed = bool(await bot.delete_webhook())
            updates = await bot.get_updates(offset=offset, timeout=POLL_TIMEOUT, allowed_updates=ALLOWED_UPDATES)
        except RetryAfter as exc:
            await asyncio.sleep(retry_seconds(exc))
            continue
        except TelegramError as exc:
            log.warning("Telegram getUpdates failed (%s); trying again in %.0fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
            continue
        backoff = 1.0
        for update in updates:
            try:
                await asyncio.to_thread(handle_update, engine, update.to_dict())
            except GONE as exc:
                log.warning("Telegram update %s not stored: Redis is not answering (%s)", update.update_id, exc)
                break  # the next round waits for Redis, then fetches it again
            except Exception:
                log.exception("Telegram update %s could not be stored; it is fetched again", update.update_id)
                await asyncio.sleep(1.0)
                break
            offset = update.update_id + 1


async def redis_answers(engine: Engine) -> None:
    """Return once Redis answers a PING, pausing with backoff meanwhile (cancellable, unlike a blocked thread)."""
    pauses, failures = redis_backoff(), 0
    while not await asyncio.to_thread(answers, engine.r):
        failures += 1
        if failures == 1:
            log.warning("Telegram poller: Redis is not answering; fetching no updates until it does")
        await asyncio.sleep(pauses.compute(failures))
    if failures:
        log.warning("Telegram poller: Redis answers again; fetching updates")


# -- linking a contact to their chat ----------------------------------------------------------------------
def linked_contact(engine: Engine, chat_id: str) -> Contact | None:
    """The contact this chat is linked to (checked both ways: a re-linked contact's old chat is no one's)."""
    contact = engine.store.contact_by("telegram_chat_id", chat_id)
    return contact if contact is not None and contact.telegram_chat_id == chat_id else None


def who(contact: Contact) -> str:
    return f"{contact.name} ({contact.email or contact.id})"


def link_contact(engine: Engine, contact_ref: str) -> str:
    """A deep link ``https://t.me/<bot>?start=<token>`` that links whoever opens it to ``contact_ref``.

    Raises:
        InvalidInput: Telegram is off, or no such contact.
        DeliveryFailed: Telegram did not tell the bot's username (``getMe``).
    """
    channel = telegram_channel(engine)
    if channel is None:
        raise InvalidInput("TELEGRAM_BOT_TOKEN", "is not set, so Telegram is off")
    contact = engine.store.find_contacts([contact_ref]).get(contact_ref)
    if contact is None:
        raise InvalidInput("CONTACT", f"no contact {contact_ref!r} (import it first)")
    username = channel.me().username
    token = secrets.token_urlsafe(24)  # 32 of [A-Za-z0-9_-]: what a start parameter allows, unguessable
    engine.r.set(keys.telegram_link(token), contact.id, ex=LINK_TTL)
    return f"https://t.me/{username}?start={token}"


def start(engine: Engine, chat_id: str, token: str) -> str:
    """``/start [token]``: link this chat to the token's contact (once), or say who it is linked to."""
    if not token:
        contact = linked_contact(engine, chat_id)
        return f"Hi {contact.name}! This chat is linked to {who(contact)}." if contact else NOT_LINKED_TEXT
    contact_id = engine.r.eval(REDEEM, 1, keys.telegram_link(token))
    if contact_id is None:
        return USED_TEXT
    contact = engine.store.find_contacts([contact_id.decode()]).get(contact_id.decode())
    if contact is None:
        return "The person this link was made for is no longer in the directory; nothing was linked."
    changed = [contact.model_copy(update={"telegram_chat_id": chat_id})]
    previous = linked_contact(engine, chat_id)
    if previous is not None and previous.id != contact.id:  # one chat, one person
        changed.insert(0, previous.model_copy(update={"telegram_chat_id": None}))
    engine.store.put_contacts(changed)
    return f"Hi {contact.name}! This chat is now linked to {who(contact)}: your tasks will come here."


# -- commands, run in a job -------------------------------------------------------------------------------
def actor_for(engine: Engine, chat_id: str, admins: set[str]) -> Actor:
    """Everything the person in this chat is known as: the chat id, and their linked contact's id and email."""
    ids = {chat_id}
    contact = linked_contact(engine, chat_id)
    if contact is not None:
        ids |= {contact.id, *([contact.email] if contact.email else [])}
    return Actor(frozenset(ids), admin=bool(ids & admins))


def run_command(engine: Engine, payload: str) -> None:
    """Run one ``/start``, ``/task`` or ``/help`` and answer in the same chat."""
    command = json.loads(payload)
    channel = telegram_channel(engine)
    if channel is None:
        return
    chat, name, args = command["chat_id"], command["command"], command["args"]
    if name in ("blocked", "unblocked"):
        chat_blocked(engine, channel, chat, name == "blocked")
        return
    if name == "unreadable":
        text = UNREADABLE_TEXT.format(what=args)
    elif name == "start":
        text = start(engine, chat, (args.split() or [""])[0])
    else:
        actor = actor_for(engine, chat, Settings().admin_ids)
        text = execute(engine, args if name == "task" else "help", actor, kind="slash").text
    answer(channel, chat, text, f"command:{command['update_id']}")


def answer(channel: TelegramChannel, chat_id: str, text: str, key: str) -> None:
    """Answer in the chat; never raise: the command already ran once and must not run again."""
    out = Outbound(Address("telegram", chat_id), text, key=key, kind="direct")
    for attempt in (1, 2):
        try:
            channel.send(out)
            return
        except DeliveryFailed as exc:
            wait = exc.retry_after or 1.0
            if exc.permanent or attempt == 2 or wait > ANSWER_MAX_WAIT:
                log.warning("could not answer chat %s: %s", chat_id, exc.reason)
                return
            time.sleep(wait)
