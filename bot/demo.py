"""`taskbot demo`: a private Redis, the web app, a worker and the scheduler, with an example task and
contacts on the web channel, all stopped by one Ctrl-C.

The demo never writes into a Redis it was not given: without ``TASKBOT_REDIS_URL`` in the
environment it runs its own ``redis-server`` (AOF on) with its data in ``.demo/redis``, even when
something answers on 6379. Its sign-in token is kept in ``.demo/api-token``, so the link it
printed last time still works. When it stops, it cancels the runs still open in its Redis (only
those it started, in a Redis it was given), so the next start shows them ended instead of
resuming their chases at once.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

from .cli_common import fail, without_password
from .redis_server import RedisServer, answers, free_port
from .settings import Settings

EXAMPLES = Path(__file__).parent / "examples"


def port_free(port: int) -> bool:
    """Whether a server could listen on the port now (as redis-server and uvicorn do, past TIME_WAIT)."""
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


def private_redis(data_dir: Path) -> RedisServer:
    """The demo's own redis-server, on the port it had last time when that is free (printed commands keep working)."""
    folder = data_dir / "redis"
    remembered = folder / "port"
    port = None
    if remembered.exists() and remembered.read_text().strip().isdigit():
        port = int(remembered.read_text().strip())
        port = port if port_free(port) else None
    server = RedisServer(folder, port=port).start()
    remembered.write_text(str(server.port))
    return server


def demo_token(data_dir: Path) -> str:
    """TASKBOT_API_TOKEN if set; else the token of ``.demo/api-token``, made once (mode 600) and kept."""
    given = os.environ.get("TASKBOT_API_TOKEN")
    if given:
        return given
    path = data_dir / "api-token"
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


def taskbot_command() -> str:
    """How to run `taskbot` from here, as the user can type it: on PATH, else the venv's script, else python -m."""
    script = Path(sys.executable).parent / "taskbot"
    if not script.exists():
        return f"{sys.executable} -m bot"
    on_path = shutil.which("taskbot")
    if on_path and Path(on_path).resolve() == script.resolve():
        return "taskbot"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def run_demo(port: int | None = None, data_dir: Path = Path(".demo")) -> None:
    given = os.environ.get("TASKBOT_REDIS_URL")
    if given and not answers(given):
        fail(f"TASKBOT_REDIS_URL ({without_password(given)}) does not answer; start that Redis, or unset "
             "TASKBOT_REDIS_URL and the demo runs its own", 1)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    redis_server = None
    if given:
        click.echo(f"using the Redis of TASKBOT_REDIS_URL ({without_password(given)})")
    else:
        redis_server = private_redis(data_dir)
        os.environ["TASKBOT_REDIS_URL"] = redis_server.url
        click.echo(f"started a private redis-server (AOF on) at {redis_server.url}, data in {data_dir}/redis")
    chosen = port or Settings().http_port
    if not port_free(chosen):
        chosen = free_port()
    os.environ["TASKBOT_HTTP_PORT"] = str(chosen)
    # the dashboard is closed without a token: the demo keeps one in .demo/ and prints its sign-in link
    os.environ["TASKBOT_API_TOKEN"] = demo_token(data_dir)
    os.environ.setdefault("TASKBOT_WORKING_HOURS", "always")  # a demo answers at any hour
    os.environ.setdefault("TASKBOT_PUBLIC_URL", f"http://127.0.0.1:{chosen}")
    settings = Settings()
    worker = subprocess.Popen([sys.executable, "-m", "bot", "worker"], env=os.environ.copy())  # noqa: S603
    started: list[str] = []
    try:
        started.append(seed(settings))
        _announce(settings, started[0], private=redis_server is not None)
        import uvicorn

        from .app import create_app

        uvicorn.run(create_app(settings=settings), host=settings.http_host, port=chosen, log_level="warning")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
        _end_open_runs(settings, None if redis_server else started)
        if redis_server:
            redis_server.stop()
        click.echo("demo stopped")


def _end_open_runs(settings: Settings, only: list[str] | None) -> None:
    """Cancel the demo's runs still open (every one in its private Redis, or ``only`` those), then run
    the jobs that queued, so nothing of this session is left to resume at the next start."""
    from rq import SimpleWorker

    from engine.errors import Conflict, NotFound

    from .bootstrap import build_engine

    try:
        engine = build_engine(settings)
        ended = 0
        for rid in only if only is not None else engine.store.run_ids(None, 10_000):
            try:
                engine.runs.cancel(rid)
                ended += 1
            except (Conflict, NotFound):
                continue
        queue = engine.jobs.queue  # type: ignore[attr-defined]
        SimpleWorker([queue], connection=engine.r).work(burst=True, logging_level="ERROR")
        if ended:
            click.echo(f"cancelled {ended} run(s) still open, so they do not resume at the next start")
    except Exception as exc:  # noqa: BLE001 - stopping must go on (Redis may be gone already)
        click.echo(f"could not end the open runs: {exc}")


def _announce(settings: Settings, rid: str, *, private: bool) -> None:
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
    # The private Redis has no password, so its URL can be printed; a given one is already in the user's shell.
    taskbot = (f"TASKBOT_REDIS_URL={settings.redis_url} " if private else "") + taskbot_command()
    click.echo("")
    click.echo(f"taskbot demo is running. Dashboard (this link signs you in once): {settings.base_url}/?token={token}")
    click.echo(f"Example run {rid} of task weekly-status asks three people on the web channel:")
    for s in subs:
        click.echo(f"  {s['name']:<8} {s['chat_url']}")
    click.echo("Whoever stays silent is chased after 30 s and 60 s and times out at 90 s; then the report is compiled.")
    click.echo("In a second terminal, from this folder:")
    click.echo(f"  {taskbot} status                      # the recent runs")
    click.echo(f"  {taskbot} run weekly-status --wait    # another run, with progress")
    click.echo(f"  {taskbot} results {rid} --csv   # the answers")
    click.echo("Ctrl-C stops everything the demo started.")
