"""The HTML pages (web chat, dashboard, run, message) rendered from Jinja2 templates in ``bot/templates/``.

Autoescaping is on for every template, so a value from a task file, a participant or a model
is text on the page, never markup; ``None`` renders as nothing. The styles and the chat script
are static files (``bot/static/``, served at ``/static``), so no page needs inline script.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from engine.engine import Engine
from engine.model import TaskDefinition
from engine.views import next_step

OPEN_SUBTASK = ("pending", "running")
RUNS_ON_DASHBOARD = 20
LINKS_PER_RUN = 12
NOTES_ON_DASHBOARD = 10
PROGRESS = (("answered", "answered"), ("open", "open"), ("chased", "chased"), ("timed_out", "timed out"),
            ("failed", "failed"), ("excused", "excused"))


def when(iso: str | None) -> str:
    """ISO times as people read them: ``2024-05-01 09:30Z``."""
    return iso[:16].replace("T", " ") + "Z" if iso else "—"


def as_json(value: Any) -> str:
    """Answers as JSON text (non-ASCII kept readable); the template escapes it like any text."""
    return json.dumps(value, ensure_ascii=False)


@functools.cache
def static_url(name: str) -> str:
    """``/static/<name>?v=<digest of its content>``: a new release's file is fetched anew, not taken from a cache."""
    digest = hashlib.sha256((resources.files("bot") / "static" / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


def none_as_empty(value: Any) -> Any:
    return "" if value is None else value


# StrictUndefined: a template naming a value nobody passed fails loudly instead of showing nothing.
env = Environment(loader=PackageLoader("bot", "templates"), autoescape=True, undefined=StrictUndefined,
                  finalize=none_as_empty, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
env.filters.update(when=when, json=as_json)
env.globals.update(static_url=static_url)


def render(template: str, **context: Any) -> str:
    return env.get_template(template).render(**context)


def chat_page(token: str, title: str, name: str, status: str, messages: Iterable[Mapping[str, Any]],
              form_id: str) -> str:
    """The participant's page; ``form_id`` goes in the form's hidden ``id`` (a re-submitted form counts once).

    While the sub-task is open and the last message asks a typed question, its options are buttons (a
    date: a date field) in a form of their own, which posts without JavaScript too."""
    shown = list(messages)
    last = shown[-1] if shown else {}
    question = last.get("question") if last.get("role") == "assistant" and status in OPEN_SUBTASK else None
    return render("chat.html", path=f"/chat/{token}", title=title, name=name, status=status,
                  open_statuses=OPEN_SUBTASK, messages=shown, form_id=form_id, question=question)


def message_page(title: str, text: str) -> str:
    """A one-paragraph page for 401/404: what happened and what to do."""
    return render("message.html", title=title, text=text)


def progress_text(progress: Mapping[str, int]) -> str:
    return " · ".join(f"{progress.get(key, 0)} {label}" for key, label in PROGRESS)


def dashboard_page(definitions: Sequence[TaskDefinition], runs: Sequence[Mapping[str, Any]],
                   notes: Sequence[Mapping[str, Any]]) -> str:
    """Runs carry ``progress``, ``links`` ((name, url) pairs) and ``more_links`` (how many are not shown)."""
    shown = [{**run, "progress_text": progress_text(run["progress"]), "more_links": run.get("more_links", 0)}
             for run in runs]
    return render("dashboard.html", definitions=definitions, runs=shown, notes=notes, refresh=3)


def dashboard(engine: Engine) -> str:
    """The newest runs with progress and web chat links, the owners' latest notifications, the tasks."""
    runs = []
    for run in engine.list_runs(limit=RUNS_ON_DASHBOARD):
        subs = engine.store.subs_fields(engine.store.sub_ids(run["id"]))
        links = [(s.get("name") or s["participant_id"], engine.chat_url(s["token"]))
                 for s in subs if s.get("channel") == "web" and s.get("token")]
        runs.append({**run, "progress": engine.progress(run["id"]), "links": links[:LINKS_PER_RUN],
                     "more_links": len(links) - LINKS_PER_RUN, "next": upcoming(engine, subs)})
    owners = dict.fromkeys(run["owner"] for run in runs if run.get("owner"))
    notes = [{**n, "owner": owner} for owner in owners
             for n in engine.store.notifications(owner, NOTES_ON_DASHBOARD)]
    notes.sort(key=lambda n: n.get("at", 0), reverse=True)
    return dashboard_page(engine.store.list_definitions(), runs, notes[:NOTES_ON_DASHBOARD])


NEXT_WORDS = {"opening": "opening for", "chase": "reminder to", "time_out": "time-out of"}


def upcoming(engine: Engine, subs: Sequence[Mapping[str, str]]) -> list[tuple[str, str]]:
    """When each silent participant next hears from the bot (or times out), soonest first: (when, what)."""
    steps = [(step, s.get("name") or s["participant_id"]) for s in subs if s
             for step in [next_step(engine.store, dict(s))] if step[0]]
    steps.sort(key=lambda item: str(item[0][0]))
    return [(str(at), f"{NEXT_WORDS.get(str(action), str(action))} {name}") for (at, action), name in steps]


def run_page(run: Mapping[str, Any]) -> str:
    """One run (the run object, without conversations): its fields, sub-tasks and deliverables."""
    return render("run.html", run=run, refresh=3)
