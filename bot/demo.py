"""`taskbot demo`: Redis (private when none answers), the web app, a worker and the scheduler,
with an example task and contacts on the web channel, all stopped by one Ctrl-C."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import click

from .redis_server import RedisServer, answers, free_port
from .settings import Settings

EXAMPLES = Path(__file__).parent / "examples"


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def seed(settings: Settings) -> str:
    """Load the example contacts and task, and start one run so chat links exist. Returns its id."""
    from engine.definitions import read_rows

    from .bootstrap import build_engine

    engine = build_engine(settings)
    engine.import_contacts(read_rows(EXAMPLES / "contacts.csv"))
    engine.apply_definition((EXAMPLES / "weekly-status.yaml").read_text())
    return engine.runs.trigger("weekly-status", kind="manual", by="demo")


def run_demo(port: int | None = None, data_dir: Path = Path(".demo")) -> None:
    settings = Settings()
    redis_server = None
    if not answers(settings.redis_url):
        redis_server = RedisServer(data_dir.resolve() / "redis").start()
        os.environ["TASKBOT_REDIS_URL"] = redis_server.url
        click.echo(f"started a private redis-server (AOF on) at {redis_server.url}, data in {data_dir}/redis")
    else:
        click.echo(f"using the Redis at {settings.redis_url}")
    chosen = port or settings.http_port
    if not port_free(chosen):
        chosen = free_port()
    os.environ["TASKBOT_HTTP_PORT"] = str(chosen)
    if not os.environ.get("TASKBOT_API_TOKEN"):  # the dashboard is closed without one: make one, print its link
        os.environ["TASKBOT_API_TOKEN"] = secrets.token_urlsafe(16)
    os.environ.setdefault("TASKBOT_PUBLIC_URL", f"http://127.0.0.1:{chosen}")
    settings = Settings()
    worker = subprocess.Popen([sys.executable, "-m", "bot", "worker"], env=os.environ.copy())  # noqa: S603
    try:
        rid = seed(settings)
        _announce(settings, rid)
        import uvicorn

        from .app import create_app

        uvicorn.run(create_app(settings=settings), host=settings.http_host, port=chosen, log_level="warning")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
        if redis_server:
            redis_server.stop()
        click.echo("demo stopped")


def _announce(settings: Settings, rid: str) -> None:
    from .bootstrap import build_engine

    engine = build_engine(settings)
    deadline = time.monotonic() + 15
    subs: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        subs = [s for s in engine.run_view(rid, conversations=False)["subtasks"] if s.get("chat_url")]
        if len(subs) == 3:
            break
        time.sleep(0.2)
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    click.echo("")
    click.echo(f"taskbot demo is running. Dashboard (this link signs you in once): {settings.base_url}/?token={token}")
    click.echo(f"Example run {rid} of task weekly-status asks three people on the web channel:")
    for s in subs:
        click.echo(f"  {s['name']:<8} {s['chat_url']}")
    click.echo("Trigger another run (in a second terminal):")
    click.echo(f"  TASKBOT_REDIS_URL={settings.redis_url} taskbot run weekly-status --wait")
    click.echo("Ctrl-C stops everything the demo started.")
