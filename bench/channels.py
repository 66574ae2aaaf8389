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
            wait(lambda: len(fake.sent()) >= n, timeout=180 + 3 * n / rate)  # a deferral costs a lease (60 s)
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


def slack(n: int, n_workers: int, post_rate: float = 5.0) -> dict[str, Any]:
    """N people found by email (none linked by id) opened by DM; the fake enforces Slack's limits, counts 429s."""
    from tests.fakes.slack_api import FakeSlack

    fake = FakeSlack(post_rate=post_rate).start()
    for i in range(n):
        fake.add_user(f"U{i:06d}", f"p{i}@example.com")
    env = {"SLACK_BOT_TOKEN": fake.token, "TASKBOT_SLACK_API_URL": fake.api_url,
           "TASKBOT_SLACK_POST_RATE": str(post_rate)}
    try:
        with redis_server() as server, workers(server.url, n_workers, scheduler=True, env=env):
            engine = engine_for(server.url)
            define(engine, [{"email": f"p{i}@example.com", "preferred_channel": "slack"} for i in range(n)])
            t0 = time.time()
            rid = engine.runs.trigger("bench")
            wait(lambda: len(fake.posts()) >= n, timeout=180 + 3 * n / post_rate)
            wait(lambda: opened(engine, rid) >= n)
            ats = sorted(c.at for c in fake.calls_to("chat.postMessage") if c.status == 200)
    finally:
        fake.stop()
    limit = max(1, int(post_rate))
    window = limit / post_rate
    allowed = (n / limit - 1) * window  # the least time "limit posts in any window" allows for n posts
    seconds = ats[-1] - t0
    return {"n": n, "workers": n_workers, "seconds": round(seconds, 2), "allowance_s": round(allowed, 2),
            "ratio": round(allowed / seconds, 3), "posts_per_s": round(sustained(ats, window), 2),
            "post_rate": post_rate, "429s": fake.limited, "users.list": len(fake.calls_to("users.list")),
            "lookupByEmail": len(fake.calls_to("users.lookupByEmail")),
            "conversations.open": len(fake.calls_to("conversations.open"))}


def email(n: int, n_workers: int, idle: float, *, starttls: bool = False) -> dict[str, Any]:
    """N openings by mail to a real aiosmtpd server (with a login, and STARTTLS when asked), over kept sessions
    (``idle`` seconds) or one session per message (``idle=0``, how taskbot sent before)."""
    import logging
    import ssl
    import tempfile
    from pathlib import Path

    from tests.fakes.mail import SmtpServer, self_signed

    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's own chatter, once per session
    with tempfile.TemporaryDirectory() as folder:
        env = {"TASKBOT_SMTP_USER": "taskbot", "TASKBOT_SMTP_PASSWORD": "bench-secret",
               "TASKBOT_EMAIL_FROM": "taskbot <tasks@example.com>", "TASKBOT_SMTP_IDLE": str(idle)}
        context = None
        if starttls:
            cert, key = self_signed(Path(folder))
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            env.update(TASKBOT_SMTP_STARTTLS="true", SSL_CERT_FILE=str(cert))
        smtp = SmtpServer(users={"taskbot": "bench-secret"}, tls=context).start()
        env.update(TASKBOT_SMTP_HOST="127.0.0.1", TASKBOT_SMTP_PORT=str(smtp.port))
        try:
            with redis_server() as server, workers(server.url, n_workers, env=env):
                engine = engine_for(server.url)
                define(engine, [{"email": f"p{i}@example.com", "preferred_channel": "email"} for i in range(n)])
                t0 = time.time()
                rid = engine.runs.trigger("bench")
                wait(lambda: len(smtp.messages) >= n, timeout=600)
                wait(lambda: opened(engine, rid) >= n)
                ats = sorted(m.at for m in smtp.messages)
                sessions = smtp.sessions_used
                duplicates = len(smtp.messages) - len({str(m.message["Message-ID"]) for m in smtp.messages})
        finally:
            smtp.stop()
    return {"n": n, "workers": n_workers, "security": "STARTTLS + login" if starttls else "login",
            "session": f"kept ({idle:g} s idle)" if idle else "one per message",
            "seconds": round(ats[-1] - t0, 2), "messages_per_s": round(len(ats) / (ats[-1] - ats[0]), 1),
            "smtp_sessions": sessions, "duplicates": duplicates}
