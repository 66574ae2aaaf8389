"""Real mail servers for tests: an aiosmtpd SMTP server that records, and a private Dovecot IMAP server.

``SmtpServer`` listens on a free port of 127.0.0.1, keeps every message it accepted (with the
client connection it came over), can refuse chosen recipients (``550``), require a login, speak
STARTTLS or implicit TLS, hang up on a session after some messages (as servers do), and be
stopped, closing its sessions, and started again on the same port (an outage). ``Dovecot`` runs
Debian's ``dovecot`` as an unprivileged-port instance whose configuration, passwords, Maildir and
log live in a temporary folder; mail is put into its INBOX with IMAP APPEND, as a delivery agent
would.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import itertools
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from imapclient import IMAPClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port}")
        time.sleep(0.05)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    session: int = 0  # which SMTP session (client connection) it came over, numbered from 1
    at: float = 0.0  # when it was accepted (time.time())


SESSION_NUMBERS = itertools.count(1)


class TrackingController(Controller):
    """aiosmtpd's controller, which closes its open sessions when stopped (as a server going down does)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        server = super().factory()
        server.number = next(SESSION_NUMBERS)  # type: ignore[attr-defined]
        self.sessions.append(server)
        return server

    def stop(self, no_assert: bool = False) -> None:
        async def hang_up() -> None:
            for server in self.sessions:
                if server.transport is not None and not server.transport.is_closing():
                    server.transport.close()
            await asyncio.sleep(0.05)  # the closes go out

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(hang_up(), self.loop).result(5)
        super().stop(no_assert)


@dataclass
class SmtpServer:
    """An SMTP server in this process (aiosmtpd); ``messages`` is what it accepted, in order."""

    users: dict[str, str] = field(default_factory=dict)  # login -> password; empty: no AUTH offered
    tls: ssl.SSLContext | None = None  # with ``implicit``: TLS from the first byte, else STARTTLS required
    implicit: bool = False
    port: int = field(default_factory=free_port)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> SMTP reply, e.g. "550 5.1.1 no such user"
    messages: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    hang_up_after: int | None = None  # messages a session may carry; the next MAIL FROM finds it closed
    stop_after: int | None = None  # messages accepted in all, then the server stops once (an outage mid-batch)
    _controller: Controller | None = None
    _going_down: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> SmtpServer:
        self._going_down = False
        kwargs: dict[str, Any] = {}
        if self.users:
            # AUTH offered (and recorded in ``logins``), not required: aiosmtpd warns about AUTH required without TLS
            # (with implicit TLS, aiosmtpd does not know the session is encrypted)
            kwargs.update(authenticator=self._authenticate, auth_require_tls=self.tls is not None and not self.implicit)
        if self.tls is not None and self.implicit:
            kwargs["ssl_context"] = self.tls
        elif self.tls is not None:
            kwargs.update(tls_context=self.tls, require_starttls=True)
        self._controller = TrackingController(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    @property
    def sessions_used(self) -> int:
        """How many SMTP sessions the accepted messages came over."""
        with self._lock:
            return len({m.session for m in self.messages})

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m.message for m in self.messages if address in m.rcpt_tos]

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            login, password = data.login.decode(), data.password.decode()
            if self.users.get(login) == password:
                self.logins.append(login)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    # aiosmtpd handler hooks
    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          mail_options: list[str]) -> str:
        with self._lock:
            carried = sum(1 for m in self.messages if m.session == server.number)
            if self.stop_after is not None and len(self.messages) >= self.stop_after and not self._going_down:
                self._going_down = True  # from here on no message is taken; stopping joins this loop: a thread
                self.stop_after = None
                threading.Thread(target=self.stop, name="smtp-outage").start()
        if self._going_down or (self.hang_up_after is not None and carried >= self.hang_up_after):
            server.transport.close()  # no answer: the connection just ends, as when a server drops it
            return "421 4.4.2 closing"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        refusal = self.refuse.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw = bytes(envelope.original_content or envelope.content)
        message = BytesParser(policy=policy.default).parsebytes(raw)
        with self._lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, raw,  # type: ignore[arg-type]
                                          server.number, time.time()))

        return "250 Message accepted for delivery"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), made with the openssl command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next((p for p in ("/usr/sbin/dovecot", "/sbin/dovecot") if os.path.exists(p)),
                                           None)


CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = taskbot-test-{port}
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {root}/dovecot.log
mail_location = maildir:{root}/mail/%n
first_valid_uid = {uid}
first_valid_gid = {gid}
{rootless}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
  default_fields = uid={uid} gid={gid} home={root}/home/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


class Dovecot:
    """A private Dovecot IMAP server on 127.0.0.1 with one mailbox ``user``/``password``.

    Run as root, its mail belongs to ``nobody`` (Dovecot refuses uid 0 for mail) and its login
    processes run as Debian's ``dovenull``; run as anyone else, everything runs as that user.
    """

    def __init__(self, user: str = "tasks@example.com", password: str = "imap-secret") -> None:
        self.binary = dovecot_binary()
        if self.binary is None:
            raise FileNotFoundError("dovecot")
        self.user, self.password = user, password
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="taskbot-dovecot-"))  # short: it holds unix sockets
        self.config = self.root / "dovecot.conf"

    def start(self) -> Dovecot:
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            uid, gid, rootless = nobody.pw_uid, nobody.pw_gid, ""
        else:
            me = pwd.getpwuid(os.geteuid())
            uid, gid = me.pw_uid, me.pw_gid
            group = grp.getgrgid(me.pw_gid).gr_name
            rootless = (f"default_internal_user = {me.pw_name}\ndefault_internal_group = {group}\n"
                        f"default_login_user = {me.pw_name}")
        self.root.chmod(0o755)
        for sub in ("mail", "home"):
            (self.root / sub).mkdir()
            os.chown(self.root / sub, uid, gid)
        (self.root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        self.config.write_text(CONFIG.format(root=self.root, port=self.port, uid=uid, gid=gid, rootless=rootless))
        assert self.binary is not None
        with (self.root / "dovecot.out").open("wb") as out:  # not a pipe: the daemon keeps it open
            subprocess.run([self.binary, "-c", str(self.config)], check=True, stdout=out, stderr=subprocess.STDOUT,
                           timeout=30)
        try:
            wait_for_port(self.port)
        except TimeoutError:
            raise RuntimeError(f"dovecot did not start:\n{self.log()}") from None
        return self

    def log(self) -> str:
        return "".join(p.read_text() for p in (self.root / "dovecot.out", self.root / "dovecot.log") if p.exists())

    def stop(self) -> None:
        pidfile = self.root / "run" / "master.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)

    @contextlib.contextmanager
    def client(self) -> Iterator[IMAPClient]:
        with IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10) as client:
            client.login(self.user, self.password)
            client.select_folder("INBOX")
            yield client

    def deliver(self, message: EmailMessage | bytes) -> None:
        """Put a message into the INBOX, unseen (IMAP APPEND)."""
        raw = message if isinstance(message, bytes) else message.as_bytes(policy=policy.SMTP)
        with self.client() as client:
            client.append("INBOX", raw, flags=())

    def unseen(self) -> int:
        with self.client() as client:
            return len(client.search(["UNSEEN"]))

    def clear(self) -> None:
        with self.client() as client:
            uids = client.search(["ALL"])
            if uids:
                client.delete_messages(uids)
                client.expunge()
