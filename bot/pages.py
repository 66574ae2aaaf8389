"""HTML for the web chat and the dashboard: plain strings, every value escaped on the way in."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engine.engine import Engine
from engine.model import TaskDefinition

CSS = """
:root { color-scheme: light dark; --fg: #1d2330; --muted: #667085; --line: #d9dee7; --bg: #f6f7f9;
  --card: #fff; --me: #dbeafe; --bot: #fff; --sys: #fef3c7; --accent: #2563eb; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8ec; --muted: #9aa3b2; --line: #333a46; --bg: #14171c;
  --card: #1c2027; --me: #1e3a5f; --bot: #232832; --sys: #3d3418; --accent: #6ea0ff; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
main.chat { max-width: 42rem; }
h1 { font-size: 1.4rem; margin: .5rem 0 1rem; } h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
a { color: var(--accent); }
.muted { color: var(--muted); font-size: .9rem; }
.banner { background: var(--sys); border-radius: .5rem; padding: .5rem .75rem; margin: 0 0 1rem; }
table { width: 100%; border-collapse: collapse; background: var(--card); font-size: .92rem; }
th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
.scroll { overflow-x: auto; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 1rem; background: var(--line);
  font-size: .85rem; }
.completed { background: #bbf7d0; color: #14532d; } .failed, .cancelled, .timed_out { background: #fecaca;
  color: #7f1d1d; } .running, .awaiting_review { background: #bfdbfe; color: #1e3a8a; }
pre { background: var(--card); border: 1px solid var(--line); border-radius: .5rem; padding: .75rem;
  white-space: pre-wrap; word-break: break-word; }
ol.messages { list-style: none; padding: 0; margin: 0 0 1rem; display: flex; flex-direction: column;
  gap: .5rem; }
.msg { max-width: 85%; padding: .5rem .75rem; border-radius: .75rem; border: 1px solid var(--line);
  background: var(--bot); align-self: flex-start; }
.msg.user { background: var(--me); align-self: flex-end; }
.msg.system { background: var(--sys); align-self: center; font-size: .9rem; }
.msg.late { opacity: .7; }
.msg .text { white-space: pre-wrap; word-break: break-word; }
.msg time { display: block; font-size: .75rem; color: var(--muted); }
form.compose { display: flex; gap: .5rem; align-items: flex-end; position: sticky; bottom: 0;
  background: var(--bg); padding: .5rem 0; }
form.compose textarea { flex: 1; min-height: 3rem; font: inherit; padding: .5rem; border-radius: .5rem;
  border: 1px solid var(--line); background: var(--card); color: var(--fg); }
form.compose button { font: inherit; padding: .6rem 1rem; border: 0; border-radius: .5rem;
  background: var(--accent); color: #fff; cursor: pointer; }
"""

# The chat page's script: send with a client id (a retried POST is stored once), poll to refresh.
CHAT_JS = """
(() => {
  const form = document.getElementById("compose"), list = document.getElementById("messages");
  const box = form.elements.text, note = document.getElementById("note"), url = form.dataset.messages;
  const uid = () => crypto.randomUUID ? crypto.randomUUID()
    : Array.from(crypto.getRandomValues(new Uint8Array(16)), b => b.toString(16).padStart(2, "0")).join("");
  let pending = null, shown = "";
  const clock = at => at ? new Date(at).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}) : "";
  const render = messages => {
    const key = JSON.stringify(messages);
    if (key === shown) return;
    shown = key;
    list.replaceChildren(...messages.map(m => {
      const li = document.createElement("li"), text = document.createElement("div");
      const time = document.createElement("time");
      li.className = "msg " + m.role + (m.late ? " late" : "");
      text.className = "text"; text.textContent = m.text;
      time.dateTime = m.at || ""; time.textContent = clock(m.at);
      li.append(text, time);
      return li;
    }));
    if (list.lastElementChild) list.lastElementChild.scrollIntoView({block: "end"});
  };
  const refresh = async () => {
    try {
      const res = await fetch(url, {headers: {Accept: "application/json"}, cache: "no-store"});
      if (res.ok) render(await res.json());
    } catch (e) { /* offline for a moment: the next poll tries again */ }
  };
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const text = box.value.trim();
    if (!text) return;
    if (!pending || pending.text !== text) pending = {id: uid(), text};
    note.textContent = "Sending…";
    try {
      const res = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                    body: JSON.stringify(pending)});
      if (!res.ok) throw new Error("HTTP " + res.status);
      pending = null; box.value = ""; note.textContent = "";
      refresh();
    } catch (e) { note.textContent = "Not sent yet: check your connection and press Send again."; }
  });
  box.addEventListener("keydown", e => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  refresh();
  setInterval(refresh, 1500);
})();
"""

OPEN_SUBTASK = ("pending", "running")
RUNS_ON_DASHBOARD = 20
LINKS_PER_RUN = 12
NOTES_ON_DASHBOARD = 10


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def when(iso: str | None) -> str:
    """ISO times as people read them: ``2024-05-01 09:30Z``."""
    return esc(iso[:16].replace("T", " ") + "Z") if iso else "—"


def badge(status: str) -> str:
    return f'<span class="badge {esc(status)}">{esc(status.replace("_", " "))}</span>'


def layout(title: str, body: str, *, refresh: int | None = None, main_class: str = "") -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="no-referrer">{meta}<title>{esc(title)}</title>'
        f"<style>{CSS}</style></head>\n<body><main class=\"{esc(main_class)}\">\n{body}\n"
        "</main></body></html>\n"
    )


def message_item(m: Mapping[str, Any]) -> str:
    role = m.get("role", "assistant")
    late = " late" if m.get("late") else ""
    at = m.get("at") or ""
    return (f'<li class="msg {esc(role)}{late}"><div class="text">{esc(m.get("text"))}</div>'
            f'<time datetime="{esc(at)}">{when(at)}</time></li>')


def chat_page(token: str, title: str, name: str, status: str, messages: Iterable[Mapping[str, Any]],
              form_id: str) -> str:
    """The participant's page; the hidden ``id`` makes a re-submitted form count once."""
    path = f"/chat/{esc(token)}"
    banner = ""
    if status == "pending":
        banner = '<p class="banner">This task has not started for you yet.</p>'
    elif status not in OPEN_SUBTASK:
        banner = ('<p class="banner">This task has closed. Thank you! Anything you send now is kept '
                  "but not recorded as an answer.</p>")
    items = "\n".join(message_item(m) for m in messages)
    body = f"""<h1>{esc(title)}</h1>
<p class="muted">Hi {esc(name)}! This conversation is private: other participants do not see your answers.</p>
{banner}
<ol class="messages" id="messages" aria-live="polite">
{items}
</ol>
<form class="compose" id="compose" method="post" action="{path}" data-messages="{path}/messages">
  <input type="hidden" name="id" value="{esc(form_id)}">
  <textarea id="text" name="text" rows="2" required aria-label="Your answer"
            placeholder="Type your answer…"></textarea>
  <button type="submit">Send</button>
</form>
<p class="muted" id="note" role="status"></p>
<noscript><p class="muted"><a href="{path}">Refresh</a> to see the reply.</p></noscript>
<script>{CHAT_JS}</script>"""
    return layout(title, body, main_class="chat")


def message_page(title: str, text: str) -> str:
    """A one-paragraph page for 401/404: what happened and what to do."""
    return layout(title, f"<h1>{esc(title)}</h1>\n<p>{esc(text)}</p>")


def chat_links(links: Sequence[tuple[str, str]], more: int = 0) -> str:
    items = ", ".join(f'<a href="{esc(url)}">{esc(name)}</a>' for name, url in links)
    return items + (f' <span class="muted">and {more} more</span>' if more > 0 else "")


def definitions_table(definitions: Sequence[TaskDefinition]) -> str:
    if not definitions:
        return '<p class="muted">No tasks yet: apply one with <code>taskbot tasks apply FILE</code>.</p>'
    rows = "\n".join(
        f"<tr><td><code>{esc(d.id)}</code></td><td>{esc(d.name)}</td><td>{esc(d.output_type)}</td>"
        f"<td>{'yes' if d.active else 'no'}</td><td>{esc(d.owner or '—')}</td></tr>"
        for d in definitions)
    return ('<div class="scroll"><table><thead><tr><th>Id</th><th>Name</th><th>Output</th><th>Active</th>'
            f"<th>Owner</th></tr></thead><tbody>\n{rows}\n</tbody></table></div>")


def runs_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """Runs with their progress counts and web chat links (``progress``, ``links``, ``more_links``)."""
    if not runs:
        return '<p class="muted">No runs yet.</p>'
    rows = []
    for run in runs:
        p = run["progress"]
        counts = " · ".join(f"{p.get(k, 0)} {label}" for k, label in (
            ("answered", "answered"), ("open", "open"), ("chased", "chased"), ("timed_out", "timed out"),
            ("failed", "failed")))
        rows.append(
            f'<tr><td><a href="/runs/{esc(run["id"])}"><code>{esc(run["id"])}</code></a></td>'
            f"<td>{esc(run['task_id'])}</td><td>{badge(run['status'])}</td><td>{esc(counts)}</td>"
            f"<td>{when(run.get('created_at'))}</td>"
            f"<td>{chat_links(run['links'], run.get('more_links', 0))}</td></tr>")
    return ('<div class="scroll"><table><thead><tr><th>Run</th><th>Task</th><th>Status</th><th>Progress</th>'
            "<th>Created</th><th>Web chats</th></tr></thead><tbody>\n" + "\n".join(rows) +
            "\n</tbody></table></div>")


def notifications_list(notes: Sequence[Mapping[str, Any]]) -> str:
    if not notes:
        return '<p class="muted">Nothing yet.</p>'
    items = "\n".join(
        f'<li>{badge(str(n.get("kind", "")).removeprefix("task_"))} {esc(n.get("text"))} '
        f'<span class="muted">({esc(n.get("owner"))})</span></li>' for n in notes)
    return f"<ul>\n{items}\n</ul>"


def dashboard_page(definitions: Sequence[TaskDefinition], runs: Sequence[Mapping[str, Any]],
                   notes: Sequence[Mapping[str, Any]]) -> str:
    body = (f"<h1>taskbot</h1>\n<h2>Runs</h2>\n{runs_table(runs)}\n<h2>Notifications</h2>\n"
            f"{notifications_list(notes)}\n<h2>Tasks</h2>\n{definitions_table(definitions)}\n"
            '<p class="muted">Refreshes every 3 seconds · <a href="/docs">API</a></p>')
    return layout("taskbot", body, refresh=3)


def dashboard(engine: Engine) -> str:
    """The newest runs with progress and web chat links, the owners' latest notifications, the tasks."""
    runs = []
    for run in engine.list_runs(limit=RUNS_ON_DASHBOARD):
        subs = engine.store.subs_fields(engine.store.sub_ids(run["id"]))
        links = [(s.get("name") or s["participant_id"], engine.chat_url(s["token"]))
                 for s in subs if s.get("channel") == "web" and s.get("token")]
        runs.append({**run, "progress": engine.progress(run["id"]), "links": links[:LINKS_PER_RUN],
                     "more_links": len(links) - LINKS_PER_RUN})
    owners = dict.fromkeys(run["owner"] for run in runs if run.get("owner"))
    notes = [{**n, "owner": owner} for owner in owners
             for n in engine.store.notifications(owner, NOTES_ON_DASHBOARD)]
    notes.sort(key=lambda n: n.get("at", 0), reverse=True)
    return dashboard_page(engine.store.list_definitions(), runs, notes[:NOTES_ON_DASHBOARD])


def subtasks_table(subtasks: Sequence[Mapping[str, Any]]) -> str:
    if not subtasks:
        return '<p class="muted">No sub-tasks.</p>'
    rows = []
    for s in subtasks:
        data = json.dumps(s.get("data") or {}, ensure_ascii=False) if s.get("data") else "—"
        link = f'<a href="{esc(s["chat_url"])}">chat</a>' if s.get("chat_url") else ""
        reason = f'<br><span class="muted">{esc(s["reason"])}</span>' if s.get("reason") else ""
        rows.append(
            f"<tr><td>{esc(s.get('name'))}<br>"
            f"<span class=\"muted\">{esc(s.get('participant_id'))}</span></td>"
            f"<td>{esc(s.get('channel') or '—')}</td><td>{badge(s['status'])}{reason}</td>"
            f"<td>{esc(s.get('chases_sent', 0))}</td><td><code>{esc(data)}</code></td>"
            f"<td>{when(s.get('last_activity_at'))}</td><td>{link}</td></tr>")
    return ('<div class="scroll"><table><thead><tr><th>Participant</th><th>Channel</th><th>Status</th>'
            "<th>Chases</th><th>Answers</th><th>Last activity</th><th></th></tr></thead><tbody>\n"
            + "\n".join(rows) + "\n</tbody></table></div>")


def run_page(run: Mapping[str, Any]) -> str:
    """One run: its fields, sub-tasks and deliverables (Markdown source)."""
    facts = [("Task", esc(run["task_id"])), ("Status", badge(run["status"])),
             ("Owner", esc(run.get("owner"))), ("Trigger", esc((run.get("trigger") or {}).get("kind"))),
             ("Created", when(run.get("created_at"))), ("Completed", when(run.get("completed_at")))]
    if run.get("error_message"):
        facts.append(("Error", esc(run["error_message"])))
    dl = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    deliverables = "\n".join(
        f"<h3>{esc(d['title'])} <span class=\"muted\">({esc(d['output_type'])})</span></h3>"
        f"<pre>{esc(d['content'])}</pre>" for d in run.get("deliverables", []))
    deliverables = deliverables or '<p class="muted">None yet.</p>'
    body = (f'<p><a href="/">← dashboard</a></p>\n<h1>Run <code>{esc(run["id"])}</code></h1>\n'
            f"<table>{dl}</table>\n<h2>Sub-tasks</h2>\n{subtasks_table(run.get('subtasks', []))}\n"
            f"<h2>Deliverables</h2>\n{deliverables}")
    return layout(f"Run {run['id']}", body, refresh=3)
