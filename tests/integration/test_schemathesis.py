"""Schemathesis against the live app: uvicorn on a free port, the session's Redis, the admin's and a person's token.

Every operation of ``/openapi.json`` gets generated requests (valid ones and, by default, invalid
ones too); each answer must be no 5xx, a status the schema documents for that route, in a
documented content type, with a body and headers that match the documented schema. Bounded so
the whole file runs in under a minute: 12 examples per operation and token (SCHEMATHESIS_EXAMPLES=150
for a longer hunt), no deadline (a CI machine is slow at times), no example database.
"""

from __future__ import annotations

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bot.app import create_app
from bot.bootstrap import wire
from bot.queue import RQJobs
from bot.settings import Settings
from tests.integration.conftest import TOKEN

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
EXAMPLES = int(__import__("os").environ.get("SCHEMATHESIS_EXAMPLES", "12"))


def seeded(engine) -> None:  # noqa: ANN001
    """Something to find: a contact, a task, a run and a schedule (generated ids mostly miss them, which is fine)."""
    engine.import_contacts([{"id": "lee", "email": "lee@example.com", "name": "Lee", "preferred_channel": "web"}])
    engine.apply_definition({"id": "standup", "name": "Standup", "owner": "lee@example.com", "template": {
        "participants": ["lee@example.com"], "fields": [{"key": "today", "prompt": "Today?"}]}})
    engine.runs.trigger("standup")
    engine.schedules.create("standup", "0 9 * * MON")
    engine.import_dataset("team", [{"email": "lee@example.com"}])


def documented_schema() -> dict:
    """The app's OpenAPI document, read at collection time from an app that needs no Redis to describe itself
    (test_the_schema_tested_is_the_one_served checks the live server serves the same document)."""
    idle = redis.Redis(port=1)  # never asked: building the app and its schema sends no command
    return create_app(wire(idle, RQJobs(idle), {}), Settings(api_token=TOKEN)).openapi()


schema = schemathesis.openapi.from_dict(documented_schema())


@pytest.fixture(params=["admin", "person"])
def live(request, engine, base) -> tuple[str, str]:  # noqa: ANN001
    """The server's URL and a token: the admin's, or Lee's own (who then meets 403s and 404s, documented too)."""
    seeded(engine)
    return base, TOKEN if request.param == "admin" else engine.tokens.create("lee")[0]


def test_the_schema_tested_is_the_one_served(engine, base):  # noqa: ANN001
    assert httpx.get(f"{base}/openapi.json", timeout=10).json() == documented_schema()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_the_api_answers_as_its_schema_says(case, live):  # noqa: ANN001
    base, token = live
    case.call_and_validate(base_url=base, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
