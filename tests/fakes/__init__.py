"""Fakes of the outside world for tests: real servers on 127.0.0.1 that speak the providers' protocols."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(handle: Callable[[BaseHTTPRequestHandler], None], name: str, *,
          protocol_version: str = "HTTP/1.0") -> ThreadingHTTPServer:
    """An HTTP server on a free port whose GET and POST requests go to ``handle``, in a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            handle(self)

        def do_POST(self) -> None:  # noqa: N802
            handle(self)

        def log_message(self, *args: Any) -> None:
            pass

    Handler.protocol_version = protocol_version
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server


def shut(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
