"""The channels at their providers' limits: openings through Telegram, Slack and email, against the allowance.

Each measurement starts a private redis-server, the provider's side (the tests' fake Bot API or
Web API, which answer 429 past the provider's limits exactly as the tests rely on; a real
aiosmtpd server for email) and real worker processes, triggers one task to N people on that
channel, and reads what the provider received. The reference is what the provider allows: for
Telegram 30 messages a second, for Slack chat.postMessage's workspace rate (calls to other
methods count against their own tiers), for email the same server with a new connection per
message (how taskbot sent before sessions were reused).
"""

from __future__ import annotations

import json
import time
from typing import Any

from .harness import redis_server, wait, workers
from .scenarios import engine_for

FIELDS = [{"key": "answer", "prompt": "Your answer?"}]


def define(engine: Any, contacts: list[dict[str, str]]) -> None:
    engine.import_contacts(contacts)
    engine.apply_definition(json.dumps({"id": "bench", "name": "Bench", "owner": "owner@example.com", "template": {
        "fields": FIELDS, "participants": [c["email"] for c in contacts], "chase": {"interval": "1h"}}}))


def opened(engine: Any, rid: str) -> int:
    return sum(1 for s in engine.store.subs_fields(engine.store.sub_ids(rid)) if s.get("status") == "running")


def telegram(n: int, n_workers: int, rate: float = 30.0) -> dict[str, Any]:
    """N openings, one per private chat, with ``n_workers`` processes sending; the fake counts 429s."""
    from tests.fakes.telegram_api import FakeTelegram

    fake = FakeTelegram(rate=rate).start()
    env = {"TELEGRAM_BOT_TOKEN": fake.token, "TASKBOT_TELEGRAM_API_URL": fake.api_url,
           "TASKBOT_TELEGRAM_RATE": str(rate)}
    try:
        with redis_server() as server, workers(server.url, n_workers, env=env):
            engine = engine_for(server.url)
            define(engine, [{"email": f"p{i}@example.com", "telegram_chat_id": str(700000 + i),
                             "preferred_channel": "telegram"} for i in range(n)])
            t0 = time.time()
            rid = engine.runs.trigger("bench")
            wait(lambda: len(fake.sent()) >= n, timeout=60 + 3 * n / rate)
            wait(lambda: opened(engine, rid) >= n)
            ats = sorted(c.at for c in fake.calls_to("sendMessage") if c.status == 200)
    finally:
        fake.stop()
    per_s = sustained(ats, 1.0)
    return {"n": n, "workers": n_workers, "seconds": round(ats[-1] - t0, 2), "messages_per_s": round(per_s, 1),
            "allowance_per_s": rate, "ratio": round(per_s / rate, 3), "429s": fake.flood_refusals}


def sustained(ats: list[float], window: float) -> float:
    """Calls a second as the provider sees them: N over first-to-last plus one window. A sender that keeps to
    "R in any window" needs at least N/R - window for N calls, so this is at most R, and R only at its best."""
    return len(ats) / (ats[-1] - ats[0] + window)
