"""docs/extending.md's plugin examples run as written: the tool registers and answers, the output type validates."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from engine import model, outputs, tools
from tests.conftest import ROOT

DOC = ROOT / "docs" / "extending.md"


def blocks(marker: str) -> list[str]:
    return [t.content for t in MarkdownIt("commonmark").parse(DOC.read_text())
            if t.type == "fence" and t.info.strip() == "python" and marker in t.content]


@pytest.fixture(autouse=True)
def registries(monkeypatch):
    monkeypatch.setattr(tools, "REGISTRY", dict(tools.REGISTRY))
    monkeypatch.setattr(outputs, "REGISTRY", dict(outputs.REGISTRY))
    monkeypatch.setattr(model, "OUTPUT_TYPES", set(model.OUTPUT_TYPES))


def test_the_tool_example_registers_a_tool_that_answers_and_refuses():
    [code] = blocks("tools.register")
    exec(compile(code, str(DOC), "exec"), {})  # noqa: S102 - the documentation's own example
    tool = tools.REGISTRY["lookup_team"]
    assert tool.schema()["function"]["parameters"]["required"] == ["team"]
    assert tool.run(None, {"team": "core"}) == "team core: alice, bob"  # type: ignore[arg-type]
    with pytest.raises(tools.ToolError, match="no team 'ops'; known: core, web"):
        tool.run(None, {"team": "ops"})  # type: ignore[arg-type]


def test_the_output_type_example_lets_a_task_name_it():
    [code] = blocks("outputs.register")
    exec(compile(code, str(DOC), "exec"), {})  # noqa: S102
    assert outputs.get("standup_digest").instructions.startswith("Write a digest")
    definition = model.TaskDefinition.model_validate({
        "id": "digest", "name": "Digest", "output_type": "standup_digest",
        "template": {"participants": ["a@example.com"], "fields": [{"key": "shipped", "prompt": "Shipped?"}]}})
    assert definition.output_type == "standup_digest"
