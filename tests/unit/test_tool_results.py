"""What the model reads back from a tool (engine.tools.execute): text, never more than MAX_RESULT, refusals too."""

from __future__ import annotations

from engine import tools


def run(result_or_error) -> tuple[str, bool]:
    def body(ctx, args):
        if isinstance(result_or_error, Exception):
            raise result_or_error
        return result_or_error

    return tools.execute(None, tools.Tool("t", "a plugin's tool", {"type": "object"}, body), "{}")  # type: ignore[arg-type]


def test_a_result_that_is_no_text_is_read_as_json_and_none_says_so():
    assert run({"team": ["alice", "bob"]}) == ('{"team": ["alice", "bob"]}', True)
    assert run(None) == ("(no result)", True)


def test_a_long_refusal_is_cut_like_a_long_result():
    said, ok = run(tools.ToolError("x" * 20_000))
    assert not ok
    assert said == "error: " + "x" * (tools.MAX_RESULT - len("error: ")) + "\n[cut]"
    assert run("y" * 20_000)[0] == "y" * tools.MAX_RESULT + "\n[cut]"
