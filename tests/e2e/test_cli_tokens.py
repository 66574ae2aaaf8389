"""People's tokens as an operator makes them with `taskbot tokens`, and what a token then stands for."""

import json

import pytest

from engine.access import may

TASK = {"id": "standup", "name": "Standup", "owner": "lee@example.com",
        "template": {"participants": ["ann@example.com"], "fields": [{"key": "today", "prompt": "Today?"}]}}
OTHER = {**TASK, "id": "retro", "name": "Retro", "owner": "ann@example.com"}


def everything(r) -> bytes:
    return b"".join(k + (r.dump(k) or b"") for k in r.keys("*"))


@pytest.fixture
def directory(engine):
    engine.import_contacts([
        {"id": "lee", "email": "lee@example.com", "name": "Lee", "slack_user_id": "U_LEE", "preferred_channel": "web"},
        {"email": "ann@example.com", "name": "Ann", "preferred_channel": "web"},
    ])
    engine.apply_definition(TASK)
    engine.apply_definition(OTHER)
    return engine


def test_a_token_is_printed_once_and_only_its_hash_is_kept(directory, taskbot_cli, r):
    made = taskbot_cli("tokens", "create", "lee@example.com", check=True)  # by email: the contact is `lee`
    token = made.stdout.strip()
    assert made.stdout == token + "\n"  # stdout is the token alone: TOKEN=$(taskbot tokens create ...)
    assert token.startswith("tb_")
    prefix = token[:11]
    assert f"token {prefix} for lee;" in made.stderr
    assert token.encode() not in everything(r)
    assert token.split("_", 2)[2].encode() not in everything(r)  # not the secret part either

    assert directory.tokens.identify(token) == "lee"
    listed = json.loads(taskbot_cli("tokens", "list", "--json", check=True).stdout)
    assert listed == [{"prefix": prefix, "contact_id": "lee", "created_at": listed[0]["created_at"],
                       "last_used_at": listed[0]["last_used_at"]}]
    assert listed[0]["last_used_at"] >= listed[0]["created_at"]
    table = taskbot_cli("tokens", "list", check=True).stdout
    assert prefix in table
    assert token not in table


def test_a_wrong_or_made_up_token_opens_nothing(directory):
    token, record = directory.tokens.create("lee")
    prefix = record["prefix"]
    for wrong in (token[:-1] + ("A" if token[-1] != "A" else "B"), prefix, f"{prefix}_", "", "Bearer " + token,
                  token.removeprefix("tb_"), "tb_zzzzzzzz_" + token[12:], token + "x"):
        assert directory.tokens.identify(wrong) is None, wrong
        assert directory.tokens.caller(wrong) is None
    assert directory.tokens.list()[0]["last_used_at"] is None  # none of those counted as a use


def test_a_persons_token_stands_for_every_identity_of_theirs(directory, drain, engine):
    token, _ = engine.tokens.create("lee")
    caller = engine.tokens.caller(token)
    assert caller.contact_id == "lee"
    assert {"lee", "lee@example.com", "U_LEE"} <= caller.ids
    assert not caller.admin
    assert may(caller, "run", engine.store.get_definition("standup").owner)
    assert not may(caller, "run", engine.store.get_definition("retro").owner)

    mine = engine.runs.trigger("standup", kind="api", by=caller.id)
    theirs = engine.runs.trigger("retro", kind="api")
    drain()
    engine.runs.cancel(mine)
    engine.runs.cancel(theirs)
    notes = engine.notifications_for(caller)
    assert [(n["run_id"], n["kind"]) for n in notes] == [(mine, "task_cancelled")]


def test_revoked_by_its_prefix_it_opens_nothing(directory, taskbot_cli):
    token = taskbot_cli("tokens", "create", "ann@example.com", check=True).stdout.strip()
    keep = taskbot_cli("tokens", "create", "lee", check=True).stdout.strip()
    prefix = token[:11]
    done = taskbot_cli("tokens", "revoke", prefix, check=True)
    assert done.stdout.strip() == f"revoked token {prefix} of ann@example.com"
    assert directory.tokens.identify(token) is None
    assert directory.tokens.identify(keep) == "lee"
    again = taskbot_cli("tokens", "revoke", prefix)
    assert again.returncode == 2
    assert again.stderr.strip() == f"taskbot: error: token '{prefix}' not found"
    assert [t["contact_id"] for t in json.loads(taskbot_cli("tokens", "list", "--json", check=True).stdout)] == ["lee"]


@pytest.mark.parametrize(("args", "says"), [
    (["tokens", "create", "nobody@example.com"], "contact 'nobody@example.com' not found"),
    (["tokens", "revoke", "tb_nothex!"], "TOKEN_PREFIX: 'tb_nothex!' is not a token prefix (like tb_1a2b3c4d)"),
    (["tokens", "revoke", "tb_0123abcd"], "token 'tb_0123abcd' not found"),
])
def test_bad_input_exits_2_naming_it_and_stores_nothing(directory, taskbot_cli, r, args, says):
    before = sorted(r.keys("taskbot:tokens*"))
    result = taskbot_cli(*args)
    assert result.returncode == 2
    assert result.stderr.strip() == f"taskbot: error: {says}"
    assert sorted(r.keys("taskbot:tokens*")) == before


def test_a_person_sees_their_runs_however_many_newer_runs_of_others_there_are(directory, engine):
    from bot.commands import execute

    lee = engine.tokens.caller(engine.tokens.create("lee")[0])
    mine = engine.runs.trigger("standup", kind="api", by=lee.id)
    theirs = [engine.runs.trigger("retro", kind="api") for _ in range(250)]  # past one page of run ids
    assert mine not in [v["id"] for v in engine.list_runs(limit=10)]
    assert [v["id"] for v in engine.list_runs(limit=10, caller=lee)] == [mine]
    assert [v["id"] for v in engine.list_runs("retro", limit=3, caller=lee)] == []
    ann = engine.tokens.caller(engine.tokens.create("ann@example.com")[0])
    assert len(engine.list_runs(limit=300, caller=ann)) == 250
    assert mine in execute(engine, "status", lee).text
    assert theirs[-1] not in execute(engine, "status", lee).text
