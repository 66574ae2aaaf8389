"""Outgoing mail over one SMTP session per process, kept open for the next message and opened again when lost.

A fan-out sends a batch of openings from one job; connecting, greeting, STARTTLS and logging in
for each of them costs more than the message itself. :class:`SmtpSessions` keeps the session open
on an event loop of its own (a daemon thread, so the engine's synchronous jobs can use it) until
it has been idle ``idle`` seconds or carried ``max_messages``, sending one message at a time.

A server may drop a kept session (its idle time-out, a restart). When the session fails before
the message's DATA began, the server has not got the message, so it goes again at once over a
new session: nothing is lost and nothing doubled. When it fails after DATA began, the server may
or may not have taken it; the error goes to the engine, which sends it again later under the
same Message-ID, so a copy, if there was one, is the same message to mail clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, TypeVar

import aiosmtplib

T = TypeVar("T")
#: Errors of the connection itself (rather than the server's answer to this message).
CONNECTION_ERRORS = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError,
                     aiosmtplib.SMTPReadTimeoutError, ConnectionError)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int | None = None  # aiosmtplib's default: 465 with TLS, 587 with STARTTLS, else 25
    user: str | None = None
    password: str | None = None
    starttls: bool | None = None  # None: upgrade when the server offers it
    tls: bool = False  # implicit TLS from the first byte (port 465)
    timeout: float = 30.0


class Session(aiosmtplib.SMTP):
    """aiosmtplib's client, telling whether the current message's DATA began (past it, the server may have it)."""

    data_began = False

    async def data(self, message: str | bytes, /, **options: Any) -> Any:
        self.data_began = True
        return await super().data(message, **options)


def lost(exc: BaseException) -> bool:
    """The session is gone (dropped, timed out, or the server said it is closing it: 421)."""
    return isinstance(exc, CONNECTION_ERRORS) or (isinstance(exc, aiosmtplib.SMTPResponseException)
                                                  and exc.code == 421)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.run_forever()
    finally:
        loop.close()


class _Loop:
    """An event loop running in a daemon thread of this process (a forked child makes its own)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self.thread = threading.Thread(target=_serve, args=(self.loop,), name="taskbot-smtp", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


class SmtpSessions:
    """Sends mail over a kept SMTP session (``idle`` seconds, ``max_messages`` at most; ``idle=0``: one per message)."""

    def __init__(self, config: SmtpConfig, *, idle: float = 10.0, max_messages: int = 100) -> None:
        self.config = config
        self.idle = idle
        self.max_messages = max_messages
        self._guard = threading.Lock()
        self._runner: _Loop | None = None
        self._state: dict[str, Any] = {"client": None, "sent": 0, "generation": 0, "lock": None}
        #: sessions opened so far (what the reuse saves is visible in it)
        self.opened = 0

    def send(self, mail: EmailMessage, sender: str, recipients: Sequence[str]) -> None:
        """Send ``mail``, over the kept session when there is one.

        Raises:
            aiosmtplib.SMTPException, OSError: it could not be sent (see :func:`channels.email.failure`).
        """
        runner = self._loop()
        runner.run(self._send(mail, sender, list(recipients)), timeout=4 * self.config.timeout)

    def close(self) -> None:
        """QUIT the kept session, if any (it also closes by itself once idle)."""
        runner = self._runner
        if (runner is not None and runner.pid == os.getpid() and runner.thread.is_alive()
                and threading.current_thread() is not runner.thread):
            with contextlib.suppress(Exception):
                runner.run(self._drop(quit_=True), timeout=5)

    def _loop(self) -> _Loop:
        with self._guard:
            if self._runner is None or self._runner.pid != os.getpid() or not self._runner.thread.is_alive():
                self._runner = _Loop()
                self._state.update(client=None, sent=0, lock=None)
                weakref.finalize(self, _shut, self._runner, self._state)
            return self._runner

    async def _send(self, mail: EmailMessage, sender: str, recipients: list[str]) -> None:
        state = self._state
        if state["lock"] is None:
            state["lock"] = asyncio.Lock()
        async with state["lock"]:
            state["generation"] += 1
            while True:
                client: Session | None = state["client"]
                reused = client is not None and client.is_connected
                if not reused:
                    await self._drop(quit_=False)
                    client = await self._connect()
                assert client is not None
                client.data_began = False
                try:
                    await client.send_message(mail, sender=sender, recipients=recipients)
                except Exception as exc:
                    gone = lost(exc) or not client.is_connected
                    if gone:
                        await self._drop(quit_=False)
                    if gone and reused and not client.data_began:
                        continue  # the kept session was gone before the server got anything: once more, anew
                    raise  # the engine's to retry; a refusal of this one message leaves the session for the next
                state["sent"] += 1
                break
            if self.idle <= 0 or state["sent"] >= self.max_messages:
                await self._drop(quit_=True)
            else:
                generation = state["generation"]
                asyncio.get_running_loop().call_later(self.idle, self._close_idle, generation)

    async def _connect(self) -> Session:
        c = self.config
        client = Session(hostname=c.host, port=c.port, username=c.user or None, password=c.password or None,
                         use_tls=c.tls, start_tls=False if c.tls else c.starttls, timeout=c.timeout)
        await client.connect()
        self._state.update(client=client, sent=0)
        self.opened += 1
        return client

    def _close_idle(self, generation: int) -> None:
        if self._state["generation"] == generation and self._state["client"] is not None:
            asyncio.get_running_loop().create_task(self._drop(quit_=True, if_generation=generation))

    async def _drop(self, *, quit_: bool, if_generation: int | None = None) -> None:
        state = self._state
        if if_generation is not None and state["generation"] != if_generation:
            return  # used again since the timer was set
        client, state["client"] = state["client"], None
        await _close(client, quit_)


async def _close(client: Session | None, quit_: bool) -> None:
    if client is None:
        return
    protocol = client.protocol
    if quit_ and client.is_connected:
        with contextlib.suppress(Exception):
            await client.quit()
    if client.is_connected:
        client.close()
    # A TLS connection finishes closing after QUIT returned: let it, so its socket is not left to the GC.
    for _ in range(100):
        if protocol is None or protocol.transport is None:
            break
        await asyncio.sleep(0.01)


def _shut(runner: _Loop, state: dict[str, Any]) -> None:
    """When the sessions object goes (or the process ends): QUIT, then stop the loop thread.

    It may run on any thread, the loop's own included (the garbage collector picks), so it waits for nothing.
    """
    if runner.pid != os.getpid() or not runner.thread.is_alive():
        return

    async def shut() -> None:
        await _close(state.get("client"), True)
        asyncio.get_running_loop().stop()

    def start() -> None:
        state["shutting"] = runner.loop.create_task(shut())  # kept: a task nobody holds may be collected

    with contextlib.suppress(RuntimeError):  # the loop is closed already
        runner.loop.call_soon_threadsafe(start)
