"""Inputs as a careless or hostile sender makes them: any Unicode (lone surrogates included), any JSON
shape, nesting far past the limit, and the near-misses of valid definitions, filters and commands."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

#: Any code point, lone surrogates included (hypothesis leaves them out unless asked).
ANY_CHAR = st.characters(exclude_categories=())
NASTY = st.sampled_from(["", " ", "\ud800", "a\udfff", "\x00", "'", '"', "\\", "\n", "${x}", "{{x}}", "0 0 31 2 *",
                         "* * * * * * *", "__import__('os')", "é", "😀", "2001-13-45", "&a", "*a", "<<", "x" * 300])
TEXT = st.one_of(st.text(ANY_CHAR, max_size=30), NASTY)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT)


def nested(levels: int, leaf: Any = "leaf") -> Any:
    value = leaf
    for i in range(levels):
        value = {"a": value} if i % 2 else [value]
    return value


#: JSON-like values, sometimes nested far deeper than 32 levels.
JSON = st.one_of(
    st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                 max_leaves=12),
    st.integers(min_value=30, max_value=400).map(nested),
)
@st.composite
def mutated(draw: st.DrawFn, base: Any, edits: int = 3) -> Any:
    """``base`` (a valid payload) with up to ``edits`` places replaced, dropped or added, at any depth:
    most inputs then get past the first check and reach the code behind it."""
    value = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=0, max_value=edits))):
        parent, key = None, None
        node = value
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            parent, key = node, draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
            node = node[key]
        target = node if isinstance(node, dict) else parent
        if target is None:
            return draw(JSON)
        choice = draw(st.sampled_from(["replace", "drop", "add"]))
        if isinstance(target, dict):
            name = key if target is parent and key is not None else draw(st.sampled_from(sorted(target) or ["x"]))
            if choice == "drop":
                target.pop(name, None)
            elif choice == "add":
                target[draw(TEXT)] = draw(JSON)
            else:
                target[name] = draw(JSON)
        elif key is not None:
            if choice == "drop":
                target.pop(key)
            else:
                target[key] = draw(JSON)
    return value


SLUG = st.one_of(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True), TEXT)
DURATION = st.one_of(st.sampled_from(["24h", "30s", "15m", "2d", "2x", "0s", "-1h", "1e9d", "", "h"]), JSON)

FIELD = st.fixed_dictionaries(
    {"key": st.one_of(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), TEXT), "prompt": TEXT},
    optional={"required": st.one_of(st.booleans(), JSON),
              "type": st.one_of(st.sampled_from(["text", "choice", "number", "scale", "date", "list"]), TEXT),
              "choices": st.one_of(st.lists(TEXT, max_size=3), JSON)})
FILTER_WORDS = st.sampled_from(["role", "level", "team", "a.b", "and", "or", "in", "=", "!=", "<", ">=", "==", "(",
                                ")", "[", "]", ",", "'eng'", '"x"', "'", "3", "-1.5e3", "true", "false", "1e999",
                                "\\", "\ud800", "@", "9" * 30])
FILTER = st.one_of(st.lists(FILTER_WORDS, max_size=12).map(" ".join), TEXT,
                   st.integers(min_value=30, max_value=1200).map(lambda n: "(" * n + "role = 'eng'" + ")" * n))
CHASE = st.fixed_dictionaries({}, optional={"interval": DURATION, "max_chases": JSON, "message": TEXT})
TEMPLATE = st.fixed_dictionaries(
    {"fields": st.one_of(st.lists(FIELD, max_size=3), JSON)},
    optional={"participants": st.one_of(st.lists(TEXT, max_size=3), JSON), "dataset": SLUG, "filter": FILTER,
              "participants_from": st.one_of(st.just("gathered.people"), TEXT), "chase": st.one_of(CHASE, JSON),
              "instructions": TEXT, "participant_field": TEXT})
STATE = st.one_of(TEMPLATE.map(lambda t: {**t, "type": "task"}),
                  st.fixed_dictionaries({"type": st.sampled_from(["conversation", "compile", "other"])},
                                        optional={"fields": st.lists(FIELD, max_size=2), "name": TEXT}),
                  JSON)
DEFINITION = st.fixed_dictionaries(
    {"id": SLUG, "name": TEXT},
    optional={"output_type": st.one_of(st.sampled_from(["report", "summary", "poem"]), TEXT), "template": TEMPLATE,
              "workflow": st.one_of(st.lists(STATE, max_size=3), JSON), "owner": TEXT, "review": JSON,
              "active": JSON, "description": TEXT, "assistant": st.one_of(st.just("default"), TEXT),
              "allowed_tools": JSON, "colour": JSON})
VALID_DEFINITION = {
    "id": "weekly-status", "name": "Weekly status", "owner": "lead@example.com", "output_type": "report",
    "template": {"instructions": "Hi!", "fields": [{"key": "shipped", "prompt": "What did you ship?"},
                                                  {"key": "mood", "prompt": "Mood?", "type": "choice",
                                                   "choices": ["good", "bad"], "required": False}],
                 "participants": ["alice@example.com", "bob@example.com"],
                 "chase": {"interval": "24h", "max_chases": 2, "message": "Reminder"}},
}
VALID_WORKFLOW = {
    "id": "review", "name": "Review", "workflow": [
        {"type": "conversation", "fields": [{"key": "people", "prompt": "Who?", "type": "list"}]},
        {"type": "task", "fields": [{"key": "verdict", "prompt": "OK?"}], "participants_from": "gathered.people"},
        {"type": "compile"}]}
DEFINITION_OR_JUNK = st.one_of(DEFINITION, JSON, mutated(VALID_DEFINITION), mutated(VALID_WORKFLOW))


def as_json_text(value: Any) -> str:
    """JSON text as a client would send it; ``\\ud800`` escapes stand for lone surrogates."""
    return json.dumps(value)
