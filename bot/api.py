"""The REST API under ``/api`` (SPEC §8): definitions, runs, the Web Trigger, schedules, the directory.

Every route needs the bearer token (checked from the headers by :class:`~bot.guards.ApiTokenGate`
before any body is read, and again here for the OpenAPI schema) and a body that can be stored.
Routes are plain ``def``: FastAPI runs them in its threadpool, so Redis never blocks the loop.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from engine.bounds import check_value
from engine.engine import Engine
from engine.errors import InvalidInput
from engine.idempotency import KEY as IDEMPOTENCY_KEY
from engine.idempotency import trigger_once
from engine.schedules import schedule_view

from .guards import CHALLENGE, bearer_refusal


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(engine_of)]


class BadParameter(InvalidInput):
    """An ``InvalidInput`` about a path or query parameter, so the 422's ``loc`` points there."""

    def __init__(self, where: str, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.where = where


bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer $TASKBOT_API_TOKEN")


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """Every /api route: the bearer token must match; with no token configured the API stays closed.

    :class:`~bot.guards.ApiTokenGate` refuses first, before any body is read; this dependency
    documents the scheme in the OpenAPI schema and holds for an app mounted without the gate.
    """
    given = f"Bearer {credentials.credentials}" if credentials is not None else None
    refusal = bearer_refusal(request.app.state.settings, given)
    if refusal is not None:
        raise HTTPException(401, refusal, headers=CHALLENGE)


async def storable_body(request: Request) -> None:
    """Every /api route: a JSON body with a lone surrogate or nested deeper than 32 is a 422 naming the place.

    Checked on the body FastAPI parsed (Starlette keeps it), before any route sees it: a str field
    of a request model takes a lone surrogate as it is, and Redis could not store it.
    """
    if "json" not in request.headers.get("content-type", "") or not await request.body():
        return
    try:
        data = await request.json()
    except (ValueError, RecursionError):
        return  # FastAPI itself answers this one (422 or 400)
    check_value(data)


api = APIRouter(prefix="/api", dependencies=[Depends(require_token), Depends(storable_body)],
                responses={401: {"description": "missing or wrong bearer token"}})

DefinitionBody = Annotated[dict[str, Any], Body(description="a task definition (SPEC §3), as JSON")]
ObjectBody = Annotated[dict[str, Any], Body()]
RowsBody = Annotated[list[Any] | dict[str, Any], Body(description='row objects, or {"rows": [...]}')]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: dict[str, Any] = Field(default_factory=dict, description="gathered data the run starts with")


class TriggerRequest(RunRequest):
    task_definition_id: str
    callback_url: HttpUrl | None = Field(
        None, description="gets the run object, signed, when the run ends; http(s) only, and no private, loopback or "
                          "link-local address unless TASKBOT_CALLBACK_ALLOW_PRIVATE=true (SPEC §11)")


class RunStarted(BaseModel):
    run_id: str


def definition_json(definition: Any) -> dict[str, Any]:
    data: dict[str, Any] = definition.model_dump(mode="json", exclude_none=True)
    return data


def started(rid: str, response: Response) -> RunStarted:
    response.headers["Location"] = f"/api/runs/{rid}"
    return RunStarted(run_id=rid)


@api.get("/tasks", tags=["tasks"])
def list_tasks(engine: EngineDep) -> list[dict[str, Any]]:
    return [definition_json(d) for d in engine.store.list_definitions()]


@api.post("/tasks", status_code=201, tags=["tasks"])
def create_task(body: DefinitionBody, engine: EngineDep) -> dict[str, Any]:
    """Validate and store a definition (refused whole, field named, when wrong); same id replaces."""
    return definition_json(engine.apply_definition(body))


@api.get("/tasks/{task_id}", tags=["tasks"])
def get_task(task_id: str, engine: EngineDep) -> dict[str, Any]:
    return definition_json(engine.store.get_definition(task_id))


@api.put("/tasks/{task_id}", tags=["tasks"])
def put_task(task_id: str, body: DefinitionBody, engine: EngineDep) -> dict[str, Any]:
    if "id" in body and body["id"] != task_id:
        raise InvalidInput("id", f"must match the task id in the URL ({task_id!r})")
    return definition_json(engine.apply_definition({**body, "id": task_id}))


@api.delete("/tasks/{task_id}", status_code=204, tags=["tasks"])
def delete_task(task_id: str, engine: EngineDep) -> Response:
    engine.store.delete_definition(task_id)
    return Response(status_code=204)


IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", description="a key of your own (1-255 visible ASCII characters): a request sent "
    "again with the same key starts no second run, it answers the first run's id (kept for a day)")]


def trigger(engine: Engine, response: Response, task_id: str, data: dict[str, Any] | None, kind: str,
            key: str | None, callback_url: str | None = None) -> RunStarted:
    if key is None:
        return started(engine.runs.trigger(task_id, data, kind=kind, callback_url=callback_url), response)
    if not IDEMPOTENCY_KEY.match(key):
        raise BadParameter("header", "Idempotency-Key", "must be 1 to 255 visible ASCII characters")
    rid, new = trigger_once(engine.runs, key, task_id, data, kind=kind, callback_url=callback_url)
    if not new:
        response.headers["Idempotent-Replayed"] = "true"
    return started(rid, response)


@api.post("/tasks/{task_id}/runs", status_code=202, tags=["runs"],
          responses={409: {"description": "the task is inactive, or the Idempotency-Key started another task"}})
def start_run(task_id: str, engine: EngineDep, response: Response,
              body: Annotated[RunRequest | None, Body()] = None, idempotency_key: IdempotencyKey = None
              ) -> RunStarted:
    """Start a run of the task; retry safely with the same ``Idempotency-Key``."""
    return trigger(engine, response, task_id, body.data if body else None, "api", idempotency_key)


@api.post("/trigger", status_code=202, tags=["runs"],
          responses={409: {"description": "the task is inactive, or the Idempotency-Key started another task"}})
def web_trigger(body: TriggerRequest, engine: EngineDep, response: Response,
                idempotency_key: IdempotencyKey = None) -> RunStarted:
    """The Web Trigger: start a run of ``task_definition_id`` with ``data``; ``callback_url`` gets the run
    object when it ends (its host is resolved here, so this is a plain ``def`` run in the threadpool).

    Retrying safely: a caller that got no answer (a timeout, a 503) sends the request again
    with the same ``Idempotency-Key`` header; it gets the same ``run_id`` and no second run.
    """
    callback = str(body.callback_url) if body.callback_url is not None else None
    return trigger(engine, response, body.task_definition_id, body.data, "web", idempotency_key, callback)


@api.get("/runs", tags=["runs"])
def list_runs(engine: EngineDep, task_id: str | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    """Newest first, without sub-tasks (``GET /api/runs/{id}`` has them)."""
    return engine.list_runs(task_id, limit)


@api.get("/runs/{run_id}", tags=["runs"])
def get_run(run_id: str, engine: EngineDep) -> dict[str, Any]:
    return engine.run_view(run_id)


@api.get("/deliverables/{deliverable_id}/file", tags=["runs"], response_class=Response,
         responses={200: {"content": {"application/octet-stream": {}}, "description": "the file"}})
def get_deliverable_file(deliverable_id: str, engine: EngineDep) -> Response:
    """An image or file deliverable's bytes."""
    name, media_type, data = engine.deliverable_file(deliverable_id)
    return Response(data, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@api.post("/runs/{run_id}/cancel", tags=["runs"], responses={409: {"description": "the run is final"}})
def cancel_run(run_id: str, engine: EngineDep) -> dict[str, Any]:
    engine.runs.cancel(run_id)
    return engine.run_view(run_id)


@api.post("/runs/{run_id}/approve", tags=["runs"], responses={409: {"description": "not awaiting review"}})
def approve_run(run_id: str, engine: EngineDep) -> dict[str, Any]:
    engine.runs.approve(run_id)
    return engine.run_view(run_id)


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_id: str
    cron: str = Field(description='five fields: minute hour day-of-month month day-of-week, e.g. "0 9 * * MON"')
    timezone: str = Field("UTC", description="an IANA time zone, e.g. Europe/Paris")
    data: dict[str, Any] = Field(default_factory=dict, description="gathered data each run starts with")


@api.get("/schedules", tags=["schedules"])
def list_schedules(engine: EngineDep) -> list[dict[str, Any]]:
    """Every schedule, with ``next_run_at`` (UTC) and ``next_run_local`` (in its own zone)."""
    return engine.schedules.views()


@api.post("/schedules", status_code=201, tags=["schedules"],
          responses={409: {"description": "the task is inactive"}})
def create_schedule(body: ScheduleRequest, engine: EngineDep) -> dict[str, Any]:
    """A cron schedule for a task: refused (422, ``cron`` named) unless five fields that fire some day."""
    created = engine.schedules.create(body.task_id, body.cron, body.timezone, body.data)
    return schedule_view(created)


@api.delete("/schedules/{schedule_id}", status_code=204, tags=["schedules"])
def delete_schedule(schedule_id: str, engine: EngineDep) -> Response:
    engine.schedules.delete(schedule_id)
    return Response(status_code=204)


@api.get("/contacts", tags=["directory"])
def list_contacts(engine: EngineDep) -> list[dict[str, Any]]:
    return [c.model_dump(mode="json", exclude_none=True) for c in engine.store.list_contacts()]


@api.put("/contacts/{contact_id}", tags=["directory"])
def put_contact(contact_id: str, body: ObjectBody, engine: EngineDep) -> dict[str, Any]:
    if "id" in body and body["id"] != contact_id:
        raise InvalidInput("id", f"must match the contact id in the URL ({contact_id!r})")
    try:
        [contact] = engine.import_contacts([{**body, "id": contact_id}])
    except InvalidInput as exc:  # the engine names the row ("[0].email"); this body is one contact
        raise InvalidInput(exc.field.removeprefix("[0]").lstrip(".") or "contact", exc.reason) from None
    return contact.model_dump(mode="json", exclude_none=True)


@api.put("/datasets/{name}", tags=["directory"])
def put_dataset(name: str, body: RowsBody, engine: EngineDep) -> dict[str, Any]:
    """Replace a dataset's rows: a list of objects, or ``{"rows": [...]}``."""
    rows = body.get("rows") if isinstance(body, dict) else body
    if not isinstance(rows, list):
        raise InvalidInput("rows", 'expected a list of row objects, or {"rows": [...]}')
    try:
        count = engine.import_dataset(name, rows)
    except InvalidInput as exc:
        if exc.field == "NAME":
            raise BadParameter("path", "name", exc.reason) from None
        raise InvalidInput(("rows" if isinstance(body, dict) else "") + exc.field, exc.reason) from None
    return {"name": name, "rows": count}


@api.get("/notifications", tags=["notifications"])
def notifications(owner: Annotated[str, Query(min_length=1, description="whose notifications")],
                  engine: EngineDep) -> list[dict[str, Any]]:
    """In-app notifications (run ended, awaiting review ...), oldest first."""
    return engine.store.notifications(owner)
