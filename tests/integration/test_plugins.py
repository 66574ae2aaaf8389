"""Plugins (``TASKBOT_PLUGINS``): a module of the user's, on the Python path, imported by every taskbot process
before its engine is built. One adds a tool and an output type: the CLI validates a task with that type, and
a real worker process offers the tool to the model and runs it. Another adds a channel: a real worker sends
on it, and its own route in the web app (real HTTP) receives the answers. (This process loads them too, as
every process must that reads such a task or contact; its registries are put back afterwards.)"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import httpx
import pytest

import channels
from bot import app as webapp
from bot.app import create_app
from bot.settings import Settings
from engine import model, outputs, tools
from engine.errors import InvalidInput
from tests.conftest import answer, served, turn_on
from tests.fakes.openai_api import call, text
from tests.integration.test_llm import assistant, fake, people, subtask, weekly  # noqa: F401 (fake: a fixture)

PLUGIN = '''"""The team's own taskbot plugin: a tool and an output type."""
from engine import outputs, tools


def lookup_team(ctx, args):
    return f"team {args['team']}: alice, bob"


tools.register(tools.Tool(
    "lookup_team", "Who is on a team.",
    {"type": "object", "properties": {"team": {"type": "string"}}, "required": ["team"]}, lookup_team))
outputs.register(outputs.OutputType("standup_digest", "Write a digest: one line per person, nothing else."))
'''


@pytest.fixture
def registries(monkeypatch) -> Iterator[None]:
    """This process's registries as they were, after the test: a plugin's registrations are for its processes."""
    monkeypatch.setattr(tools, "REGISTRY", dict(tools.REGISTRY))
    monkeypatch.setattr(outputs, "REGISTRY", dict(outputs.REGISTRY))
    monkeypatch.setattr(model, "OUTPUT_TYPES", set(model.OUTPUT_TYPES))
    monkeypatch.setattr(channels, "REGISTRY", dict(channels.REGISTRY))
    monkeypatch.setattr(webapp, "PLUGIN_ROUTERS", list(webapp.PLUGIN_ROUTERS))
    extra = list(model.EXTRA_CHANNELS)
    yield
    model.EXTRA_CHANNELS[:] = extra  # the same list object: selection reads it where it was imported
    for name in ("team_tools", "pager_channel"):
        sys.modules.pop(name, None)


def test_a_plugin_adds_a_tool_and_an_output_type_in_every_process(engine, fake, workers, wait_for,  # noqa: F811
                                                                   taskbot_cli, env, tmp_path, monkeypatch,
                                                                   registries):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "team_tools.py").write_text(PLUGIN)
    task = tmp_path / "weekly.yaml"
    task.write_text(weekly(output="standup_digest"))
    people(engine, "alice@example.com", "lead@example.com")
    assistant(engine, fake, tools=["record_data", "lookup_team"])
    refused = taskbot_cli("tasks", "apply", str(task))  # without the plugin the type is unknown
    assert refused.returncode == 2
    assert "output_type" in refused.stderr
    assert "standup_digest" in refused.stderr

    monkeypatch.syspath_prepend(str(folder))
    turn_on(env, monkeypatch, {"PYTHONPATH": str(folder), "TASKBOT_PLUGINS": "team_tools"})
    assert taskbot_cli("tasks", "apply", str(task), check=True).stdout.startswith("applied task weekly-status")
    from bot.bootstrap import engine as process_engine

    engine = process_engine()  # built with the plugin loaded, as every process's is
    fake.script(call("lookup_team", team="core"), text("Your team is alice and bob. What did you ship this week?"))
    rid = engine.runs.trigger("weekly-status")
    workers(1)
    wait_for(lambda: [s["status"] for s in engine.run_view(rid)["subtasks"]] == ["running"], timeout=30)
    answer(engine, subtask(engine, rid), "Who is on my team?", "m1")
    wait_for(lambda: len(fake.chats()) == 2, timeout=30)

    first, second = fake.chats()
    assert first.tool_names == ["record_data", "lookup_team"]  # offered by the worker, from the plugin
    assert second.last["content"] == "team core: alice, bob"  # and run there
    assert engine.definition_of(rid).output_type == "standup_digest"


def test_a_plugin_that_is_not_there_stops_the_process_naming_the_setting(taskbot_cli, env):
    env.update(TASKBOT_PLUGINS="team_tools_missing")
    result = taskbot_cli("tasks", "list")
    assert result.returncode != 0
    assert "TASKBOT_PLUGINS" in result.stderr
    assert "no module 'team_tools_missing' on the Python path" in result.stderr


PAGER = '''"""A pager service as a taskbot channel: sends go to its (here: a file's) outbox, answers come to a route."""
import json
import os
from pathlib import Path

from fastapi import APIRouter, Request

import channels
from bot.app import add_router
from engine.ports import Delivery, Inbound

OUTBOX = Path(os.environ["PAGER_OUTBOX"])


class Pager:
    name = "pager"

    def resolve(self, contact):
        return contact.addresses.get("pager")

    def send(self, message):
        with OUTBOX.open("a") as out:
            out.write(json.dumps({"to": message.address.id, "text": message.text, "key": message.key}) + "\\n")
        return Delivery(ref=None)


channels.register("pager", lambda settings: Pager())
router = APIRouter()


@router.post("/pager/inbound")
def inbound(body: dict, request: Request):  # a real one checks the provider's signature first
    engine = request.app.state.engine
    _, new = engine.inbox.receive(Inbound("pager", body["from"], body["text"], body["id"]))
    return {"stored": new}


add_router(router)
'''
TASK = {"id": "standup", "name": "Standup", "owner": "lead@example.com", "template": {
    "fields": [{"key": "shipped", "prompt": "What did you ship?"}, {"key": "blockers", "prompt": "Blockers?"}],
    "participants": ["pat@example.com"], "chase": {"interval": "1h"}}}


def test_a_plugin_adds_a_channel_that_workers_send_on_and_its_route_receives(engine, workers, wait_for, env,
                                                                             tmp_path, monkeypatch, registries):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "pager_channel.py").write_text(PAGER)
    outbox = tmp_path / "pager.jsonl"
    contact = {"email": "pat@example.com", "preferred_channel": "pager", "addresses": "pager=P-77"}  # as CSV has it
    with pytest.raises(InvalidInput, match="unknown channel 'pager'"):
        engine.import_contacts([contact])  # no such channel without the plugin

    monkeypatch.syspath_prepend(str(folder))
    turn_on(env, monkeypatch, {"PYTHONPATH": str(folder), "TASKBOT_PLUGINS": "pager_channel",
                               "PAGER_OUTBOX": str(outbox)})
    from bot.bootstrap import engine as process_engine

    engine = process_engine()
    engine.import_contacts([contact])
    assert engine.store.find_contacts(["pat@example.com"])["pat@example.com"].addresses == {"pager": "P-77"}
    engine.apply_definition(TASK)
    rid = engine.runs.trigger("standup")
    workers(1)
    sent = lambda: [json.loads(line) for line in outbox.read_text().splitlines()] if outbox.exists() else []  # noqa: E731
    wait_for(lambda: len(sent()) == 1, timeout=30)
    assert sent()[0]["to"] == "P-77"
    assert "What did you ship?" in sent()[0]["text"]
    [sub] = engine.run_view(rid)["subtasks"]
    assert (sub["status"], sub["channel"]) == ("running", "pager")

    with served(create_app(engine, Settings())) as base:
        for i, words in enumerate(("The pager plugin", "None")):
            res = httpx.post(f"{base}/pager/inbound", json={"from": "P-77", "text": words, "id": f"pg-{i}"})
            assert res.json() == {"stored": True}
            wait_for(lambda i=i: len(sent()) == 2 + i, timeout=30)  # the next question, then the thanks
        again = httpx.post(f"{base}/pager/inbound", json={"from": "P-77", "text": "None", "id": "pg-1"})
        assert again.json() == {"stored": False}  # the provider's retry: stored once
    wait_for(lambda: engine.run_view(rid)["status"] == "completed", timeout=30)
    [sub] = engine.run_view(rid)["subtasks"]
    assert sub["data"] == {"shipped": "The pager plugin", "blockers": "None"}
    assert "Blockers?" in sent()[1]["text"]


def test_contacts_naming_a_removed_plugins_channel_stay_readable(engine, taskbot_cli, registries):
    model.register_channel("pager")  # as the plugin did, when these contacts were imported
    engine.import_contacts([{"email": "pat@example.com", "preferred_channel": "pager", "addresses": "pager=P-77"}])
    model.EXTRA_CHANNELS.remove("pager")  # the plugin is gone
    listed = taskbot_cli("contacts", "list", check=True)  # another process, which never had it
    assert "pat@example.com" in listed.stdout
    assert engine.store.find_contacts(["pat@example.com"])["pat@example.com"].addresses == {"pager": "P-77"}
    with pytest.raises(InvalidInput, match="unknown channel 'pager'"):  # new input naming it is refused again
        engine.import_contacts([{"email": "sam@example.com", "preferred_channel": "pager"}])


def test_an_assistant_stored_naming_no_channels_takes_a_channel_a_plugin_adds_later(engine, registries):
    engine.store.put_assistant(model.Assistant(id="helper", model="openai/x"))
    engine.store.put_assistant(model.Assistant(id="strict", channels=["email"]))
    model.register_channel("pager")  # a plugin installed since
    assert engine.store.assistant("helper").channels == ["slack", "telegram", "email", "web", "pager"]
    assert engine.store.assistant("strict").channels == ["email"]  # one that chose keeps its choice
