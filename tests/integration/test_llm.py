"""Conversations through litellm, against a local OpenAI-compatible server (real HTTP, OpenAI's JSON).

The assistant is configured as a user would: ``model: openai/<name>`` with an ``api_base``
pointing at the fake server and ``api_key_env`` naming the variable that holds the key.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from bot.app import create_app
from bot.settings import Settings
from engine.model import Assistant
from engine.views import chat_view
from tests.conftest import ROOT, answer, people, served, turn_on
from tests.fakes.openai_api import FakeOpenAI, Reply, call, calls, error, text, tokens

KEY_ENV = "FAKE_OPENAI_KEY"

WEEKLY = """
id: weekly-status
name: Weekly status
output_type: {output}
description: Compile the team's answers into a one-page status report.
assistant: helper
owner: lead@example.com
allowed_tools: {allowed}
template:
  instructions: Hi! Two quick questions for this week's status report.
  fields:
    - {{key: shipped, prompt: What did you ship this week?}}
    - {{key: blockers, prompt: Anything blocking you?, required: {blockers_required}}}
  participants: [{people}]
  chase: {{interval: 1h, max_chases: 1}}
"""


def weekly(output: str = "report", allowed: str = "[]", blockers_required: str = "true",
           who: str = "alice@example.com") -> str:
    return WEEKLY.format(output=output, allowed=allowed, blockers_required=blockers_required, people=who)


@pytest.fixture
def fake(env, monkeypatch) -> Iterator[FakeOpenAI]:
    """The fake provider, its key in the environment, and quick retries."""
    server = FakeOpenAI().start()
    values = {KEY_ENV: server.api_key, "TASKBOT_MODEL_BACKOFF": "0.01", "TASKBOT_MODEL_RETRIES": "4"}
    turn_on(env, monkeypatch, values)
    yield server
    server.stop()


@pytest.fixture
def sent(monkeypatch) -> list:
    """Every message the web channel was handed in this process (the worker of ``drain``)."""
    from channels.web import WebChannel
    from engine.ports import Delivery

    out: list = []

    def send(self, message):
        out.append(message)
        return Delivery()

    monkeypatch.setattr(WebChannel, "send", send)
    return out


def assistant(engine, fake, aid: str = "helper", **extra) -> Assistant:
    a = Assistant(id=aid, model=f"openai/{aid}-model", api_base=fake.api_base, api_key_env=KEY_ENV,
                  system_prompt=f"You are {aid}, the team's assistant.", **extra)
    engine.store.put_assistant(a)
    return a


def subtask(engine, rid, who="alice@example.com"):
    return {s["participant_id"]: s for s in engine.run_view(rid)["subtasks"]}[who]


def replies(sub) -> list[str]:
    return [m["text"] for m in sub["conversation"] if m["role"] == "assistant" and m.get("kind") == "reply"]


def start(engine, drain, definition: str, who=("alice@example.com",)) -> str:
    people(engine, *who, "lead@example.com")
    engine.apply_definition(definition)
    rid = engine.runs.trigger("weekly-status")
    drain()
    return rid


def test_the_model_records_two_fields_over_three_turns_and_completes(engine, fake, drain, sent, taskbot_cli,
                                                                     tmp_path):
    helper = tmp_path / "helper.yaml"
    helper.write_text(f"id: helper\nmodel: openai/helper-model\napi_base: {fake.api_base}\n"
                      f"api_key_env: {KEY_ENV}\nsystem_prompt: You are helper, the team's assistant.\n")
    assert "applied assistant helper (openai/helper-model)" in taskbot_cli("assistants", "apply", str(helper),
                                                                          check=True).stdout
    rid = start(engine, drain, weekly())
    alice = subtask(engine, rid)
    assert alice["status"] == "running"
    assert "What did you ship this week?" in alice["conversation"][0]["text"]
    assert fake.chats() == []  # the opening costs no model call

    fake.script(text("It's for the weekly status. What did you ship this week?"))
    answer(engine, alice, "Hi, what is this about?", "m1")
    drain()
    fake.script(call("record_data", key="shipped", value="The new parser"), text("Great! Anything blocking you?"))
    answer(engine, alice, "The new parser", "m2")
    drain()
    fake.script(calls(("record_data", {"key": "blockers", "value": "Waiting on review"}), ("complete_subtask", {})),
                text("Thanks, all recorded!"),
                text("# Weekly status\n\nAlice shipped the new parser; she waits on review."))
    answer(engine, alice, "Waiting on review", "m3")
    drain()

    alice = subtask(engine, rid)
    assert alice["status"] == "completed"
    assert alice["data"] == {"shipped": "The new parser", "blockers": "Waiting on review"}
    assert replies(alice) == ["It's for the weekly status. What did you ship this week?",
                              "Great! Anything blocking you?", "Thanks, all recorded!"]
    assert [m.text for m in sent if m.kind == "reply"] == replies(alice)
    tools = [m for m in alice["conversation"] if m["role"] == "tool"]
    assert [m["tool"] for m in tools] == ["record_data", "record_data", "complete_subtask"]
    assert [m["role"] for m in chat_view(engine.store, alice["id"])] == ["assistant"] + ["user", "assistant"] * 3

    chats = fake.chats()
    assert len(chats) == 6
    first = chats[0]
    assert first.body["model"] == "helper-model"
    assert "You are helper" in first.system
    assert "shipped (required" in first.system
    assert "blockers (required" in first.system
    assert first.tool_names == ["record_data", "complete_subtask", "save_content", "get_deliverable", "delegate",
                                "schedule_task"]
    assert first.last == {"role": "user", "content": "Hi, what is this about?"}
    # the tool result goes back to the model, and the next turn's prompt shows what is recorded
    assert chats[2].last["role"] == "tool"
    assert chats[2].last["content"] == "recorded shipped"
    assert 'recorded: "The new parser"' in chats[3].system
    assert chats[3].messages[1]["content"].startswith("Hi! Two quick questions")  # the opening is history

    view = engine.run_view(rid)
    assert view["status"] == "completed"
    assert view["deliverables"][0]["content"].startswith("# Weekly status")
    # the run's token count is what the provider reported, call by call
    assert view["usage"]["model_calls"] == 6
    assert view["usage"]["prompt_tokens"] == sum(tokens(c.body["messages"]) + tokens(c.body.get("tools", []))
                                                 for c in chats)
    assert alice["usage"]["prompt_tokens"] < view["usage"]["prompt_tokens"]  # the compile is the run's, not hers
    status = taskbot_cli("status", rid, check=True).stdout
    assert f"tokens: {view['usage']['total_tokens']:,} ({view['usage']['prompt_tokens']:,} prompt" in status
    assert "in 6 model calls" in status


def test_a_tool_outside_allowed_tools_is_refused_and_not_run(engine, fake, drain):
    assistant(engine, fake)
    rid = start(engine, drain, weekly(allowed="[record_data, complete_subtask]"))
    fake.script(call("schedule_task", task_id="weekly-status", cron="0 9 * * MON"),
                text("I can't schedule that here. What did you ship this week?"))
    answer(engine, subtask(engine, rid), "Please schedule this every Monday", "m1")
    drain()

    assert engine.schedules.all() == []
    first, second = fake.chats()
    assert first.tool_names == ["record_data", "complete_subtask"]
    assert second.last["role"] == "tool"
    assert "not available" in second.last["content"]
    alice = subtask(engine, rid)
    [refused] = [m for m in alice["conversation"] if m["role"] == "tool"]
    assert refused["kind"] == "refused"
    assert refused["tool"] == "schedule_task"
    assert replies(alice) == ["I can't schedule that here. What did you ship this week?"]


def test_complete_subtask_before_a_required_field_is_refused(engine, fake, drain):
    assistant(engine, fake)
    rid = start(engine, drain, weekly())
    fake.script(calls(("record_data", {"key": "shipped", "value": "Docs"}), ("complete_subtask", {})),
                text("And is anything blocking you?"))
    answer(engine, subtask(engine, rid), "I shipped docs", "m1")
    drain()

    alice = subtask(engine, rid)
    assert alice["status"] == "running"
    assert alice["data"] == {"shipped": "Docs"}
    result = fake.chats()[1].messages[-1]
    assert result["role"] == "tool"
    assert result["content"] == "error: cannot complete yet: required field(s) not recorded: blockers"


def test_a_rate_limit_is_retried_and_one_reply_is_sent(engine, fake, drain, sent):
    assistant(engine, fake)
    rid = start(engine, drain, weekly())
    fake.script(error(429, retry_after=0.2), text("Thanks! What did you ship this week?"))
    answer(engine, subtask(engine, rid), "Hello", "m1")
    drain()

    statuses = [c.status for c in fake.chats()]
    assert statuses == [429, 200]
    second = fake.chats()[1]
    assert second.started - fake.chats()[0].ended >= 0.19  # the provider's Retry-After was honoured
    assert [m.text for m in sent if m.kind == "reply"] == ["Thanks! What did you ship this week?"]
    assert replies(subtask(engine, rid)) == ["Thanks! What did you ship this week?"]


def test_five_provider_errors_keep_the_message_and_tell_the_owner(engine, fake, drain, sent):
    assistant(engine, fake)
    rid = start(engine, drain, weekly())
    fake.script(*[error(500)] * 5)
    answer(engine, subtask(engine, rid), "I shipped the exporter", "m1")
    drain()

    assert [c.status for c in fake.chats()] == [500] * 5
    alice = subtask(engine, rid)
    assert alice["status"] == "running"
    assert [m["text"] for m in alice["conversation"] if m["role"] == "user"] == ["I shipped the exporter"]
    assert [m["kind"] for m in alice["conversation"] if m["role"] == "system"] == ["fault"]
    [note] = [n for n in engine.store.notifications("lead@example.com") if n["kind"] == "assistant_error"]
    assert "alice" in note["text"]
    assert "HTTP 500" in note["text"]
    assert "Your message is kept" in [m.text for m in sent if m.kind == "reply"][-1]

    # the next message tries again, and the model sees the one that was kept
    fake.script(call("record_data", key="shipped", value="The exporter"), text("Got it. Anything blocking you?"))
    answer(engine, alice, "Hello?", "m2")
    drain()
    retry = fake.chats()[5]
    users = [m["content"] for m in retry.messages if m["role"] == "user"]
    assert users[-2:] == ["I shipped the exporter", "Hello?"]
    alice = subtask(engine, rid)
    assert alice["data"] == {"shipped": "The exporter"}
    assert replies(alice)[-1] == "Got it. Anything blocking you?"


@pytest.mark.parametrize(("output", "asks"), [("report", "Write a report"), ("summary", "short summary")])
def test_the_compile_step_goes_through_the_model(engine, fake, drain, output, asks):
    assistant(engine, fake)
    rid = start(engine, drain, weekly(output=output, blockers_required="false"))
    written = f"# Weekly {output}\n\nAlice shipped the parser."
    fake.script(calls(("record_data", {"key": "shipped", "value": "The parser"}), ("complete_subtask", {})),
                text("Thank you!"), text(written))
    answer(engine, subtask(engine, rid), "The parser, nothing blocks me", "m1")
    drain()

    view = engine.run_view(rid)
    assert view["status"] == "completed"
    [deliverable] = view["deliverables"]
    assert deliverable["output_type"] == output
    assert deliverable["content"] == written
    assert view["result_summary"] == f"Weekly {output}"
    compile_request = fake.chats()[-1]
    assert compile_request.tool_names == []
    assert asks in compile_request.system
    assert "alice" in compile_request.last["content"]
    assert "The parser" in compile_request.last["content"]
    assert view["usage"]["model_calls"] == 3


def test_a_delegated_result_comes_back_into_the_conversation(engine, fake, drain):
    assistant(engine, fake)
    assistant(engine, fake, "writer")
    rid = start(engine, drain, weekly())
    fake.script(call("delegate", assistant_id="writer", instructions="Write a haiku about parsers."),
                text("I asked our writer; I will share it when it is ready."),
                text("Tokens fall like rain / the parser catches each one / trees grow in the dark"),
                text("Here is the haiku: Tokens fall like rain... Now, what did you ship this week?"))
    answer(engine, subtask(engine, rid), "Can you get me a haiku about parsers?", "m1")
    drain()

    runs = engine.list_runs()
    [delegated] = [r for r in runs if r["trigger"]["kind"] == "delegation"]
    assert delegated["status"] == "completed"
    assert delegated["deliverables"][0]["content"].startswith("Tokens fall like rain")
    writer_call = fake.chats()[2]
    assert writer_call.body["model"] == "writer-model"
    assert "Write a haiku about parsers." in writer_call.system

    alice = subtask(engine, rid)
    [note] = [m for m in alice["conversation"] if m.get("kind") == "delegation"]
    assert "Tokens fall like rain" in note["text"]
    assert replies(alice)[-1].startswith("Here is the haiku")
    last = fake.chats()[3]
    assert "Tokens fall like rain" in last.last["content"]
    assert last.last["role"] == "user"
    assert alice["status"] == "running"


def test_a_direct_task_is_one_conversation_with_the_owner_then_the_compile(engine, fake, drain):
    assistant(engine, fake)
    people(engine, "lead@example.com")
    engine.apply_definition({"id": "post", "name": "Launch post", "output_type": "blog_post", "assistant": "helper",
                             "owner": "lead@example.com", "description": "Write a short post about our launch."})
    fake.script(text("Happy to! Which tone do you want?"))
    rid = engine.runs.trigger("post")
    drain()
    [owner] = engine.run_view(rid)["subtasks"]
    assert owner["participant_id"] == "lead@example.com"
    assert owner["kind"] == "conversation"
    assert replies(owner) == ["Happy to! Which tone do you want?"]  # the assistant starts, unasked
    assert [m["role"] for m in chat_view(engine.store, owner["id"])] == ["assistant", "assistant"]
    assert "Write a short post about our launch." in fake.chats()[0].system

    fake.script(calls(("save_content", {"title": "Draft", "content": "We launched!"}), ("complete_subtask", {})),
                text("Done, compiling it now."), text("# We launched\n\nA playful post."))
    answer(engine, owner, "Playful, please", "o1")
    drain()
    view = engine.run_view(rid)
    assert view["status"] == "completed"
    assert view["deliverables"][0]["content"] == "# We launched\n\nA playful post."
    material = fake.chats()[-1].last["content"]
    assert "We launched!" in material
    assert "Playful, please" in material


def test_image_deliverables_are_files_and_a_model_without_images_fails_the_run(engine, fake, drain):
    assistant(engine, fake, image_model="openai/dall-e-3")
    for images in (False, True):
        fake.images = images
        engine.apply_definition({"id": "art", "name": "Team art", "output_type": "image", "assistant": "helper",
                                 "owner": "lead@example.com", "workflow": [{"type": "compile"}]})
        fake.script(text("A cat reading a parser manual, watercolour."))
        rid = engine.runs.trigger("art")
        drain()
        view = engine.run_view(rid)
        if not images:
            assert view["status"] == "failed"
            assert "image generation failed" in view["error_message"]
            assert "dall-e-3" in view["error_message"]
        else:
            assert view["status"] == "completed"
            [d] = view["deliverables"]
            assert d["file"]["content_type"] == "image/png"
            assert d["file"]["filename"] == "team-art.png"
            with served(create_app(engine, Settings(api_token="t0ken"))) as base:
                got = httpx.get(base + d["file"]["url"], headers={"Authorization": "Bearer t0ken"})
            assert got.status_code == 200
            assert got.headers["content-type"] == "image/png"
            assert got.content.startswith(b"\x89PNG")
            assert d["content"].endswith("A cat reading a parser manual, watercolour.")  # the prompt it was made from


def test_at_most_two_turns_at_once_across_three_workers(engine, fake, workers, wait_for, env):
    env["TASKBOT_MAX_CONCURRENT_TASKS"] = "2"

    def respond(request) -> Reply:
        if not request.tool_names:
            return Reply(text="# Done\n\nThe deliverable.", delay=0.3)
        if request.last["role"] == "tool":
            return Reply(text="All done.", delay=0.3)
        # long enough that two turns surely overlap on a busy machine: the limit must be reached, not only kept
        return Reply(tool_calls=[("complete_subtask", {})], delay=1.0)

    fake.responder = respond
    assistant(engine, fake)
    people(engine, "lead@example.com")
    engine.apply_definition({"id": "direct", "name": "Direct", "assistant": "helper", "owner": "lead@example.com",
                             "output_type": "freeform", "description": "Say hello."})
    workers(3)
    wait_for(lambda: engine.r.scard("rq:workers:taskbot") >= 3, timeout=60)
    runs = [engine.runs.trigger("direct") for _ in range(6)]
    wait_for(lambda: all(engine.store.run_fields(r)["status"] == "completed" for r in runs), timeout=90)

    chats = fake.chats()
    # a kick-off turn of two calls and a compile, per run (a turn is computed again only if its
    # worker looked dead, and then applied once)
    assert len(chats) >= 18, len(chats)
    assert fake.max_in_flight == 2, [(round(c.started, 2), round(c.ended, 2), c.in_flight) for c in chats]
    # every slot is free and nobody waits (slots are freed before a run moves on)
    assert engine.r.zcard("taskbot:slots") == 0
    assert engine.r.zcard("taskbot:slots:waiting") == 0


def test_litellm_is_not_imported_by_the_cli_or_the_scripted_path(env):
    code = ("import sys; from bot.cli import cli; from bot.bootstrap import build_engine; "
            "import bot.jobs, bot.workers; e = build_engine(); e.store.get_assistant('default', 'x'); "
            "print('litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_history_is_bounded_and_a_runaway_turn_ends_politely(engine, fake, drain, monkeypatch):
    from bot import bootstrap

    monkeypatch.setenv("TASKBOT_HISTORY_MESSAGES", "2")
    monkeypatch.setenv("TASKBOT_MAX_TURN_STEPS", "3")
    bootstrap.engine.cache_clear()  # the jobs' engine reads them
    assistant(engine, fake)
    rid = start(engine, drain, weekly())
    for i in range(3):
        fake.script(text(f"Reply {i}"))
        answer(engine, subtask(engine, rid), f"Message {i}", f"m{i}")
        drain()
    last = fake.chats()[-1]
    assert [m["role"] for m in last.messages] == ["system", "assistant", "user"]  # the last two of six
    assert [m["content"] for m in last.messages[1:]] == ["Reply 1", "Message 2"]

    fake.script(*[call("get_deliverable", id="nope")] * 3)
    answer(engine, subtask(engine, rid), "Loop forever", "m9")
    drain()
    assert len(fake.chats()) == 6
    assert replies(subtask(engine, rid))[-1].startswith("Sorry, I got tangled up")


def test_a_plugin_tool_is_offered_and_run(engine, fake, drain, monkeypatch):
    from engine import tools

    seen = []
    monkeypatch.setitem(tools.REGISTRY, "lookup_team", tools.Tool(
        "lookup_team", "Who is on a team.", {"type": "object", "properties": {"team": {"type": "string"}}},
        lambda ctx, args: seen.append((ctx.sid, args)) or "alice, bob"))
    assistant(engine, fake, tools=["record_data", "lookup_team"])
    rid = start(engine, drain, weekly())
    fake.script(call("lookup_team", team="core"), text("Your team is alice and bob. What did you ship?"))
    answer(engine, subtask(engine, rid), "Who is on my team?", "m1")
    drain()
    assert fake.chats()[0].tool_names == ["record_data", "lookup_team"]
    assert seen == [(subtask(engine, rid)["id"], {"team": "core"})]
    assert fake.chats()[1].last["content"] == "alice, bob"


def test_a_tools_long_result_is_cut_before_the_model_reads_it(engine, fake, drain, monkeypatch):
    from engine import tools

    monkeypatch.setitem(tools.REGISTRY, "dump", tools.Tool("dump", "Everything.", {"type": "object"},
                                                           lambda ctx, args: "x" * 50_000))
    assistant(engine, fake, tools=["record_data", "dump"])
    rid = start(engine, drain, weekly())
    fake.script(call("dump"), text("That was a lot. What did you ship?"))
    answer(engine, subtask(engine, rid), "Show me everything", "m1")
    drain()
    read = fake.chats()[1].last["content"]
    assert read == "x" * tools.MAX_RESULT + "\n[cut]"  # 8,000 characters, not 50,000, in every later prompt


def test_schedule_task_creates_one_schedule_even_when_its_effects_run_again(engine, fake, drain):
    assistant(engine, fake)
    rid = start(engine, drain, weekly())
    fake.script(call("schedule_task", task_id="weekly-status", cron="0 9 * * MON", timezone="Europe/Paris"),
                text("Scheduled for Mondays at 9. What did you ship this week?"))
    answer(engine, subtask(engine, rid), "Run this every Monday at 9, Paris time", "m1")
    drain()
    [schedule] = engine.schedules.all()
    assert (schedule["task_id"], schedule["cron"], schedule["timezone"]) == ("weekly-status", "0 9 * * MON",
                                                                            "Europe/Paris")
    effect = {"kind": "schedule", "id": schedule["id"], "task_id": "weekly-status", "cron": "0 9 * * MON",
              "timezone": "Europe/Paris"}
    engine.inbound.run_effects("again", subtask(engine, rid)["id"], {"effects": json.dumps([effect])})
    assert len(engine.schedules.all()) == 1
    assert "scheduled weekly-status as" in fake.chats()[1].last["content"]


def test_a_tool_call_whose_value_cannot_be_stored_is_refused_to_the_model(engine, fake, drain):
    """A model's arguments are JSON too: a lone surrogate or nesting 40 deep would be stored, then break reads."""
    assistant(engine, fake)
    rid = start(engine, drain, weekly())
    deep: object = "x"
    for _ in range(40):
        deep = {"a": deep}
    fake.script(calls(("record_data", {"key": "shipped", "value": "Docs \ud800"}),
                      ("record_data", {"key": "blockers", "value": deep})),
                text("Sorry, what did you ship?"))
    answer(engine, subtask(engine, rid), "I shipped docs", "m1")
    drain()

    alice = subtask(engine, rid)
    assert alice["data"] == {}
    assert replies(alice)[-1] == "Sorry, what did you ship?"
    results = [m["content"] for m in fake.chats()[1].messages if m["role"] == "tool"]
    assert results[0].startswith("error: arguments.value: contains a lone surrogate (\\ud800)")
    assert results[1] == "error: arguments.value: nested deeper than 32 levels"
    assert engine.list_runs()[0]["id"] == rid


def test_prompt_cache_reads_the_provider_reports_are_counted_in_usage(engine, fake, drain):
    # a system prompt long enough for OpenAI's automatic cache (1,024 tokens), and two turns in which
    # nothing is recorded: the second call repeats the first's tools, system prompt and history
    long_prompt = "You are helper, the team's assistant. " + "Keep every answer short and friendly. " * 130
    a = Assistant(id="helper", model="openai/helper-model", api_base=fake.api_base, api_key_env=KEY_ENV,
                  system_prompt=long_prompt)
    engine.store.put_assistant(a)
    rid = start(engine, drain, weekly())
    alice = subtask(engine, rid)
    fake.script(text("It's for the weekly status. What did you ship?"))
    answer(engine, alice, "Hi, what is this about?", "m1")
    drain()
    fake.script(text("No rush. What did you ship this week?"))
    answer(engine, alice, "Let me think", "m2")
    drain()

    first, second = fake.chats()
    assert first.cached_tokens == 0  # nothing was cached before the first call
    assert second.cached_tokens >= 1024
    view = engine.run_view(rid)
    assert view["usage"]["cached_tokens"] == second.cached_tokens
    assert view["usage"]["prompt_tokens"] > view["usage"]["cached_tokens"]
    assert subtask(engine, rid)["usage"]["cached_tokens"] == second.cached_tokens
    status = engine.store.usage()
    assert status["cached_tokens"] == second.cached_tokens
