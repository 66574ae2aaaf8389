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
from dataclasses import dataclass
from dataclasses import field as dc_field
from importlib import resources
from typing import Any

import nh3
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from channels.markdown import HTML_TAGS, MD
from engine.access import Caller, visible_schedules, visible_tasks
from engine.engine import Engine
from engine.model import TaskState
from engine.timeline import run_timeline
from engine.views import next_step

# Pages load their script and styles from /static only (bot/static/), so the policy forbids inline
# script and style: a value that slipped past the templates' escaping still could not run.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HTML_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
#: The dashboard's pages send their origin with a form POST (the CSRF check reads it); "no-referrer" would make a
#: browser send ``Origin: null``. Their URLs hold no secret once the sign-in redirect has dropped ``?token=``.
DASHBOARD_REFERRER = "same-origin"
DASHBOARD_HEADERS = {**HTML_HEADERS, "Referrer-Policy": DASHBOARD_REFERRER}
OPEN_SUBTASK = ("pending", "running")
OPEN_RUN = ("pending", "running", "awaiting_review")
REFRESH_SECONDS = 3
#: What a rendered report may hold: nh3's safe tags less images (shown as links), and links off the dashboard only.
REPORT_TAGS = HTML_TAGS
LINK_SCHEMES = ("https://", "http://", "mailto:")
COMMON_ZONES = ("Europe/London", "Europe/Paris", "Europe/Berlin", "America/New_York", "America/Chicago",
                "America/Los_Angeles", "Asia/Tokyo", "Asia/Kolkata", "Australia/Sydney")
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


def switch_page(viewer: Viewer, other: str, back: str) -> str:
    """A ``?token=`` link of someone else's while ``viewer`` is signed in: switch, or stay (``back``)."""
    return render("switch.html", viewer=viewer, other=other, back=back)


def message_page(title: str, text: str) -> str:
    """A one-paragraph page for 401/404: what happened and what to do."""
    return render("message.html", title=title, text=text)



def signin_page(title: str, text: str, form: bool = True) -> str:
    """The 401 page: what to do, and a form to paste a token in (the admin's, or a person's)."""
    return render("signin.html", title=title, text=text, form=form, referrer=DASHBOARD_REFERRER)


# -- the dashboard ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Viewer:
    """Who looks at a dashboard page: what they may see, their name on the page, their forms' CSRF token."""

    caller: Caller
    label: str
    csrf: str


@dataclass(frozen=True)
class Notice:
    """A banner above the page: a refusal (``field`` named when one field was wrong) or a confirmation.

    ``form`` says which form the refusal is about (``run:<task id>``, ``schedule``) and ``values``
    what was typed in it, so the form shows again as it was sent.
    """

    text: str
    field: str | None = None
    error: bool = True
    form: str = ""
    values: Mapping[str, str] = dc_field(default_factory=dict)


def progress_text(progress: Mapping[str, int]) -> str:
    return " · ".join(f"{progress.get(key, 0)} {label}" for key, label in PROGRESS)


def dashboard(engine: Engine, viewer: Viewer, notice: Notice | None = None) -> str:
    """The newest runs the viewer may see, with progress, web chat links and their actions; their notifications;
    their tasks (run, activate, deactivate) and schedules (enable, disable, remove, add)."""
    caller = viewer.caller
    runs = []
    for run in engine.list_runs(limit=RUNS_ON_DASHBOARD, caller=caller):
        subs = engine.store.subs_fields(engine.store.sub_ids(run["id"]))
        links = [(s.get("name") or s["participant_id"], engine.chat_url(s["token"]))
                 for s in subs if s.get("channel") == "web" and s.get("token")]
        runs.append({**run, "progress_text": progress_text(engine.progress(run["id"])), "links": links[:LINKS_PER_RUN],
                     "more_links": len(links) - LINKS_PER_RUN, "next": upcoming(engine, subs)})
    everything = engine.store.list_definitions()
    definitions = visible_tasks(caller, everything)
    schedules = visible_schedules(caller, engine.schedules.views(), {d.id: d.owner for d in everything})
    if caller.admin:
        owners = dict.fromkeys(run["owner"] for run in runs if run.get("owner"))
        notes = [{**n, "owner": owner} for owner in owners
                 for n in engine.store.notifications(owner, NOTES_ON_DASHBOARD)]
    else:
        notes = engine.notifications_for(caller, NOTES_ON_DASHBOARD)
    notes.sort(key=lambda n: n.get("at", 0), reverse=True)
    live = notice is None and any(run["status"] in OPEN_RUN for run in runs)  # a refusal's page stays as is
    return render("dashboard.html", definitions=definitions, runs=runs, notes=notes[:NOTES_ON_DASHBOARD],
                  schedules=schedules, viewer=viewer, notice=notice, open_run=OPEN_RUN, referrer=DASHBOARD_REFERRER,
                  live=REFRESH_SECONDS if live else 0, zones=("UTC", *COMMON_ZONES))


NEXT_WORDS = {"opening": "opening for", "chase": "reminder to", "time_out": "time-out of"}


def upcoming(engine: Engine, subs: Sequence[Mapping[str, str]]) -> list[tuple[str, str]]:
    """When each silent participant next hears from the bot (or times out), soonest first: (when, what)."""
    steps = [(step, s.get("name") or s["participant_id"]) for s in subs if s
             for step in [next_step(engine.store, dict(s))] if step[0]]
    steps.sort(key=lambda item: str(item[0][0]))
    return [(str(at), f"{NEXT_WORDS.get(str(action), str(action))} {name}") for (at, action), name in steps]


def shown_cell(value: Any) -> str:
    """An answer as text in the answers table: lists joined with "; ", yes/no, objects as JSON, nothing as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(shown_cell(v) for v in value)
    if isinstance(value, dict):
        return as_json(value)
    return str(value)


def answer_fields(engine: Engine, rid: str) -> list[str]:
    """The fields the run asks, in the definition's order (the columns of the CSV too)."""
    keys: list[str] = []
    for state in engine.definition_of(rid).states():
        if isinstance(state, TaskState):
            keys += [f.key for f in state.fields if f.key not in keys]
    return keys


def _outside_link(tag: str, attribute: str, value: str) -> str | None:
    """Keep a link only when it leads off the dashboard (http, https, mailto)."""
    if attribute == "href" and not value.lower().startswith(LINK_SCHEMES):
        return None
    return value


def rendered(markdown: str) -> Markup:
    """A deliverable's Markdown as HTML, sanitised: raw HTML in it (an answer's, say) stays text (markdown-it-py
    with HTML off), and nh3 removes anything else that could run or load (scripts, event attributes,
    ``javascript:`` links). Images and links into taskbot itself go too: a participant's
    ``![x](/?token=theirs)`` in a report must not load a dashboard URL in the owner's browser (that would
    sign them in as someone else)."""
    return Markup(nh3.clean(MD.render(markdown), tags=REPORT_TAGS, attribute_filter=_outside_link))  # noqa: S704


def run_page(engine: Engine, run: Mapping[str, Any], viewer: Viewer, notice: Notice | None = None) -> str:
    """One run (the run object, without conversations): its actions, the answers as a table (CSV download),
    the deliverables rendered, its sub-tasks and its timeline."""
    subtasks = [s for s in run.get("subtasks") or [] if s.get("kind") != "conversation"]
    fields = answer_fields(engine, run["id"])
    answers = [(s, [shown_cell(s["data"].get(key)) for key in fields]) for s in subtasks]
    deliverables = [{**d, "html": rendered(d["content"]) if not d.get("file") else None}
                    for d in run.get("deliverables") or []]
    live = notice is None and run["status"] in OPEN_RUN  # a refusal's page (at the form's URL) stays as it is
    return render("run.html", run=run, viewer=viewer, notice=notice, fields=fields, answers=answers,
                  deliverables=deliverables, timeline=run_timeline(engine.store, run["id"]),
                  referrer=DASHBOARD_REFERRER, live=REFRESH_SECONDS if live else 0)
