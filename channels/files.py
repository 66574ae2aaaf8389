"""Files people send in Slack and Telegram, downloaded in a worker and kept like email attachments.

A message's files are listed when it is received (on the provider's ack path nothing is
downloaded) and fetched when a worker applies it: each goes to its own folder under
``TASKBOT_DATA_DIR/attachments/<channel>/``, at most ``TASKBOT_MAX_FILE`` bytes (a larger one is
named in the conversation but not kept). The entry the engine keeps is email's:
``{name, path, size, content_type}``, or ``{name, error}`` when the file could not be kept.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import httpx

from .email_parse import safe_name

log = logging.getLogger("taskbot.files")

#: The default largest file kept (bytes): TASKBOT_MAX_FILE.
MAX_FILE = 20 * 1024 * 1024
TIMEOUT = 30.0


class TooLarge(Exception):  # noqa: N818 - a fact about the file
    pass


def folder_for(root: Path, channel: str, ident: str) -> Path:
    """One folder per message: the digest of its provider id, so a re-run writes the same files."""
    return root / channel / hashlib.sha256(ident.encode()).hexdigest()[:24]


def attached(names: list[str]) -> str:
    """The text of a message that is files only (as email writes it)."""
    return "[attached: " + ", ".join(names) + "]"


def download(url: str, folder: Path, name: str, content_type: str | None, used: set[str], *, limit: int,
             headers: dict[str, str] | None = None, client: httpx.Client | None = None) -> dict[str, Any]:
    """Fetch ``url`` into ``folder`` (streamed, at most ``limit`` bytes): the attachment entry.

    Never raises: a refusal, a network fault or a file over ``limit`` is an entry with ``error``,
    so the person's message is kept whatever became of the file.
    """
    filename = safe_name(name, content_type or "application/octet-stream", len(used) + 1, used)
    path = folder / filename
    own = client is None
    http = client or httpx.Client(timeout=TIMEOUT, follow_redirects=True)
    try:
        with http.stream("GET", url, headers=headers or {}) as answer:
            if answer.status_code != 200:
                return {"name": filename, "error": f"download refused (HTTP {answer.status_code})"}
            got = answer.headers.get("Content-Type", "").split(";")[0].strip()
            if got == "text/html" and not (content_type or "").startswith("text/html"):
                # Slack answers a file request it does not authorise with its sign-in page
                return {"name": filename, "error": "download refused (a sign-in page came back: files:read scope?)"}
            length = answer.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise TooLarge
            folder.mkdir(parents=True, exist_ok=True)
            size = 0
            with path.open("wb") as out:
                for chunk in answer.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge
                    out.write(chunk)
    except TooLarge:
        path.unlink(missing_ok=True)
        return {"name": filename, "error": f"larger than {limit:,} bytes: not kept"}
    except (httpx.HTTPError, OSError) as exc:
        path.unlink(missing_ok=True)
        log.warning("file %s not downloaded: %s", filename, type(exc).__name__)
        return {"name": filename, "error": f"download failed ({type(exc).__name__})"}
    finally:
        if own:
            http.close()
    return {"name": filename, "path": str(path.resolve()), "size": size,
            "content_type": content_type or got or "application/octet-stream"}
