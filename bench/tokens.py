"""Tokens sent to the model per completed sub-task, with the conversation history bound on and off.

One participant, three fields, and a chatty conversation: before each answer they ask or say
something else (``chatter`` messages per field). The model is the fake OpenAI-compatible server
of the tests (real HTTP through litellm, in this process); it answers chit-chat with a short
paragraph and answers with ``record_data`` (then ``complete_subtask`` after the third). Its
``prompt_tokens`` are the request's characters / 4; the figures are taskbot's own record of the
usage the server reported. ``cached``: the prompt tokens the server reported as read from its
prompt cache (it caches as OpenAI does: a prefix sent before, from 1,024 tokens, in steps of 128).
"""

from __future__ import annotations

import json
import os
from typing import Any

from rq import SimpleWorker

from .harness import redis_server

FIELDS = [{"key": "shipped", "prompt": "What did you ship this week?"},
          {"key": "blockers", "prompt": "Anything blocking you?"},
          {"key": "mood", "prompt": "How are you feeling about the week?"}]
ANSWERS = {"shipped": "I shipped the new exporter and its docs.", "blockers": "Blocked on the design review.",
           "mood": "Good, a calm week."}
CHATTER = ["Hi! What is this about, exactly?", "Sorry, in a meeting. Can you remind me why you need this?",
           "Who else gets asked these questions?", "Is this the same survey as last week?"]
PARAGRAPH = ("It is the weekly status: I collect a few short answers from everyone on the team and the lead gets "
             "a one-page report. Your answers stay private between us until they are compiled. ")


def responder(request: Any) -> Any:
    from tests.fakes.openai_api import Reply

    if not request.tool_names:
        return Reply(text="# Weekly status\n\nCompiled.")
    last = request.last
    if last["role"] == "tool":
        return Reply(text="Thanks, noted. " + ("Bye!" if "completed" in last["content"] else "Next question?"))
    for i, field in enumerate(FIELDS):
        if last["content"] == ANSWERS[field["key"]]:
            calls = [("record_data", {"key": field["key"], "value": last["content"]})]
            return Reply(tool_calls=calls + ([("complete_subtask", {})] if i == len(FIELDS) - 1 else []))
    return Reply(text=PARAGRAPH * 2 + "So, " + FIELDS[0]["prompt"].lower())


def tokens_per_subtask(bound: int, chatter: int = 3) -> dict[str, Any]:
    """Run one sub-task through the fake model with ``TASKBOT_HISTORY_MESSAGES=bound`` (0: unbounded)."""
    from bot import bootstrap
    from engine.model import Assistant
    from tests.fakes.openai_api import FakeOpenAI

    fake = FakeOpenAI(responder=responder).start()
    os.environ["BENCH_OPENAI_KEY"] = fake.api_key
    try:
        with redis_server() as server:
            # jobs build their engine from the environment, as a worker does
            os.environ.update(TASKBOT_REDIS_URL=server.url, TASKBOT_PUBLIC_URL="http://bench",
                              TASKBOT_HISTORY_MESSAGES=str(bound), TASKBOT_WORKING_HOURS="always")
            bootstrap.engine.cache_clear()
            engine = bootstrap.engine()
            engine.store.put_assistant(Assistant(id="bench", model="openai/bench", api_base=fake.api_base,
                                                 api_key_env="BENCH_OPENAI_KEY"))
            engine.import_contacts([{"email": "p@example.com", "preferred_channel": "web"}])
            engine.apply_definition(json.dumps({"id": "bench", "name": "Bench", "assistant": "bench",
                                                "owner": "owner@example.com", "template": {
                                                    "fields": FIELDS, "participants": ["p@example.com"]}}))
            rid = engine.runs.trigger("bench")

            def drain() -> None:
                SimpleWorker([engine.jobs.queue], connection=engine.r).work(  # type: ignore[attr-defined]
                    burst=True, logging_level="ERROR")

            drain()
            [sub] = engine.store.subs_fields(engine.store.sub_ids(rid))
            messages = [m for f in FIELDS for m in (CHATTER * 2)[:chatter] + [ANSWERS[f["key"]]]]
            for i, text in enumerate(messages):
                engine.inbox.post_web(sub["token"], text, f"m{i}")
                drain()
            sub = engine.store.sub_fields(sub["id"])
            assert sub["status"] == "completed", sub["status"]
            turns = len(messages)
            prompt = int(sub["tokens_prompt"])
            cached = int(sub.get("tokens_cached", 0))
            calls = len([c for c in fake.chats() if c.tool_names])
    finally:
        fake.stop()
    return {"history_bound": bound or "off", "user_messages": turns, "model_calls": calls,
            "prompt_tokens_per_subtask": prompt, "per_call": round(prompt / calls),
            "cached_per_subtask": cached, "uncached_per_subtask": prompt - cached}
