"""Definitions (mappings and YAML/JSON text): stored and read back, or refused naming the field; never a crash."""

from __future__ import annotations

from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from engine import keys
from engine.definitions import load_definition_text
from engine.errors import InvalidInput
from engine.model import TaskDefinition
from tests.fuzz.conftest import FUZZ
from tests.fuzz.strategies import DEFINITION_OR_JUNK, TEXT, as_json_text

VALID = """\
id: weekly-status
name: Weekly status
owner: lead@example.com
template:
  instructions: Hi!
  fields:
    - {key: shipped, prompt: What did you ship?}
    - {key: blockers, prompt: Anything blocking you?, required: false}
  participants: [alice@example.com, bob@example.com]
  chase: {interval: 24h, max_chases: 2}
"""


def refusal_names_its_field(exc: InvalidInput) -> None:
    assert exc.field, f"a refusal without a field: {exc.reason!r}"
    assert exc.reason
    str(exc).encode("utf-8")  # sendable as it is: no lone surrogate quoted back


@FUZZ
@given(DEFINITION_OR_JUNK)
def test_any_mapping_is_stored_and_reads_back_or_is_refused_naming_the_field(engine, data: Any) -> None:
    before = engine.r.hgetall(keys.DEFS)  # by value: a large hash's DUMP changes as Redis rehashes it
    try:
        definition = engine.apply_definition(data) if isinstance(data, dict) else None
    except InvalidInput as exc:
        refusal_names_its_field(exc)
        assert engine.r.hgetall(keys.DEFS) == before
        event(f"refused: {exc.field.split('.')[0].split('[')[0]}")
        return
    if definition is None:
        return
    event("stored")
    assert engine.store.get_definition(definition.id) == definition
    assert definition.id in {d.id for d in engine.store.list_definitions()}
    definition.states()


@st.composite
def yaml_text(draw: st.DrawFn) -> str:
    """A valid task file with a few characters or lines changed, inserted or dropped, or JSON of any shape."""
    if draw(st.booleans()):
        return as_json_text(draw(DEFINITION_OR_JUNK))
    lines = VALID.splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(lines)))
        edit = draw(st.sampled_from(["insert", "replace", "drop", "chars"]))
        piece = draw(st.one_of(TEXT, st.sampled_from(["  - &a x", "  x: *a", "<<: *a", "? [1]\n: 2", "{a: 1, a: 2}",
                                                       "!!python/object:os.system x", "date: 2001-13-45",
                                                       "n: !!int x", "\t- tab", "---", "..."])))
        if edit == "insert" or not lines:
            lines.insert(at, piece)
        elif edit == "replace":
            lines[min(at, len(lines) - 1)] = piece
        elif edit == "drop":
            lines.pop(min(at, len(lines) - 1))
        else:
            line = lines[min(at, len(lines) - 1)]
            cut = draw(st.integers(min_value=0, max_value=len(line)))
            lines[min(at, len(lines) - 1)] = line[:cut] + piece + line[cut:]
    return "\n".join(lines) + "\n"


@FUZZ
@given(yaml_text())
def test_any_task_file_loads_or_is_refused_naming_the_field_or_line(text: str) -> None:
    try:
        definition = load_definition_text(text)
    except InvalidInput as exc:
        refusal_names_its_field(exc)
        event(f"refused: {exc.reason.split(':')[0][:30]}")
        return
    event("loaded")
    assert isinstance(definition, TaskDefinition)
    assert TaskDefinition.model_validate_json(definition.model_dump_json(exclude_none=True)) == definition
