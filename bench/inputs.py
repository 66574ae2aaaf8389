"""What bounded input costs: reading a stored definition whose filter is as large as allowed (each read
validates the definition again), and how fast the worst inputs are refused (issue 10's probes)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from engine import filters
from engine.bounds import check_value
from engine.errors import InvalidInput
from engine.filters import FilterError, parse_filter

from .harness import redis_server
from .scenarios import engine_for


def timed(action: Callable[[], Any], repeat: int) -> float:
    """Median milliseconds of ``action`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def largest_filter() -> str:
    """Near both limits at once: 9,9xx characters, 800 comparisons, nested 3 deep."""
    terms = [f"(team{i % 7} = 'core' or level >= {i})" for i in range(400)]
    text = " and ".join(terms)
    while len(text) > filters.MAX_CHARS:
        terms.pop()
        text = " and ".join(terms)
    return text


def refused_in(action: Callable[[], Any], repeat: int) -> float:
    def attempt() -> None:
        try:
            action()
        except (InvalidInput, FilterError):
            return
        raise AssertionError("not refused")

    return timed(attempt, repeat)


def definition_reads(repeat: int = 50) -> list[dict[str, Any]]:
    """``GET /api/tasks/{id}``'s engine work (Store.get_definition), the filter parsed on every read or once."""
    text = largest_filter()
    rows = []
    with redis_server() as server:
        engine = engine_for(server.url)
        engine.import_dataset("team", [{"team0": "core", "level": 3}])
        engine.apply_definition(json.dumps({"id": "big", "name": "Big", "template": {
            "fields": [{"key": "x", "prompt": "x?"}], "dataset": "team", "filter": text}}))
        parse_filter.cache_clear()

        def uncached() -> None:
            parse_filter.cache_clear()
            engine.store.get_definition("big")

        rows.append({"read": "definition, filter parsed on every read (before)", "filter chars": len(text),
                     "comparisons": filters._terms(parse_filter(text)), "median ms": timed(uncached, repeat)})
        engine.store.get_definition("big")
        rows.append({"read": "definition, parsed filter cached (now)", "filter chars": len(text),
                     "comparisons": filters._terms(parse_filter(text)),
                     "median ms": timed(lambda: engine.store.get_definition("big"), repeat)})
        engine.r.close()
    return rows


def refusals(repeat: int = 20) -> list[dict[str, Any]]:
    """The issue's probes, refused: how long the refusal takes; and what the unbounded parse used to cost."""
    deep_filter = "(" * 1000 + "a = 1" + ")" * 1000
    huge_filter = " and ".join(f"f{i} = {i}" for i in range(100_000))

    def unbounded_parse() -> None:  # what validating the 100,000 terms cost before the size limit
        filters._build(filters._PARSER.parse(huge_filter))

    deep: Any = "leaf"
    for _ in range(260):
        deep = {"a": deep}
    from engine.definitions import parse_yaml

    bomb = "\n".join(['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
                     + [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)])
    from engine.schedules import check

    return [
        {"input": "filter 1,000 parentheses deep", "refused in ms": refused_in(lambda: parse_filter(deep_filter),
                                                                               repeat)},
        {"input": "filter of 100,000 terms (1.9 MB)", "refused in ms": refused_in(lambda: parse_filter(huge_filter),
                                                                                  repeat)},
        {"input": "  the same, parsed without the size limit (before)", "refused in ms": timed(unbounded_parse, 1)},
        {"input": "run data 260 levels deep", "refused in ms": refused_in(lambda: check_value({"data": deep}), repeat)},
        {"input": "YAML alias bomb (billion laughs)", "refused in ms": refused_in(lambda: parse_yaml(bomb), repeat)},
        {"input": 'cron "0 0 31 2 *" (never fires)', "refused in ms": refused_in(lambda: check("0 0 31 2 *", "UTC"),
                                                                                 repeat)},
    ]
