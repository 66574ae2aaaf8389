"""Plugins (``TASKBOT_PLUGINS``): a module of the user's, on the Python path, imported by every taskbot process
before its engine is built. Here it adds a tool and an output type; the CLI validates a task with that
type, and a real worker process offers the tool to the model and runs it. (This process loads it too, as
every process must that reads such a task; its registries are put back afterwards.)"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from engine import model, outputs, tools
from tests.conftest import answer, turn_on
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
    yield
    sys.modules.pop("team_tools", None)


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
