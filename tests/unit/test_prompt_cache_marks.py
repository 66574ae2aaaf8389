"""Which model calls carry prompt-cache breakpoints, and where (bot.llm.cache_marks; litellm's own model map)."""

from __future__ import annotations

import copy

from bot.llm import cache_marks

SYSTEM = {"role": "system", "content": "You are helper."}
USER = {"role": "user", "content": "Hi"}
TOOLS = [{"type": "function", "function": {"name": "record_data", "parameters": {"type": "object"}}},
         {"type": "function", "function": {"name": "complete_subtask", "parameters": {"type": "object"}}}]


def test_a_claude_model_gets_breakpoints_on_the_last_tool_and_the_system_prompt_and_the_callers_lists_stay():
    messages, tools = [SYSTEM, USER], copy.deepcopy(TOOLS)
    marked, marked_tools = cache_marks("anthropic/claude-sonnet-4-20250514", messages, tools)
    assert marked[0] == {"role": "system", "content": [{"type": "text", "text": "You are helper.",
                                                        "cache_control": {"type": "ephemeral"}}]}
    assert marked[1] == USER
    assert "cache_control" not in marked_tools[0]
    assert marked_tools[1]["cache_control"] == {"type": "ephemeral"}
    assert messages == [SYSTEM, USER]  # copies: the conversation as stored is unchanged
    assert tools == TOOLS


def test_openai_caches_by_itself_so_its_calls_go_unmarked():
    messages, tools = cache_marks("openai/gpt-4o", [SYSTEM, USER], TOOLS)
    assert messages == [SYSTEM, USER]
    assert tools == TOOLS


def test_a_model_litellm_does_not_know_goes_unmarked():
    messages, tools = cache_marks("openai/bench-model-nobody-knows", [SYSTEM, USER], TOOLS)
    assert messages == [SYSTEM, USER]
    assert tools == TOOLS
