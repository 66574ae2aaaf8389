"""The litellm adapter: the engine's ``Model`` port over ``litellm.completion`` and ``image_generation``.

The only module that imports litellm, and only on the first model call: importing it takes
seconds, and the CLI and the scripted path never need it. ``LITELLM_LOCAL_MODEL_COST_MAP`` is
set first so that neither the import nor a call fetches anything from the network. Retries are
the engine's (with backoff, across providers), so litellm's and the OpenAI client's are off.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import logging
import os
import threading
from typing import Any

from engine.ports import Completion, ModelError, ToolCall, Usage

log = logging.getLogger("taskbot.llm")

_lock = threading.Lock()
_litellm: Any = None
_loop: asyncio.AbstractEventLoop | None = None
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


def litellm() -> Any:
    """Import litellm once, offline."""
    global _litellm
    with _lock:
        if _litellm is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import litellm as lib

            lib.suppress_debug_info = True
            lib.telemetry = False
            _litellm = lib
    return _litellm


def _own_loop() -> None:
    """Give the main thread an event loop we close at exit.

    litellm's synchronous calls log through ``asyncio.get_event_loop()``, which in the main
    thread creates a loop that nobody closes (a ResourceWarning when it is collected).
    """
    global _loop
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        asyncio.get_running_loop()
        return
    except RuntimeError:
        pass
    if _loop is None:
        _loop = asyncio.new_event_loop()
        atexit.register(_loop.close)
    asyncio.set_event_loop(_loop)


def _error(exc: Exception) -> ModelError:
    lib = litellm()
    status = getattr(exc, "status_code", None)
    headers = getattr(exc, "litellm_response_headers", None) or {}
    retry_after: float | None = None
    try:
        retry_after = float(headers.get("retry-after")) if headers.get("retry-after") else None
    except (TypeError, ValueError):
        retry_after = None
    connection = isinstance(exc, lib.APIConnectionError | lib.Timeout)
    retryable = connection or status in RETRYABLE_STATUS
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    reason = (f"HTTP {status}: " if status else "") + text[:300]
    return ModelError(reason, retryable=retryable, retry_after=retry_after)


def _credentials(opts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if opts.get("api_base"):
        out["api_base"] = opts["api_base"]
    env = opts.get("api_key_env")
    if env:
        key = os.environ.get(env)
        if not key:
            raise ModelError(f"the environment variable {env} (the assistant's api_key_env) is not set",
                             retryable=False)
        out["api_key"] = key
    return out


#: Providers whose prompt cache needs explicit breakpoints (``cache_control``); OpenAI, DeepSeek and Gemini
#: cache long prefixes by themselves and only report what they read from the cache.
EXPLICIT_CACHE = frozenset({"anthropic", "bedrock", "vertex_ai", "vertex_ai_beta"})
EPHEMERAL = {"type": "ephemeral"}


def cache_marks(model: str, messages: list[dict[str, Any]],
                tools: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Mark the stable prefix of every call, the tool definitions and the system prompt (some 700 tokens
    re-sent on every turn), as a prompt-cache breakpoint where the provider wants one (litellm's
    ``supports_prompt_caching`` for a provider in :data:`EXPLICIT_CACHE`; any Claude model). Copies; the
    caller's lists are not changed. Tools come before the system prompt in the provider's prefix, so a
    mark on the last tool and one on the system prompt cache both."""
    lib = litellm()
    try:
        provider = lib.get_llm_provider(model)[1]
        # every Claude model takes breakpoints (litellm's local map flags only some of them)
        explicit = provider == "anthropic" or (provider in EXPLICIT_CACHE
                                               and bool(lib.utils.supports_prompt_caching(model)))
    except Exception:  # a model litellm does not know: send it as it is
        explicit = False
    if not explicit:
        return messages, tools
    if tools:
        tools = [*tools[:-1], {**tools[-1], "cache_control": EPHEMERAL}]
    if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
        system = {**messages[0], "content": [{"type": "text", "text": messages[0]["content"],
                                              "cache_control": EPHEMERAL}]}
        messages = [system, *messages[1:]]
    return messages, tools


def cached_tokens(usage: Any) -> int:
    """The prompt tokens read from the provider's cache: OpenAI's ``prompt_tokens_details.cached_tokens``
    (litellm puts Anthropic's ``cache_read_input_tokens`` there too), else Anthropic's own field."""
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    if cached is None:
        cached = getattr(usage, "cache_read_input_tokens", None)
    return int(cached or 0)


class LiteLLM:
    """Implements ``engine.ports.Model`` with litellm (any provider it supports)."""

    def complete(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                 **opts: Any) -> Completion:
        lib = litellm()
        messages, tools = cache_marks(model, messages, tools)
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "num_retries": 0, "max_retries": 0,
                                  "timeout": opts.get("timeout", 120), **_credentials(opts)}
        if tools:
            kwargs["tools"] = tools
        _own_loop()
        try:
            response = lib.completion(**kwargs)
        except Exception as exc:
            if getattr(exc, "status_code", None) is None and not isinstance(exc, lib.APIConnectionError | lib.Timeout):
                log.exception("model %s: unexpected error", model)
            raise _error(exc) from None
        message = response.choices[0].message
        calls = tuple(ToolCall(c.id or f"call_{i}", c.function.name or "", c.function.arguments or "{}")
                      for i, c in enumerate(message.tool_calls or []))
        usage = getattr(response, "usage", None)
        return Completion(message.content or "", calls, Usage(int(getattr(usage, "prompt_tokens", 0) or 0),
                                                              int(getattr(usage, "completion_tokens", 0) or 0),
                                                              cached_tokens(usage)))

    def image(self, model: str, prompt: str, **opts: Any) -> bytes:
        lib = litellm()
        _own_loop()
        try:
            response = lib.image_generation(model=model, prompt=prompt, response_format="b64_json", drop_params=True,
                                            max_retries=0,
                                            timeout=opts.get("timeout", 120), **_credentials(opts))
        except Exception as exc:
            raise _error(exc) from None
        item = response.data[0] if response.data else None
        if item is not None and getattr(item, "b64_json", None):
            return base64.b64decode(item.b64_json)
        if item is not None and getattr(item, "url", None):
            import httpx

            got = httpx.get(item.url, timeout=opts.get("timeout", 120))
            got.raise_for_status()
            return got.content
        raise ModelError(f"the model {model} returned no image", retryable=False)
