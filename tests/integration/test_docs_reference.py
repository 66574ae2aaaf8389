"""The reference in docs/ against the code it describes: every setting, every route, the run object's keys, and
links that lead somewhere. A setting or a route added without its line in the docs fails here, naming it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from markdown_it import MarkdownIt
from starlette.routing import Mount

from bot.app import create_app
from bot.settings import Settings
from tests.conftest import ROOT, people

DOCS = ROOT / "docs"
CODE = [ROOT / "worker.py", *[p for d in ("bot", "channels", "engine") for p in (ROOT / d).rglob("*.py")]]
# Written on another branch of issue 11 (running, supervising, backups, upgrading); drop it here once merged.


def table_rows(doc: Path) -> dict[str, list[str]]:
    """Each table row whose first cell starts with a `NAME`, by every name in that cell."""
    rows: dict[str, list[str]] = {}
    for line in doc.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| `") else []
        for name in re.findall(r"`([^`]+)`", cells[0]) if cells else []:
            rows[name] = cells
    return rows


def read_in_code() -> set[str]:
    """Environment variables the code reads itself (besides Settings): os.environ.get / [] / setdefault."""
    pattern = re.compile(r"os\.environ(?:\.get|\.setdefault)?\(?\[?\"([A-Z][A-Z0-9_]+)\"")
    return {name for path in CODE for name in pattern.findall(path.read_text())}


def test_every_setting_is_in_the_configuration_doc_with_its_default():
    rows = table_rows(DOCS / "configuration.md")
    missing = []
    for field in Settings.model_fields.values():
        name = str(field.alias)
        if name not in rows:
            missing.append(name)
            continue
        default = rows[name][1]
        if field.default in (None, ""):
            assert default.startswith("—"), f"{name}: default {default!r}, but it has none"
        else:
            value = str(field.default).lower()
            shown = re.match(r"`([^`]*)`", default)
            assert shown, f"{name}: default {default!r}, but it has {value}"
            assert shown[1].lower() in (value, value.removesuffix(".0")), f"{name}: default {default!r}"
    missing += sorted(read_in_code() - rows.keys())
    assert missing == [], f"not in docs/configuration.md: {missing}"


def routes(engine) -> set[str]:
    """The app's own routes: those added to it (Slack, Telegram, /static) and those of bot.app's routers."""
    from bot import app as module

    app = create_app(engine, Settings())
    routers = [r for r in vars(module).values() if isinstance(r, APIRouter)]
    found = set()
    for route in [*app.routes, *(r for router in routers for r in router.routes)]:
        if isinstance(route, APIRoute):
            found |= {f"{method} {route.path}" for method in route.methods}
        elif isinstance(route, Mount):
            found.add(f"GET {route.path}/{{path}}")
    return found


def test_every_route_is_in_the_http_api_doc(engine):
    served = routes(engine)
    documented = {name for name in table_rows(DOCS / "http-api.md")
                  if re.match(r"^(GET|POST|PUT|PATCH|DELETE) /", name)}
    assert sorted(served - documented) == []
    assert sorted(documented - served) == []  # nor a route that is not there


def keys(value: dict[str, Any], *optional: str) -> set[str]:
    return set(value) - set(optional)


def test_the_run_object_in_the_doc_has_the_keys_a_real_one_has(engine, drain):
    people(engine, "alice@example.com")
    engine.apply_definition({"id": "weekly-status", "name": "Weekly status", "owner": "lead@example.com",
                             "template": {"participants": ["alice@example.com"],
                                          "fields": [{"key": "shipped", "prompt": "What did you ship?"}]}})
    rid = engine.runs.trigger("weekly-status", {"week": "23"}, kind="api")
    drain()
    token = engine.run_view(rid)["subtasks"][0]["chat_url"].rsplit("/", 1)[-1]
    engine.inbox.post_web(token, "the new parser", "m1")
    drain()
    real = engine.run_view(rid)
    assert real["status"] == "completed"
    [block] = [t.content for t in MarkdownIt("commonmark").parse((DOCS / "http-api.md").read_text())
               if t.type == "fence" and t.info == "json run-object"]
    shown = json.loads(block)
    assert keys(shown) == keys(real)
    assert keys(shown["subtasks"][0]) == keys(real["subtasks"][0], "usage")
    assert keys(shown["deliverables"][0]) == keys(real["deliverables"][0], "file")
    assert keys(shown["subtasks"][0]["conversation"][0]) == keys(real["subtasks"][0]["conversation"][0])
    assert keys(shown["usage"]) == keys(real["usage"])


def anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", doc.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_in_the_readme_and_docs_lead_somewhere():
    broken = []
    for doc in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists() or (anchor and anchor not in anchors(file)):
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []


def test_nothing_in_the_repository_points_outside_it():
    # spelled in parts, so that a grep for such references finds none here either
    outside = re.compile(r"\.\./" "shared|/work/" "shared")
    found = [str(p.relative_to(ROOT)) for p in [ROOT / "README.md", *DOCS.glob("*.md"), *CODE]
             if outside.search(p.read_text())]
    assert found == []
