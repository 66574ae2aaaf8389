"""docs/task-file.md's examples, applied as a user would apply them: what the page shows is what taskbot accepts,
refuses (with the message shown) and does.

Each fenced block says what it is after its language: ```yaml task, ```yaml assistant, ```yaml refused (its first
line is ``# refused: <the message>``), ```csv contacts (or ```json contacts), ```csv dataset NAME.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from markdown_it import MarkdownIt

from engine.definitions import parse_yaml, read_rows
from engine.errors import InvalidInput
from engine.filters import parse_filter
from tests.conftest import ROOT

DOC = ROOT / "docs" / "task-file.md"
ROLES = {"task", "assistant", "refused", "contacts", "dataset"}


@dataclass(frozen=True)
class Example:
    language: str
    role: str
    arg: str
    text: str
    line: int


def examples(role: str | None = None) -> list[Example]:
    found = []
    for token in MarkdownIt("commonmark").parse(DOC.read_text()):
        if token.type != "fence" or token.info.split()[:1] == ["sh"]:
            continue
        language, *rest = token.info.split() or [""]
        found.append(Example(language, rest[0] if rest else "", " ".join(rest[1:]), token.content,
                             token.map[0] + 1 if token.map else 0))
    return [e for e in found if role is None or e.role == role]


def setup_directory(engine) -> None:
    """The doc's contacts and datasets, imported as `taskbot contacts import` / `datasets import` read them."""
    for e in examples("contacts"):
        engine.import_contacts(read_rows(f"contacts.{e.language}", e.text))
    for e in examples("dataset"):
        engine.import_dataset(e.arg, read_rows(f"{e.arg}.csv", e.text))


def apply_all(engine) -> None:
    setup_directory(engine)
    for e in examples("assistant"):
        engine.apply_assistant(e.text)
    for e in examples("task"):
        engine.apply_definition(e.text)


def test_every_example_says_what_it_is():
    found = examples()
    assert len(found) >= 10
    for e in found:
        assert e.language in ("yaml", "csv", "json"), f"line {e.line}: {e.language!r} block"
        assert e.role in ROLES, f"line {e.line}: say what the block is (```{e.language} task, ...)"
        assert (e.role == "dataset") == bool(e.arg), f"line {e.line}: ```csv dataset NAME"


def test_the_task_files_apply_and_are_stored_as_written(engine):
    apply_all(engine)
    written = {d["id"]: d for d in (parse_yaml(e.text) for e in examples("task"))}
    stored = {d.id: d for d in engine.store.list_definitions()}
    assert stored.keys() == written.keys()
    for task_id, data in written.items():
        dumped = stored[task_id].model_dump(mode="json", exclude_none=True)
        for key in ("name", "output_type", "assistant", "owner", "allowed_tools", "review"):
            if key in data:
                assert dumped[key] == data[key], (task_id, key)
    assert {a.id for a in engine.store.list_assistants()} == {"default", "helper"}
    contacts = {c.id: c for c in engine.store.list_contacts()}
    assert contacts["bob@example.com"].slack_user_id == "U0123ABCD"
    assert contacts["carol@example.com"].telegram_chat_id == "123456789"
    assert contacts["bob@example.com"].working_hours == "Mon-Thu 08:00-16:00; Fri 08:00-12:00"
    assert contacts["carol@example.com"].away_until == "2027-01-10"
    assert contacts["erin@example.com"].working_hours == ["Mon-Thu 10:00-18:00", "Fri 10:00-14:00"]


@pytest.mark.parametrize("example", examples("refused"), ids=lambda e: f"line{e.line}")
def test_a_refused_file_is_refused_with_the_message_shown_and_nothing_is_stored(engine, example):
    first, _, _ = example.text.partition("\n")
    shown = first.removeprefix("# refused: ")
    assert shown != first, f"line {example.line}: start with '# refused: <message>'"
    setup_directory(engine)
    with pytest.raises(InvalidInput) as refused:
        engine.apply_definition(example.text)
    assert str(refused.value) == shown
    assert engine.store.list_definitions() == []


def filter_table() -> list[tuple[str, list[str]]]:
    """The `| filter | who matches |` rows of the Filters section."""
    section = DOC.read_text().split("## Filters", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(.+?)` \| (.+?) \|$", section, flags=re.MULTILINE)
    return [(expr, [name.strip() for name in names.split(",")]) for expr, names in rows]


def test_the_filter_table_says_who_matches_on_the_doc_dataset():
    [team] = examples("dataset")
    rows = read_rows("team.csv", team.text)
    table = filter_table()
    assert len(table) >= 5
    for expr, names in table:
        assert [row["name"] for row in rows if parse_filter(expr).matches(row)] == names, expr


def test_the_dataset_example_asks_the_people_its_filter_matches(engine, drain):
    apply_all(engine)
    definition = engine.store.get_definition("senior-check-in")
    [names] = [names for expr, names in filter_table() if expr == definition.template.filter]
    rid = engine.runs.trigger("senior-check-in")
    drain()
    subs = engine.run_view(rid, conversations=False)["subtasks"]
    assert [s["name"] for s in subs] == names
    # Alice prefers the web chat; Dan prefers email, which is off here: he is asked nowhere and says why
    assert [s["status"] for s in subs] == ["running", "failed"]
    assert subs[1]["reason"] == "no usable channel for dan@example.com (enabled: web)"


def test_the_workflow_example_asks_the_people_the_owner_names(engine, drain):
    apply_all(engine)
    engine.import_contacts([{"email": "lead@example.com", "name": "Lee", "preferred_channel": "web"},
                            {"email": "erin@example.com", "preferred_channel": "web"}])
    rid = engine.runs.trigger("code-review")
    drain()
    [owner] = engine.run_view(rid)["subtasks"]
    assert (owner["participant_id"], owner["kind"]) == ("lead@example.com", "conversation")
    assert "Who should review?" in owner["conversation"][0]["text"]
    token = Path(urlsplit(owner["chat_url"]).path).name
    engine.inbox.post_web(token, "alice@example.com, erin@example.com", "answer-1")
    drain()
    run = engine.run_view(rid)
    assert run["gathered"]["reviewer_list"] == ["alice@example.com", "erin@example.com"]
    reviews = [s for s in run["subtasks"] if s["kind"] == "task"]
    assert [s["participant_id"] for s in reviews] == ["alice@example.com", "erin@example.com"]
    assert all(s["conversation"][0]["text"].startswith("Approve or request changes?") for s in reviews)
