"""The API against its own OpenAPI schema: schemathesis on the live app, and ``Allow`` on a 405.

Schemathesis generates requests from ``/openapi.json`` (valid ones and, in its coverage phase,
edge cases) and sends them over real HTTP to uvicorn with a real Redis behind; every answer must
be documented (status code, content type, body schema) and none a 5xx. Bounded: a few examples
per operation, so the whole file runs in well under a minute here.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.conftest import TOKEN

METHODS = {"get", "put", "post", "delete", "patch"}


def test_a_method_a_path_does_not_take_is_405_with_the_methods_it_does(api):
    paths = api.get("/openapi.json").json()["paths"]
    samples = {"{task_id}": "weekly", "{run_id}": "r1", "{schedule_id}": "s1", "{contact_id}": "lee",
               "{name}": "team", "{deliverable_id}": "d1"}
    checked = 0
    for path, operations in paths.items():
        declared = {m for m in operations if m in METHODS}
        url = path
        for placeholder, value in samples.items():
            url = url.replace(placeholder, value)
        for method in sorted(METHODS - declared):
            res = api.request(method.upper(), url)
            assert res.status_code == 405, (method, path, res.status_code)
            allowed = {m.strip().lower() for m in res.headers["allow"].split(",")}
            assert allowed - {"head"} == declared, (method, path, res.headers["allow"])
            checked += 1
    assert checked > 30


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
WEEKLY = {"id": "weekly", "name": "Weekly status", "owner": "lee@example.com",
          "template": {"participants": ["lee@example.com"], "fields": [{"key": "shipped", "prompt": "Shipped?"}]}}
#: Per operation and mode: bounded so that the whole run stays within a minute or two of CI.
EXAMPLES = int(os.environ.get("TASKBOT_SCHEMATHESIS_EXAMPLES", "12"))


@pytest.mark.parametrize("who", ["admin", "person"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_is_a_documented_one(engine, base, mode, who):
    """Requests made from the schema (valid ones, then invalid ones), with the admin's token or a person's,
    get only answers the schema documents.

    Schemathesis' pytest integration (``from_fixture``) does not run under pytest 9, so each
    operation's strategy is run by Hypothesis here; failures are gathered across operations.
    """
    engine.import_contacts([{"id": "lee", "email": "lee@example.com", "name": "Lee", "preferred_channel": "web"}])
    engine.import_dataset("team", [{"email": "lee@example.com"}])
    engine.apply_definition(WEEKLY)
    engine.runs.trigger("weekly", kind="api")
    engine.schedules.create("weekly", "0 9 * * MON", "UTC", {})
    token = TOKEN if who == "admin" else engine.tokens.create("lee")[0]
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS, timeout=10)

        try:
            run()
        except Unsatisfiable:  # negative mode, an operation with nothing to make invalid (GET /healthz)
            continue
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every operation's failure, together
            failures.append(f"{operation.label}: {exc}")
    assert operations >= 25
    assert not failures, "\n\n".join(failures)


def described(schema: dict, components: dict) -> bool:
    """Whether a schema tells a client the shape: a named model, an object with properties, a list of such."""
    if "$ref" in schema:
        return described(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    if "anyOf" in schema or "oneOf" in schema:
        return all(described(s, components) for s in schema.get("anyOf", schema.get("oneOf", []))
                   if s.get("type") != "null")
    if schema.get("type") == "array":
        return described(schema.get("items", {}), components)
    if schema.get("type") == "object" or not schema:  # a map says what its values are (a dataset's row)
        return bool(schema.get("properties")) or "additionalProperties" in schema
    return True  # a string, a number ...


def test_no_api_body_is_a_bare_object(api):
    spec = api.get("/openapi.json").json()
    components = spec["components"]["schemas"]
    bare = []
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, op in operations.items():
            bodies = {"request": op.get("requestBody", {}).get("content", {}).get("application/json", {})}
            bodies |= {status: answer.get("content", {}).get("application/json", {})
                       for status, answer in op["responses"].items()}
            for where, content in bodies.items():
                if content and not described(content["schema"], components):
                    bare.append(f"{method.upper()} {path} {where}")
            assert {"401"} <= set(op["responses"]), (method, path)
            if "{" in path:
                assert "404" in op["responses"] or "403" in op["responses"], (method, path)
    assert bare == []
    for model in ("Run", "RunSummary", "Subtask", "Schedule", "Notification", "ScheduleRequest", "TemplateSpec"):
        assert components[model]["properties"], model
