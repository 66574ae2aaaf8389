"""The composition root: builds the engine with real adapters from settings, once per process."""

from __future__ import annotations

import functools
import logging

import redis

from bot.llm import LiteLLM  # cheap: litellm itself is imported on the first model call
from bot.queue import RQJobs
from channels import build_channels
from engine.agent import AgentConfig
from engine.engine import Engine

from .reconnect import command_retry
from .settings import Settings

log = logging.getLogger("taskbot")


def connect(url: str) -> redis.Redis:
    """A client that rides out a Redis restart: dropped connections are retried (``command_retry``),
    an idle pooled one is checked before use, and a connect gives up after 5 s (a host that is gone)."""
    return redis.Redis.from_url(url, health_check_interval=30, socket_connect_timeout=5, socket_keepalive=True,
                                retry=command_retry())


def build_engine(settings: Settings | None = None, *, announce: bool = False) -> Engine:
    """Wire Redis, RQ, the configured channels and the engine.

    Args:
        settings: configuration; read from the environment when omitted.
        announce: log once which channels are off and why (at service start-up).
    """
    settings = settings or Settings()
    r = connect(settings.redis_url)
    channels, off = build_channels(settings)
    if announce:
        for line in off:
            log.info(line)
    agent = AgentConfig(history=settings.history_messages, max_steps=settings.max_turn_steps,
                        retries=settings.model_retries, backoff=settings.model_backoff, timeout=settings.model_timeout)
    return Engine(r, RQJobs(r), channels, default_model=settings.model, lease_seconds=settings.lease_seconds,
                  batch_size=settings.batch_size, public_url=settings.base_url,
                  webhook_urls=[u.strip() for u in settings.webhook_urls.split(",") if u.strip()],
                  model=LiteLLM(), agent=agent, max_concurrent=settings.max_concurrent_tasks)


@functools.cache
def engine() -> Engine:
    """The process's engine, for jobs (which receive only primitive arguments)."""
    return build_engine()
