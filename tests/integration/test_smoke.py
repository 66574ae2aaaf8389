from taskbot.engine.definitions import load_definition_text
from taskbot.engine.ports import Inbound

DEF = """
id: weekly-status
name: Weekly status
owner: lead@example.com
template:
  instructions: Hi!
  fields:
    - {key: shipped, prompt: What did you ship?}
    - {key: blockers, prompt: Anything blocking you?, required: false}
  participants: [alice@example.com, bob@example.com]
  chase: {interval: 1s, max_chases: 1}
"""


def test_smoke(engine, drain, wait_for):
    from taskbot.engine.model import Contact
    engine.store.put_contacts([Contact(email="alice@example.com", preferred_channel="web"),
                               Contact(email="bob@example.com", preferred_channel="web")])
    engine.runs.apply(load_definition_text(DEF))
    rid = engine.runs.trigger("weekly-status")
    drain()
    subs = engine.store.subs_fields(engine.store.sub_ids(rid))
    assert [s["status"] for s in subs] == ["running", "running"]
    alice = subs[0]
    engine.inbox.receive(Inbound("web", alice["address"], "the parser", "m1", reply_to=alice["token"]))
    engine.inbox.receive(Inbound("web", alice["address"], "skip", "m2", reply_to=alice["token"]))
    drain()
    print(engine.store.conversation(alice["id"]))
    wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed", timeout=10, between=drain)
    print(engine.store.deliverables(rid)[0]["content"])
    print(engine.store.run_fields(rid))
