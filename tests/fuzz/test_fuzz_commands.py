"""The `/task` grammar of Slack, Telegram and `taskbot task`: any words get a one-line answer, never an
exception, and a refused command changes nothing."""

from __future__ import annotations

import shlex

from hypothesis import event, given
from hypothesis import strategies as st

from bot.commands import ARITY, Actor, execute
from tests.conftest import contents
from tests.fuzz.conftest import FUZZ
from tests.fuzz.strategies import TEXT

TASK = """
id: standup
name: Standup
owner: lead@example.com
template:
  fields: [{key: done, prompt: Done?}]
  participants: [ann@example.com]
"""
WORD = st.one_of(TEXT, st.sampled_from(["standup", "nope", "0 9 * * MON", "0 0 31 2 *", "* * * * * * *", "UTC",
                                        "Mars/Olympus", "k=v", "=v", "k=", '"', "'", "\\", "--x"]))
COMMAND = st.one_of(
    st.tuples(st.sampled_from(sorted(ARITY)), st.lists(WORD, max_size=4)).map(
        lambda c: " ".join([c[0], *(shlex.quote(w) for w in c[1])])),
    st.lists(WORD, max_size=5).map(" ".join),
)
WHO = st.sampled_from([Actor(frozenset({"U_ADMIN"}), admin=True), Actor(frozenset({"lead@example.com"})),
                       Actor(frozenset({"stranger"}))])


def snapshot(r) -> dict[bytes, object]:
    return contents(r)


@FUZZ
@given(COMMAND, WHO)
def test_any_words_get_an_answer_and_a_refusal_changes_nothing(engine, text: str, actor: Actor) -> None:
    if not engine.r.hexists("taskbot:defs", "standup"):
        engine.apply_definition(TASK)
    before = snapshot(engine.r)
    reply = execute(engine, text, actor, kind="slash")
    event(f"{'ok' if reply.ok else 'refused'}: {text.split(' ')[0][:12] if text.split(' ')[0] in ARITY else '?'}")
    assert reply.text
    reply.text.encode("utf-8")  # sendable to Slack or Telegram as it is
    if not reply.ok:
        assert snapshot(engine.r) == before
