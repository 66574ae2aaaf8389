"""`taskbot schedules` and `taskbot tokens`: what an operator keeps running and who may get in (SPEC §12)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.table import Table

from .cli_common import dump, engine, err, handles_errors, out, parse_data


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if ts else "—"


# -- schedules ---------------------------------------------------------------------------
@click.group()
def schedules() -> None:
    """Cron schedules: list them, add, delete, enable and disable one.

    `taskbot task schedule ID "CRON" [TZ]` (and /task in Slack and Telegram) adds one too.
    """


@schedules.command("list")
@click.option("--task", "task_id", default=None, help="Only the schedules of this task.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a list of schedules: id, task_id, cron, timezone, data, enabled, next_run_at (UTC), "
                   "next_run_local (the schedule's zone).")
@handles_errors
def schedules_list(task_id: str | None, as_json: bool) -> None:
    """List schedules with their next run, in the schedule's time zone and in UTC."""
    e = engine()
    if task_id:
        e.store.get_definition(task_id)
    views = e.schedules.views(task_id)
    if as_json:
        dump(views)
        return
    if not views:
        out.print("No schedules: add one with `taskbot schedules add TASK_ID \"CRON\" [--timezone TZ]`.",
                  markup=False)
        return
    table = Table("id", "task", "cron", "timezone", "enabled", "next run (local)", "next run (UTC)", "data")
    for s in views:
        data = " ".join(f"{k}={v}" for k, v in s["data"].items())
        table.add_row(s["id"], s["task_id"], s["cron"], s["timezone"], "yes" if s["enabled"] else "no",
                      s["next_run_local"] or "—", s["next_run_at"] or "—", data or "—")
    out.print(table)


@schedules.command("add")
@click.argument("task_id")
@click.argument("cron")
@click.option("--timezone", "tz", default="UTC", show_default=True, help="The IANA zone the cron is read in.")
@click.option("--data", "data", multiple=True, metavar="KEY=VALUE", help="Gathered data each run starts with.")
@handles_errors
def schedules_add(task_id: str, cron: str, tz: str, data: tuple[str, ...]) -> None:
    """Run TASK_ID on CRON, five fields such as "0 9 * * MON"; prints the schedule id (the last line)."""
    s = engine().schedules.create(task_id, cron, tz, parse_data(data))
    err.print(f"scheduled {task_id} at \"{cron}\" ({tz}); next run {when(s['next_run_at'])}", markup=False)
    click.echo(s["id"])


@schedules.command("delete")
@click.argument("schedule_id")
@handles_errors
def schedules_delete(schedule_id: str) -> None:
    """Delete a schedule (runs it started are kept)."""
    engine().schedules.delete(schedule_id)
    click.echo(f"deleted schedule {schedule_id}")


@schedules.command("disable")
@click.argument("schedule_id")
@handles_errors
def schedules_disable(schedule_id: str) -> None:
    """Stop a schedule starting runs; it stays listed, with its cron and data, until enabled or deleted."""
    engine().schedules.set_enabled(schedule_id, False)
    click.echo(f"disabled schedule {schedule_id}")


@schedules.command("enable")
@click.argument("schedule_id")
@handles_errors
def schedules_enable(schedule_id: str) -> None:
    """Let a disabled schedule start runs again, from its next slot (missed slots are not made up)."""
    s = engine().schedules.set_enabled(schedule_id, True)
    click.echo(f"enabled schedule {schedule_id}; next run {when(s['next_run_at'])}")


# -- people's tokens ---------------------------------------------------------------------
@click.group()
def tokens() -> None:
    """People's own tokens for the HTTP API and dashboard, stored hashed.

    A person's token stands for them: it is for the tasks they own, their runs and their notifications
    (SPEC §12). TASKBOT_API_TOKEN stays the admin's.
    """


@tokens.command("create")
@click.argument("contact_id")
@handles_errors
def tokens_create(contact_id: str) -> None:
    """Make a token for CONTACT_ID (id or email) and print it, once: only its hash is kept.

    The token is the last line of the output; its prefix (tb_...) names it in `tokens list` and `tokens revoke`.
    """
    token, record = engine().tokens.create(contact_id)
    err.print(f"token {record['prefix']} for {record['contact_id']}; it is shown only now, so keep it safe:",
              markup=False)
    click.echo(token)


@tokens.command("list")
@click.option("--contact", "contact_id", default=None, help="Only this contact's tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print a list of {prefix, contact_id, created_at, last_used_at}.")
@handles_errors
def tokens_list(contact_id: str | None, as_json: bool) -> None:
    """List tokens: prefix, contact, created, last used (never the token itself)."""
    records = engine().tokens.list(contact_id)
    if as_json:
        dump(records)
        return
    if not records:
        out.print("No tokens: make one with `taskbot tokens create CONTACT_ID`.", markup=False)
        return
    table = Table("prefix", "contact", "created", "last used")
    for t in records:
        table.add_row(t["prefix"], t["contact_id"], when(t["created_at"]), when(t["last_used_at"]))
    out.print(table)


@tokens.command("revoke")
@click.argument("token_prefix")
@handles_errors
def tokens_revoke(token_prefix: str) -> None:
    """Revoke a token by its prefix (tb_1a2b3c4d): it opens nothing from now on."""
    record = engine().tokens.revoke(token_prefix)
    click.echo(f"revoked token {record['prefix']} of {record['contact_id']}")


# -- health ------------------------------------------------------------------------------
@click.command()
@click.option("--http", "http", is_flag=True, help="Also ask this host's web app: GET /healthz on TASKBOT_HTTP_PORT.")
@click.option("--worker", is_flag=True, help="Also require a live taskbot worker process on this host.")
def healthcheck(http: bool, worker: bool) -> None:
    """Exit 0 when Redis answers (and this host's web app, or worker, is alive); 1, saying why, otherwise.

    For container and supervisor health checks: compose.yaml runs `taskbot healthcheck --http` in the
    web container and `taskbot healthcheck --worker` in each worker's.
    """
    import socket

    import httpx
    import redis
    from rq import Worker

    from .bootstrap import connect
    from .cli_common import fail, without_password
    from .queue import QUEUE_NAME
    from .settings import Settings

    settings = Settings()
    said = [f"Redis at {without_password(settings.redis_url)} answers"]
    r = connect(settings.redis_url)
    try:
        r.ping()
        if worker:
            here = socket.gethostname()
            alive = [w.pid for w in Worker.all(connection=r) if w.hostname == here and QUEUE_NAME in w.queue_names()
                     and w.pid and _alive(w.pid)]
            if not alive:
                fail(f"no taskbot worker is running on {here}", 1)
            said.append(f"worker pid {', '.join(map(str, alive))} is alive")
    except redis.RedisError as exc:
        fail(f"Redis at {without_password(settings.redis_url)} does not answer: {exc}", 1)
    finally:
        r.close()
    if http:
        host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::", "") else settings.http_host  # noqa: S104
        url = f"http://{host}:{settings.http_port}/healthz"
        try:
            status = httpx.get(url, timeout=5).status_code
        except httpx.HTTPError as exc:
            fail(f"the web app at {url} does not answer: {exc}", 1)
        if status != 200:
            fail(f"the web app at {url} answers {status}", 1)
        said.append("the web app answers")
    click.echo("ok: " + "; ".join(said))


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
