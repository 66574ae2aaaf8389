"""The channels' send limiter on a real Redis: N calls in any window across threads, all-or-nothing, holds."""

from __future__ import annotations

import threading
import time

import pytest

from channels.ratelimit import MARGIN_MS, Limiter, Rule, Wait


def busiest(times: list[float], window: float) -> int:
    """The most calls that fell in any window of ``window`` seconds."""
    ordered = sorted(times)
    return max(sum(1 for t in ordered[i:] if t < start + window) for i, start in enumerate(ordered))


def test_threads_sharing_a_limit_never_exceed_it_in_any_window(r):
    rule = Rule.per(5, 0.3)
    taken: list[float] = []
    lock = threading.Lock()

    def caller() -> None:
        limiter = Limiter(r)  # each as its own process would be: nothing shared but Redis
        for _ in range(10):
            limiter.take([("test:rate", rule)], max_wait=5)
            with lock:
                taken.append(time.monotonic())

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 40
    assert busiest(taken, 0.3) <= 5
    # 40 calls at 5 per 0.3 s: the 8th window's calls cannot start before 7 windows have passed
    assert max(taken) - min(taken) >= 7 * 0.3


def test_a_call_needs_every_limit_and_a_refusal_takes_none(r):
    limiter = Limiter(r)
    chat_a, chat_b, bot = ("test:chat:a", Rule.per(1, 5)), ("test:chat:b", Rule.per(1, 5)), ("test:bot", Rule.per(2, 5))
    assert limiter.try_take([bot, chat_a]) == 0
    wait = limiter.try_take([bot, chat_a])  # chat a is full: the bot's second slot stays free
    assert 4.9 < wait <= 5 + MARGIN_MS / 1000
    assert limiter.try_take([bot, chat_b]) == 0
    assert limiter.try_take([bot, ("test:chat:c", Rule.per(1, 5))]) > 4.9  # now the bot is full


def test_a_slot_further_off_than_the_caller_will_wait_raises_and_takes_nothing(r):
    limiter = Limiter(r)
    limit = ("test:rate", Rule.per(1, 10))
    limiter.take([limit], max_wait=0)
    started = time.monotonic()
    with pytest.raises(Wait) as raised:
        limiter.take([limit], max_wait=1)
    assert time.monotonic() - started < 1  # it did not sit out a wait it could not finish
    assert 9 < raised.value.seconds <= 10.1
    assert r.zcard("test:rate") == 1


def test_a_call_counts_from_when_it_finished(r):
    limiter = Limiter(r)
    limit = [("test:rate", Rule.per(1, 0.5))]
    with limiter.slot(limit, max_wait=0):
        time.sleep(0.3)  # a slow call: the provider may have had it only now
    assert 0.45 < limiter.try_take(limit) <= 0.5 + MARGIN_MS / 1000  # a window from the end, not the start


def test_a_hold_keeps_the_limit_closed_for_its_time(r):
    limiter = Limiter(r)
    limiter.hold("test:rate", 0.5)
    assert 0.4 < limiter.try_take([("test:rate", Rule.per(100, 1))]) <= 0.5
    time.sleep(0.5)
    assert limiter.try_take([("test:rate", Rule.per(100, 1))]) == 0


@pytest.mark.parametrize(("per_second", "limit", "window_s"), [(30, 30, 1), (1, 1, 1), (0.5, 1, 2), (2.5, 2, 0.8)])
def test_a_rate_is_whole_calls_in_a_window(per_second, limit, window_s):
    rule = Rule.rate(per_second)
    assert rule.limit == limit
    assert rule.window_ms == pytest.approx(window_s * 1000 + MARGIN_MS)
