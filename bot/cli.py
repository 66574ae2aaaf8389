"""The `taskbot` command line (SPEC §7). Exit codes: 0 success, 2 bad input, 1 other failure."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.table import Table

from engine.bounds import printable, surrogate_at
from engine.engine import Engine
from engine.errors import InvalidInput

from .cli_admin import healthcheck, schedules, tokens
from .cli_common import FINAL, dump, engine, err, fail, handles_errors, out, parse_data
from .settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="taskbot", prog_name="taskbot", message="%(prog)s %(version)s")
def cli() -> None:
    """taskbot: tasks that fan out to people on their channel, chase them and fan in.

    Configuration comes from the environment (TASKBOT_REDIS_URL, ...; see docs/configuration.md).
    """


# -- processes ------------------------------------------------------------------------
@cli.command()
@click.option("--port", type=int, default=None, help="HTTP port (default TASKBOT_HTTP_PORT or 8080).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".demo"),
              show_default=True, help="Where the private Redis keeps its append-only file, and the sign-in token.")
def demo(port: int | None, data_dir: Path) -> None:
    """Run everything on this machine: a private Redis, web app, worker, scheduler, and an example task
    with three contacts on the web channel.

    The Redis is the demo's own (in --data-dir) unless TASKBOT_REDIS_URL is set: a Redis already on
    6379 is never touched. Ctrl-C stops it all, cancelling the runs still open in the demo's Redis.
    """
    from .demo import run_demo

    run_demo(port=port, data_dir=data_dir)


@cli.command()
def serve() -> None:
    """Run the web app (REST API, dashboard, web chat, channel webhooks).

    While Redis is away it answers 503 (and /healthz says so), and it reconnects by itself. SIGTERM
    or Ctrl-C: finishes the requests in flight (25 s at most), then exits.
    """
    import uvicorn

    from .app import create_app

    settings = Settings()
    uvicorn.run(create_app(settings=settings), host=settings.http_host, port=settings.http_port, log_level="info",
                timeout_graceful_shutdown=25)


@cli.command()
@click.option("--no-scheduler", is_flag=True, help="Do not run the scheduler loop in this worker.")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@click.option("--fork", is_flag=True, help="Run each job in a forked child (slower, isolated).")
def worker(no_scheduler: bool, burst: bool, fork: bool) -> None:
    """Run a job worker (with the scheduler loop: reminders, cron schedules, lost-work sweep).

    A Redis restart does not end it: it waits until Redis answers, then goes on. SIGTERM or Ctrl-C:
    finishes the job in hand, then exits (a second one stops at once).
    """
    import logging

    from .logs import redact_handlers
    from .workers import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    redact_handlers(Settings())  # e.g. httpx logs each Bot API URL, which holds the Telegram bot token
    run_worker(with_scheduler=not no_scheduler, burst=burst, fork=fork)


# -- task definitions -------------------------------------------------------------------
@cli.group()
def tasks() -> None:
    """Task definitions: apply a YAML file, list, show, delete."""


@tasks.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@handles_errors
def tasks_apply(file: Path) -> None:
    """Validate FILE (YAML) and store the task; a wrong file is refused whole."""
    from engine.definitions import read_text

    definition = engine().apply_definition(read_text(file))
    click.echo(f"applied task {definition.id} ({definition.name})")


@tasks.command("list")
@handles_errors
def tasks_list() -> None:
    """List task definitions."""
    table = Table("id", "name", "output", "owner", "active")
    for d in engine().store.list_definitions():
        table.add_row(d.id, d.name, d.output_type, d.owner or "—", "yes" if d.active else "no")
    out.print(table)


@tasks.command("show")
@click.argument("task_id")
@handles_errors
def tasks_show(task_id: str) -> None:
    """Print a task definition as JSON."""
    dump(engine().store.get_definition(task_id).model_dump(exclude_none=True))


@tasks.command("delete")
@click.argument("task_id")
@handles_errors
def tasks_delete(task_id: str) -> None:
    """Delete a task definition (its runs are kept)."""
    engine().store.delete_definition(task_id)
    click.echo(f"deleted task {task_id}")


# -- assistants -------------------------------------------------------------------------
@cli.group()
def assistants() -> None:
    """Assistants: which model (scripted, or a litellm model string), prompt, tools, limits."""


@assistants.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@handles_errors
def assistants_apply(file: Path) -> None:
    """Validate FILE (YAML: id, model, api_base, api_key_env, system_prompt, tools, ...) and store it."""
    from engine.definitions import read_text

    assistant = engine().apply_assistant(read_text(file))
    click.echo(f"applied assistant {assistant.id} ({assistant.model})")


@assistants.command("list")
@handles_errors
def assistants_list() -> None:
    """List assistants (the built-in `default` uses TASKBOT_MODEL)."""
    table = Table("id", "model", "api base", "tools", "max concurrent")
    e = engine()
    for a in e.store.list_assistants(e.default_model):
        table.add_row(a.id, a.model, a.api_base or "—", ", ".join(a.tools) or "all",
                      str(a.max_concurrent_tasks or "—"))
    out.print(table)


# -- directory --------------------------------------------------------------------------
@cli.group()
def contacts() -> None:
    """The contact directory."""


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@handles_errors
def contacts_import(file: Path) -> None:
    """Import contacts from a CSV or JSON FILE; a wrong row refuses the whole file."""
    from engine.definitions import read_rows

    imported = engine().import_contacts(read_rows(file))
    click.echo(f"imported {len(imported)} contacts")


@contacts.command("list")
@handles_errors
def contacts_list() -> None:
    """List contacts."""
    table = Table("id", "name", "email", "preferred", "slack", "telegram", "time zone", "working hours", "away until")
    for c in engine().store.list_contacts():
        hours = "; ".join(c.working_hours) if isinstance(c.working_hours, list) else c.working_hours
        table.add_row(c.id, c.name, c.email or "—", c.preferred_channel or "—", c.slack_user_id or "—",
                      c.telegram_chat_id or "—", c.timezone, hours or "—", c.away_until or "—")
    out.print(table)


@contacts.command("link")
@click.argument("channel", type=click.Choice(["telegram"]), metavar="CHANNEL")
@click.argument("contact")
@handles_errors
def contacts_link(channel: str, contact: str) -> None:
    """Print a personal link that connects CONTACT (id or email) to their chat on CHANNEL.

    Telegram: a deep link https://t.me/<bot>?start=<token>; opening it links that chat. It works
    once, for 7 days. The link is the last line of the output.
    """
    from engine.ports import DeliveryFailed

    from .telegram import link_contact

    try:
        link = link_contact(engine(), contact)
    except DeliveryFailed as exc:
        fail(f"Telegram did not tell the bot's name (getMe): {exc.reason}", 1)
        return
    click.echo(f"Send this link to {contact}; it links the Telegram chat that opens it (once, within 7 days):")
    click.echo(link)


@cli.group()
def datasets() -> None:
    """Datasets that participant queries select from."""


@datasets.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@handles_errors
def datasets_import(name: str, file: Path) -> None:
    """Import rows into dataset NAME from a CSV or JSON FILE (replacing it)."""
    from engine.definitions import read_rows

    count = engine().import_dataset(name, read_rows(file))
    click.echo(f"imported {count} rows into dataset {name}")


# -- runs ---------------------------------------------------------------------------------
def progress_line(e: Engine, rid: str) -> tuple[str, str]:
    status = e.store.run_fields(rid)["status"]
    p = e.progress(rid)
    return status, (f"{status}: {p['answered']}/{p['total']} answered · {p['open']} open · {p['chased']} chased"
                    f" · {p['timed_out']} timed out · {p['failed']} failed"
                    + (f" · {p['excused']} excused" if p.get("excused") else ""))


@cli.command("run")
@click.argument("task_id")
@click.option("--data", "data", multiple=True, metavar="KEY=VALUE", help="Gathered data to start with.")
@click.option("--wait", is_flag=True, help="Show progress until the run ends (needs a worker running).")
@handles_errors
def run_cmd(task_id: str, data: tuple[str, ...], wait: bool) -> None:
    """Trigger a run of TASK_ID; prints the run id (the last line of the output)."""
    e = engine()
    rid = e.runs.trigger(task_id, parse_data(data), kind="manual", by="cli")
    if wait:
        status, line = progress_line(e, rid)
        with err.status(line) as spinner:
            while status not in FINAL:
                time.sleep(0.5)
                status, line = progress_line(e, rid)
                spinner.update(line)
        err.print(line, markup=False)
        if status == "failed":
            err.print(f"error: {e.store.run_fields(rid).get('error_message', '')}", markup=False)
    click.echo(rid)
    if wait and e.store.run_fields(rid)["status"] in ("failed", "cancelled"):
        sys.exit(1)


@cli.command()
@click.argument("run_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the run object (without RUN_ID: a list of them).")
@click.option("--limit", default=10, show_default=True, help="Without RUN_ID: how many recent runs.")
@handles_errors
def status(run_id: str | None, as_json: bool, limit: int) -> None:
    """Show a run's state and a table of its sub-tasks (with when each next hears from the bot); without
    RUN_ID, the recent runs and their progress."""
    if run_id is None:
        recent(engine(), as_json, limit)
        return
    view = engine().run_view(run_id, conversations=as_json)
    if as_json:
        dump(view)
        return
    out.print(f"run {view['id']} · task {view['task_id']} · {view['status']} · created {view['created_at']}",
              markup=False)
    if view["error_message"]:
        out.print(f"error: {view['error_message']}", markup=False)
    usage = view["usage"]
    if usage["model_calls"]:
        out.print(f"tokens: {usage['total_tokens']:,} ({usage['prompt_tokens']:,} prompt, "
                  f"{usage['completion_tokens']:,} completion) in {usage['model_calls']} model calls", markup=False)
    table = Table("participant", "channel", "status", "chases", "last activity", "next", "link / reason")
    tokens = any("usage" in s for s in view["subtasks"])
    if tokens:
        table.add_column("tokens", justify="right")
    for s in view["subtasks"]:
        upcoming = f"{s['next_action'].replace('_', ' ')} {s['next_at']}" if s.get("next_at") else "—"
        row = [s["name"], s["channel"] or "—", s["status"], str(s["chases_sent"]), s["last_activity_at"] or "—",
               upcoming, s.get("chat_url") or s["reason"] or ""]
        table.add_row(*row, *([f"{s['usage']['total_tokens']:,}" if "usage" in s else "—"] if tokens else []))
    out.print(table)


def recent(e: Engine, as_json: bool, limit: int) -> None:
    if limit < 1:
        raise InvalidInput("--limit", "must be at least 1")
    views = e.list_runs(None, limit)
    if as_json:
        dump(views)
        return
    if not views:
        out.print("No runs yet: start one with `taskbot run TASK_ID`.", markup=False)
        return
    table = Table("run", "task", "status", "answered", "open", "timed out", "created", "owner")
    for v in views:
        p = e.progress(v["id"])
        table.add_row(v["id"], v["task_id"], v["status"], f"{p['answered']}/{p['total']}", str(p["open"]),
                      str(p["timed_out"]), v["created_at"] or "—", v["owner"] or "—")
    out.print(table)


@cli.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run object with gathered data and deliverables.")
@click.option("--csv", "as_csv", is_flag=True,
              help="Print the answers as CSV: one row per participant (id, name, status, one column per field).")
@handles_errors
def results(run_id: str, as_json: bool, as_csv: bool) -> None:
    """Print a run's deliverable (Markdown; its latest version), the whole run object (every version) with --json,
    or the answers with --csv."""
    if as_json and as_csv:
        raise InvalidInput("--csv", "give --csv or --json, not both")
    if as_csv:
        click.echo(engine().results_csv(run_id), nl=False)
        return
    view = engine().run_view(run_id)
    if as_json:
        dump(view)
        return
    if not view["deliverables"]:
        click.echo(f"run {run_id} is {view['status']}; no deliverable yet")
        return
    latest = view["deliverables"][0]  # newest first
    if latest["version"] > 1:
        click.echo(f"version {latest['version']} ({latest['change'] or 'a new version'}); earlier versions: --json",
                   err=True)
    click.echo(latest["content"])


@cli.command()
@click.option("--task", "task_id", default=None, help="Only runs of this task.")
@click.option("--json", "as_json", is_flag=True, help="Print a list of run objects.")
@click.option("--limit", default=50, show_default=True)
@handles_errors
def runs(task_id: str | None, as_json: bool, limit: int) -> None:
    """List runs, newest first."""
    e = engine()
    if task_id:
        e.store.get_definition(task_id)
    views = e.list_runs(task_id, limit)
    if as_json:
        dump(views)
        return
    table = Table("run", "task", "status", "trigger", "created", "completed")
    for v in views:
        table.add_row(v["id"], v["task_id"], v["status"], v["trigger"]["kind"], v["created_at"] or "—",
                      v["completed_at"] or "—")
    out.print(table)


@cli.command()
@click.argument("run_id")
@handles_errors
def cancel(run_id: str) -> None:
    """Cancel a run: open sub-tasks become cancelled and pending reminders are dropped."""
    engine().runs.cancel(run_id)
    click.echo(f"cancelled run {run_id}")


@cli.command()
@click.argument("run_id")
@handles_errors
def approve(run_id: str) -> None:
    """Approve a run that awaits review, completing it."""
    engine().runs.approve(run_id)
    click.echo(f"approved run {run_id}")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
@handles_errors
def task(words: tuple[str, ...]) -> None:
    """The /task commands of Slack and Telegram, run as an admin: taskbot task run ID key=value ..."""
    import shlex

    from .commands import Actor, execute

    reply = execute(engine(), shlex.join(words), Actor(frozenset({"cli"}), admin=True), kind="manual")
    if not reply.ok:
        err.print(f"taskbot: error: {reply.text}", markup=False)
        sys.exit(2)
    click.echo(reply.text)


cli.add_command(schedules)
cli.add_command(tokens)
cli.add_command(healthcheck)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    for i, arg in enumerate(args, 1):
        # Python hands bytes that are not UTF-8 over as lone surrogates, which Redis cannot store.
        if surrogate_at(arg) is not None:
            fail(f"argument {i} ({printable(arg)}) is not valid UTF-8", 2)
    cli.main(args=args, prog_name="taskbot")
