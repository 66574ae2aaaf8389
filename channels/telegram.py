"""The Telegram channel: private chats through python-telegram-bot's ``Bot``, and updates turned into ``Inbound``.

A message's ``Delivery.ref`` is ``{chat id}:{message id}``, the form ``inbound`` gives a reply's
``reply_to``, so a reply to any message the bot sent routes to that message's sub-task. A text
over Telegram's 4,096-character limit goes out in parts; its ref is the *last* part's, the one
that ends with the question. Every send first takes a slot from a limiter in Redis that all
processes share (:mod:`.ratelimit`): at most ``TASKBOT_TELEGRAM_RATE`` messages of the bot in any
second (default 30, Telegram's flood limit for a bot; it raises it for paid broadcasts) and
``TASKBOT_TELEGRAM_CHAT_RATE`` to one chat (default 1). A send that would wait longer than
``max_wait`` is deferred instead (``DeliveryFailed.retry_after``), so no job sits out a long wait.

The engine is synchronous; the Bot API calls are async, so each send runs them on its own
short-lived event loop (``asyncio.run``) and closes the HTTP client before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import weakref
from collections.abc import AsyncIterator, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, ReplyParameters, User
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from engine import keys
from engine.model import Contact
from engine.ports import Delivery, DeliveryFailed, Inbound, Outbound, Question, Settle

from .files import MAX_FILE, attached, download, folder_for
from .markdown import plain_text
from .ratelimit import Limiter, Rule, Wait
from .telegram_updates import membership, read_message, read_press, unreadable

log = logging.getLogger("taskbot.telegram")

T = TypeVar("T")
MAX_LENGTH = 4096
PARTS_TTL = 86400
CALLBACK_MAX = 64  # bytes of a button's callback_data
COMMAND = re.compile(r"^/([A-Za-z0-9_]+)(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?$", re.DOTALL)


def utf16_units(char: str) -> int:
    """Telegram counts text length in UTF-16 code units: a character beyond the BMP counts twice."""
    return 2 if ord(char) > 0xFFFF else 1


def fitting(text: str, limit: int) -> int:
    """How many leading characters of ``text`` fit in ``limit`` UTF-16 units."""
    units = 0
    for index, char in enumerate(text):
        units += utf16_units(char)
        if units > limit:
            return index
    return len(text)


def split_text(text: str, limit: int = MAX_LENGTH) -> list[str]:
    """``text`` in parts of at most ``limit`` units, cut at a paragraph, line or word break when one is near."""
    parts: list[str] = []
    rest = text
    while (fits := fitting(rest, limit)) < len(rest):
        window = rest[:fits]
        cut = next((i + len(sep) for sep in ("\n\n", "\n", " ") if (i := window.rfind(sep)) >= fits // 2), fits)
        parts.append(rest[:cut].rstrip() or rest[:cut])
        rest = rest[cut:].lstrip()
    if rest or not parts:
        parts.append(rest)
    return parts


def keyboard(question: Question) -> InlineKeyboardMarkup | None:
    """An inline keyboard for a choice or a scale (none for a date: Telegram has no date picker).

    A button's ``callback_data`` (64 bytes at most) is ``<option number>|<field key>``."""
    options = question.options
    if question.type not in ("choice", "scale") or not options:
        return None
    buttons = [InlineKeyboardButton(label, callback_data=callback(n, question.key))
               for n, label in enumerate(options, 1)]
    short = all(len(o) <= 12 for o in options)
    width = (6 if question.type == "scale" else 3) if short else 1
    return InlineKeyboardMarkup([buttons[i:i + width] for i in range(0, len(buttons), width)])


def callback(n: int, key: str) -> str:
    data = f"{n}|{key}"
    return data if len(data.encode()) <= CALLBACK_MAX else f"{n}|"


def pressed(press: dict[str, Any], provider_id: str) -> Inbound:
    """A keyboard button pressed (read by :func:`.telegram_updates.read_press`), as an ``Inbound`` whose text
    is the button's label; ``<option number>|<field key>`` says which field it answers."""
    number, _, key = press["data"].partition("|")
    chat, message_id = press["chat"], press["message_id"]
    settle: dict[str, Any] = {"callback_id": press["id"], "chat_id": chat, "message_id": message_id}
    return Inbound("telegram", str(chat), press["label"] or number, provider_id=provider_id,
                   reply_to=f"{chat}:{message_id}" if message_id is not None else None,
                   meta={**({"answers": key} if key else {}), "settle": settle})


def retry_seconds(exc: RetryAfter) -> float:
    """``RetryAfter``'s wait in seconds (read without PTB's deprecation warning about its type)."""
    raw = getattr(exc, "_retry_after", None)
    if isinstance(raw, timedelta):
        return raw.total_seconds()
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def failure(exc: TelegramError) -> DeliveryFailed:
    """Permanent when no retry can reach this person (blocked the bot, chat gone); anything else is retried."""
    if isinstance(exc, RetryAfter):
        seconds = retry_seconds(exc)
        return DeliveryFailed(f"Telegram rate limit: retry after {seconds:g}s", permanent=False, retry_after=seconds)
    if isinstance(exc, Forbidden | BadRequest | ChatMigrated):
        # blocked, deactivated or no such chat: Telegram cannot reach them, another channel may
        gone = isinstance(exc, Forbidden) or "chat not found" in exc.message.lower()
        return DeliveryFailed(f"Telegram refused: {exc.message}", permanent=True, unreachable=gone)
    if isinstance(exc, InvalidToken):  # the operator's to fix; the people are still reachable afterwards
        return DeliveryFailed(f"Telegram refused the bot token: {exc.message}", permanent=False)
    return DeliveryFailed(f"Telegram unreachable: {exc.message}", permanent=False)


class TelegramChannel:
    """Implements the engine's ``Channel`` on the Bot API; a contact's address is their private chat id.

    Args:
        token: the bot token (TELEGRAM_BOT_TOKEN).
        api_url: python-telegram-bot's ``base_url`` (TASKBOT_TELEGRAM_API_URL).
        r: Redis, shared by every process, for the send limiter.
        max_wait: the longest a send waits for a slot; beyond it the send is deferred (DeliveryFailed).
        rate: messages a second the bot may send in all (TASKBOT_TELEGRAM_RATE).
        chat_rate: messages a second to one chat (TASKBOT_TELEGRAM_CHAT_RATE).
    """

    name = "telegram"

    def __init__(self, token: str, api_url: str, r: redis.Redis, *, max_wait: float = 10.0, rate: float = 30.0,
                 chat_rate: float = 1.0, files: Path = Path(".taskbot/attachments"), max_file: int = MAX_FILE) -> None:
        self.token = token
        self.api_url = api_url
        # files are served beside the API: https://api.telegram.org/file/bot<token>/<file_path>
        head, bot, _ = api_url.rstrip("/").rpartition("/bot")
        self.file_url = f"{head}/file/bot" if bot else f"{api_url.rstrip('/')}/file/bot"
        self.files = files
        self.max_file = max_file
        self.r = r
        self.max_wait = max_wait
        self.limiter = Limiter(r)
        self.bot_rule = Rule.rate(rate)
        self.chat_rule = Rule.rate(chat_rate)
        self._ssl = httpx.create_ssl_context()  # httpx's own default, made once: it costs ~20 ms

    @classmethod
    def from_settings(cls, token: str, settings: Any) -> TelegramChannel:
        r = redis.Redis.from_url(settings.redis_url)
        # A send must not wait so long that its claim (a lease long) runs out under it.
        channel = cls(token, settings.telegram_api_url, r, max_wait=min(10.0, settings.lease_seconds / 2),
                      rate=settings.telegram_rate, chat_rate=settings.telegram_chat_rate,
                      files=Path(settings.data_dir).expanduser() / "attachments",
                      max_file=getattr(settings, "max_file", MAX_FILE))
        # Its own connections close with it: left to the garbage collector, a socket may go first (ResourceWarning).
        weakref.finalize(channel, r.close)
        return channel

    def resolve(self, contact: Contact) -> str | None:
        """The linked chat, unless its person blocked the bot (:meth:`blocked`)."""
        chat = contact.telegram_chat_id
        if not chat or self.r.exists(keys.telegram_blocked(chat)):
            return None
        return chat

    # -- the Bot API ------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def bot(self) -> AsyncIterator[Bot]:
        """A ``Bot`` for calls on the running loop; its HTTP client is closed on the way out."""
        request = HTTPXRequest(connection_pool_size=2, httpx_kwargs={"verify": self._ssl})
        try:
            yield Bot(self.token, base_url=self.api_url, base_file_url=self.file_url, request=request,
                      get_updates_request=request)
        finally:
            await request.shutdown()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one async Bot API exchange from sync code (a job, the CLI) on a loop of its own."""
        return asyncio.run(coro)

    def me(self) -> User:
        """The bot's own user (``getMe``): its ``username`` makes the deep links.

        Raises:
            DeliveryFailed: Telegram did not answer or refused the token.
        """

        async def get_me() -> User:
            async with self.bot() as bot:
                return await bot.get_me()

        try:
            return self.call(get_me())
        except TelegramError as exc:
            raise failure(exc) from None

    # -- sending ----------------------------------------------------------------------------------------
    def send(self, message: Outbound) -> Delivery:
        if message.settle is not None:
            self.settle(message.settle)
        if not message.text:
            return Delivery()
        chat = message.address.id
        # a deliverable's Markdown as plain lines (a table row as "name: field: value; ..."), not markup
        parts = split_text(plain_text(message.text) if message.kind == "report" else message.text)
        markup = keyboard(message.question) if message.question else None
        # A chase quotes the opening, so the person sees what it is about; other messages stand alone.
        quote = message.thread if message.kind == "chase" else None
        quoted = int(quote.split(":", 1)[1]) if quote and quote.startswith(f"{chat}:") else None
        done = {k.decode(): v.decode() for k, v in self.r.hgetall(keys.telegram_parts(message.key)).items()} \
            if len(parts) > 1 else {}
        ref: str | None = None
        for index, part in enumerate(parts):
            if str(index) in done:  # sent before a failure of a later part; the retry goes on from there
                ref = done[str(index)]
                continue
            ref = self._send_part(chat, part, quoted if index == 0 else None,
                                  markup if index == len(parts) - 1 else None)
            if len(parts) > 1:
                with self.r.pipeline() as p:
                    p.hset(keys.telegram_parts(message.key), str(index), ref)
                    p.expire(keys.telegram_parts(message.key), PARTS_TTL)
                    p.execute()
        return Delivery(ref=ref)

    def _send_part(self, chat: str, text: str, quoted: int | None, markup: InlineKeyboardMarkup | None = None) -> str:
        async def post() -> str:
            reply = ReplyParameters(quoted, allow_sending_without_reply=True) if quoted else None
            limits = self._limits(chat)
            async with self.bot() as bot:
                # The slot is taken with everything ready, so the message leaves right after it; it counts
                # until Telegram answered, when Telegram has it for sure.
                member = await asyncio.to_thread(self._take_slot, chat, limits)
                try:
                    sent = await bot.send_message(chat, text, reply_parameters=reply, reply_markup=markup,
                                                  link_preview_options=LinkPreviewOptions(is_disabled=True))
                finally:
                    await asyncio.to_thread(self.limiter.finish, limits, member)
            return f"{sent.chat.id}:{sent.message_id}"

        try:
            return self.call(post())
        except RetryAfter as exc:  # no one sends to this chat until Telegram allows it again
            self.limiter.hold(keys.telegram_rate_chat(chat), retry_seconds(exc))
            raise failure(exc) from None
        except TelegramError as exc:
            if isinstance(exc, Forbidden) and "blocked" in exc.message.lower():
                self.blocked(chat, True)  # as if my_chat_member had said so: new tasks go to another channel
            raise failure(exc) from None

    def settle(self, settle: Settle) -> None:
        """Answer the button press (``answerCallbackQuery``: the person's app stops waiting and shows the
        answer) and take the keyboard off the message (``editMessageReplyMarkup``).

        Cosmetic: a failure (an expired query, a message gone) is logged, never fails the reply.
        """
        data = settle.data

        async def settle_it() -> None:
            async with self.bot() as bot:
                if data.get("callback_id"):
                    await bot.answer_callback_query(str(data["callback_id"]), text=f"✓ {settle.answer}"[:200])
                if data.get("chat_id") and data.get("message_id"):
                    await bot.edit_message_reply_markup(chat_id=data["chat_id"], message_id=int(data["message_id"]))

        try:
            self.call(settle_it())
        except TelegramError as exc:
            log.warning("could not settle the pressed button: %s", exc)

    def _limits(self, chat: str) -> list[tuple[str, Rule]]:
        return [(keys.TELEGRAM_RATE_BOT, self.bot_rule), (keys.telegram_rate_chat(chat), self.chat_rule)]

    def _take_slot(self, chat: str, limits: list[tuple[str, Rule]]) -> str:
        """Wait until both the bot and the chat may send one more message, across every process.

        Raises:
            DeliveryFailed: the wait would be longer than ``max_wait``; the engine tries again later.
        """
        try:
            return self.limiter.take(limits, self.max_wait)
        except Wait as wait:
            raise DeliveryFailed(f"Telegram send limit: chat {chat} must wait {wait.seconds:.1f}s", permanent=False,
                                 retry_after=wait.seconds) from None

    # -- receiving --------------------------------------------------------------------------------------
    @staticmethod
    def inbound(update: dict[str, Any]) -> Inbound | None:
        """A person's message in a private chat with the bot (an Update as JSON), as an ``Inbound``; else None.

        Read leniently (:mod:`.telegram_updates`): only the chat's id and a sender are needed. Group
        chats, bots' messages and messages with nothing to read are not answers. The text is the
        message's, or the caption of its media; files (the largest photo size, a document, voice,
        video, audio) are listed in ``meta.pending`` and downloaded by the worker
        (:meth:`complete_inbound`); a message of files only is ``file_only``. ``reply_to`` is the
        replied-to message as ``{chat id}:{message id}``, like ``Delivery.ref``; ``meta.ref`` is the
        message's own. An ``edited_message`` carries the edited one's ref as ``meta.edit_of`` (and
        ``reply_to``, which finds the sub-task it answered); a ``callback_query`` (a keyboard button
        pressed) is the button's text, answering its field (``meta.answers``).
        """
        update_id = update.get("update_id")
        provider_id = str(update_id) if _integer(update_id) else ""
        query = update.get("callback_query")
        if isinstance(query, dict):
            press = read_press(query)
            return pressed(press, provider_id or f"cbq:{press['id']}") if press is not None else None
        read = read_message(update)
        if read is None:
            return None
        chat, message_id = read["chat"], read["message_id"]
        ref = f"{chat}:{message_id}" if message_id is not None else None
        meta: dict[str, Any] = {"chat_id": chat, "message_id": message_id}
        if ref:
            meta.update({"edit_of": ref} if read["edited"] else {"ref": ref})
        text = read["text"]
        if read["album"]:
            meta["album"] = read["album"]  # photos sent together: the first answers, the others go with it
        if read["files"]:
            meta["pending"] = {"files": read["files"]}
            if not text.strip():
                text = attached([f["name"] for f in read["files"]])
                meta["file_only"] = True
        if read["edited"] and ref is None:
            return None  # an edit of no message we can name changes nothing
        reply = read["reply_to"]
        return Inbound("telegram", str(chat), text,
                       provider_id=provider_id or f"{chat}:{message_id}:{'e' if read['edited'] else 'm'}",
                       reply_to=ref if read["edited"] else (f"{chat}:{reply}" if reply is not None else None),
                       at=read["at"], meta=meta)

    @staticmethod
    def unreadable(update: dict[str, Any]) -> tuple[str, str] | None:
        """(chat id, what) for a message that cannot answer (a sticker, a location…): the bot says so."""
        found = unreadable(update)
        return (str(found[0]), found[1]) if found else None

    @staticmethod
    def membership(update: dict[str, Any]) -> tuple[str, str] | None:
        """(chat id, the bot's new status) of ``my_chat_member`` in a private chat (``kicked``: blocked)."""
        found = membership(update)
        return (str(found[0]), found[1]) if found else None

    # -- blocked chats and files, in the worker -----------------------------------------------------------
    def blocked(self, chat: str, is_blocked: bool) -> None:
        """Remember that the person blocked the bot (``my_chat_member`` kicked): their chat is no channel
        for new sub-tasks (:meth:`resolve`) until they unblock it."""
        if is_blocked:
            self.r.set(keys.telegram_blocked(chat), "1")
        else:
            self.r.delete(keys.telegram_blocked(chat))

    def complete_inbound(self, text: str, meta: dict[str, Any], ident: str) -> tuple[str, dict[str, Any]]:
        """The message's files downloaded (``getFile``, then the file URL, at most ``max_file`` bytes each).
        Never raises: a file Telegram does not give is kept by name with the reason."""
        pending = meta.get("pending")
        rest = {k: v for k, v in meta.items() if k != "pending"}
        files = [f for f in (pending.get("files") if isinstance(pending, dict) else None) or [] if isinstance(f, dict)]
        if files:
            rest["attachments"] = self._download(files, folder_for(self.files, "telegram", ident))
        return text, rest

    def _download(self, files: list[dict[str, Any]], folder: Path) -> list[dict[str, Any]]:
        async def urls() -> list[str | BaseException]:
            async with self.bot() as bot:
                out: list[str | BaseException] = []
                for item in files:
                    if isinstance(item.get("size"), int) and item["size"] > self.max_file:
                        out.append(ValueError("too large"))
                        continue
                    try:
                        out.append(str((await bot.get_file(str(item["file_id"]))).file_path or ""))
                    except TelegramError as exc:
                        out.append(exc)
                return out

        try:
            found = self.call(urls())
        except (TelegramError, OSError) as exc:
            found = [exc for _ in files]
        saved: list[dict[str, Any]] = []
        used: set[str] = set()
        for item, url in zip(files, found, strict=True):
            name = str(item.get("name") or "file")
            if isinstance(url, ValueError):
                saved.append({"name": name, "error": f"larger than {self.max_file:,} bytes: not kept"})
            elif isinstance(url, BaseException) or not url:
                # getFile refuses files over 20 MB (the Bot API's own limit for bots)
                saved.append({"name": name, "error": f"Telegram did not give the file ({url or 'no path'})"})
            else:
                saved.append(download(url, folder, name, item.get("content_type"), used, limit=self.max_file))
        return saved

    @staticmethod
    def command(text: str) -> tuple[str, str] | None:
        """``/task run x`` -> ``("task", "run x")``, ``/start@bot t`` -> ``("start", "t")``; None: not a command."""
        found = COMMAND.match(text.strip())
        return (found.group(1).lower(), (found.group(2) or "").strip()) if found else None


def _integer(value: Any) -> bool:
    """An int as JSON gives it (``True`` is an int to Python, not to the Bot API)."""
    return isinstance(value, int) and not isinstance(value, bool)
