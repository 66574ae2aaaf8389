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


def test_the_channel_example_registers_a_channel_contacts_and_the_app_can_use(monkeypatch):
    import channels
    from bot import app as webapp

    monkeypatch.setattr(channels, "REGISTRY", dict(channels.REGISTRY))
    monkeypatch.setattr(webapp, "PLUGIN_ROUTERS", [])
    extra = list(model.EXTRA_CHANNELS)
    try:
        [code] = blocks("channels.register")
        exec(compile(code, str(DOC), "exec"), {})  # noqa: S102
        assert channels.REGISTRY["pager"](None).name == "pager"
        [router] = webapp.PLUGIN_ROUTERS
        assert [r.path for r in router.routes] == ["/pager/inbound"]
        contact = model.Contact.model_validate({"email": "pat@example.com", "preferred_channel": "pager",
                                                "addresses": "pager=P-77"})
        assert channels.REGISTRY["pager"](None).resolve(contact) == "P-77"
        assert "pager" in model.Assistant(id="helper").channels
    finally:
        model.EXTRA_CHANNELS[:] = extra
    with pytest.raises(ValueError, match="unknown channel 'pager'"):
        model.Contact.model_validate({"email": "pat@example.com", "preferred_channel": "pager"})


@pytest.mark.parametrize(("addresses", "refusal"), [
    ({"slack": "U1"}, "'slack' is a built-in channel: give its address in its own field"),
    ("pager", "write each address as channel=address, separated by ;"),
    ({"beeper": "B1"}, "unknown channel 'beeper'"),
])
def test_addresses_that_cannot_be_used_are_refused_saying_why(addresses, refusal):
    with pytest.raises(ValueError, match=refusal) as refused:
        model.Contact.model_validate({"email": "pat@example.com", "addresses": addresses})
    assert "addresses" in str(refused.value)

