"""Late answers (SPEC §11 ``accept_late``): recorded after fan-in, merged into ``gathered``, compiled again as a new
version (earlier ones kept), the owner told, the new version posted; concurrent late answers make one version each."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import answer, turn_on
from tests.fakes.openai_api import FakeOpenAI, calls, text
from tests.fakes.slack_api import FakeSlack

TASK = """
id: weekly-status
name: Weekly status
owner: lead@example.com
report_to: [slack:#team]
template:
  fields: [{key: shipped, prompt: What did you ship this week?}]
  participants: [PEOPLE]
  chase: {interval: 1s, max_chases: 0}
  accept_late: true
"""


@pytest.fixture(autouse=True)
def fake_slack(env, monkeypatch) -> Iterator[FakeSlack]:
    """Slack for the owner (told of each version) and the team channel (each version posted)."""
    fake = FakeSlack().start()
    fake.add_user("U_LEAD", "lead@example.com", "Lena")
    fake.add_channel("team", "C_TEAM")
    values = {"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": "s", "TASKBOT_SLACK_API_URL": fake.api_url}
    turn_on(env, monkeypatch, values)
    yield fake
    fake.stop()


def start(engine, *names: str, task: str = TASK) -> str:
    engine.import_contacts([{"email": f"{n}@example.com", "name": n.capitalize(), "preferred_channel": "web"}
                            for n in names] + [{"email": "lead@example.com", "slack_user_id": "U_LEAD"}])
    engine.apply_definition(task.replace("PEOPLE", ", ".join(f"{n}@example.com" for n in names)))
    return engine.runs.trigger("weekly-status")


def subs(engine, rid):
    return {s["participant_id"].split("@")[0]: s for s in engine.run_view(rid)["subtasks"]}


def running(engine, rid, n):
    return lambda: [s["status"] for s in engine.run_view(rid)["subtasks"]] == ["running"] * n


def test_a_late_answer_makes_version_2_keeps_version_1_and_the_owner_is_told(engine, workers, wait_for, fake_slack):
    rid = start(engine, "alice", "bob")
    workers(1)
    wait_for(running(engine, rid, 2), timeout=30)
    answer(engine, subs(engine, rid)["alice"], "the parser", "a1")
    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=30)  # Bob timed out
    wait_for(lambda: len(fake_slack.posts("C_TEAM")) == 1, timeout=20)  # version 1 posted

    answer(engine, subs(engine, rid)["bob"], "the docs site", "b1")  # an hour late, say
    wait_for(lambda: len(engine.run_view(rid)["deliverables"]) == 2, timeout=30)

    view = engine.run_view(rid)
    assert view["status"] == "completed"
    v2, v1 = view["deliverables"]
    assert (v2["version"], v1["version"]) == (2, 1)
    assert "| Bob | — | timed_out |" in v1["content"]
    assert v1["change"] is None
    assert "| Bob | the docs site | completed (late) |" in v2["content"]
    assert v2["change"] == "Bob answered late (shipped)"
    bob = subs(engine, rid)["bob"]
    assert (bob["status"], bob["late"], bob["reason"]) == ("completed", True, None)
    assert [m for m in bob["conversation"] if m["role"] == "user"][0]["late"] is True
    assert view["gathered"]["tasks"]["bob@example.com"] == {"shipped": "the docs site"}
    assert view["gathered"]["task_status"]["bob@example.com"] == "completed"

    [note] = [n for n in engine.store.notifications("lead@example.com") if n["kind"] == "task_revised"]
    assert "Bob answered late (shipped)" in note["text"]
    assert "Version 2" in note["text"]
    wait_for(lambda: any("answered late" in p["text"] for p in fake_slack.posts("DU_LEAD")), timeout=20)
    wait_for(lambda: len(fake_slack.posts("C_TEAM")) == 2, timeout=20)
    assert [json.dumps(p["blocks"]).count("Version 2") for p in fake_slack.posts("C_TEAM")] == [0, 1]
    assert [r["version"] for r in view["reports"] if r["status"] == "posted"] in ([2, 1], [1])


def test_two_late_answers_at_the_same_moment_make_versions_2_and_3(engine, workers, wait_for):
    rid = start(engine, "alice", "bob", "cat")
    workers(2)
    wait_for(running(engine, rid, 3), timeout=30)
    answer(engine, subs(engine, rid)["alice"], "the parser", "a1")
    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=30)

    late = subs(engine, rid)
    answer(engine, late["bob"], "the docs site", "b1")
    answer(engine, late["cat"], "the release", "c1")
    wait_for(lambda: len(engine.store.deliverables(rid)) == 3, timeout=30)

    view = engine.run_view(rid)
    assert [d["version"] for d in view["deliverables"]] == [3, 2, 1]
    v3, v2, _ = (d["content"] for d in view["deliverables"])
    assert "| Bob | the docs site | completed (late) |" in v3
    assert "| Cat | the release | completed (late) |" in v3
    assert ("the docs site" in v2) != ("the release" in v2)  # version 2 holds exactly one of them
    assert view["gathered"]["tasks"] == {"alice@example.com": {"shipped": "the parser"},
                                         "bob@example.com": {"shipped": "the docs site"},
                                         "cat@example.com": {"shipped": "the release"}}
    assert engine.r.llen(f"taskbot:run:{rid}:late") == 0
    revised = [n for n in engine.store.notifications("lead@example.com") if n["kind"] == "task_revised"]
    assert len(revised) == 2


def test_under_a_model_the_new_version_is_compiled_from_the_previous_one_and_the_change(engine, drain, wait_for,
                                                                                        env, monkeypatch):
    fake = FakeOpenAI().start()
    monkeypatch.setenv("FAKE_OPENAI_KEY", fake.api_key)
    try:
        engine.apply_assistant(f"id: helper\nmodel: openai/helper-model\napi_base: {fake.api_base}\n"
                               "api_key_env: FAKE_OPENAI_KEY\n")
        rid = start(engine, "alice", task=TASK.replace("name: Weekly status", "name: Weekly status\nassistant: helper")
                    .replace("report_to: [slack:#team]\n", ""))
        # scripted before anything runs: the time-out and the compile may come in the first drain already
        fake.script(text("# Status v1\n\nAlice did not answer."))
        drain()
        wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=20, between=drain)

        fake.script(calls(("record_data", {"key": "shipped", "value": "the parser"}), ("complete_subtask", {})),
                    text("Thanks, recorded."), text("# Status v2\n\nAlice shipped the parser."))
        answer(engine, subs(engine, rid)["alice"], "I shipped the parser", "a1")
        wait_for(lambda: len(engine.store.deliverables(rid)) == 2, timeout=20, between=drain)

        v2, v1 = engine.run_view(rid)["deliverables"]
        assert (v2["content"], v1["content"]) == ("# Status v2\n\nAlice shipped the parser.",
                                                  "# Status v1\n\nAlice did not answer.")
        compile_request = fake.chats()[-1]
        said = "\n".join(str(m.get("content")) for m in compile_request.messages)
        assert "## The previous version\n\n# Status v1\n\nAlice did not answer." in said
        assert "## What changed since\n\nAlice answered late (shipped)" in said
        assert '"shipped": "the parser"' in said
    finally:
        fake.stop()
