"""The REST API under ``/api`` (SPEC §8, §12): definitions, runs, the Web Trigger, schedules, the directory.

Who may do what (``engine.access``): the admin token (``TASKBOT_API_TOKEN``) everything; a person's
token (``taskbot tokens create``) the tasks they own, their runs, their schedules and their
notifications. A task, run, schedule or deliverable that is not theirs answers 404, exactly as
one that does not exist, so a token cannot probe for other people's ids; a route that is the
admin's alone (new definitions, the directory) answers 403. No valid token: 401.

Every route needs the bearer token (checked from the headers by :class:`~bot.guards.ApiTokenGate`
before any body is read) and a body that can be stored. Bodies and answers are the models of
``bot/schemas.py``. Routes are plain ``def``: FastAPI runs them in its threadpool, so Redis never
blocks the loop.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from engine.access import Caller, may, visible_schedules, visible_tasks
from engine.bounds import check_value
from engine.engine import Engine
from engine.errors import InvalidInput, NotFound
from engine.idempotency import KEY as IDEMPOTENCY_KEY
from engine.idempotency import trigger_once
from engine.keys import deliverable as deliverable_key
from engine.model import Contact, TaskDefinition
from engine.schedules import schedule_view

from . import schemas as s
from .guards import CHALLENGE, api_caller


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(engine_of)]


class BadParameter(InvalidInput):
    """An ``InvalidInput`` about a path or query parameter, so the 422's ``loc`` points there."""

    def __init__(self, where: str, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.where = where


bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer $TASKBOT_API_TOKEN, or a person's token "
                                                  "from `taskbot tokens create CONTACT_ID`")


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller:
    """Every /api route: who the bearer token stands for; with no admin token configured the API stays closed.

    :class:`~bot.guards.ApiTokenGate` decides first, before any body is read, and leaves the caller
    in the request's state; this dependency documents the scheme in the OpenAPI schema and holds
    for an app mounted without the gate.
    """
    known = getattr(request.state, "caller", None)
    if isinstance(known, Caller):
        return known
    given = f"Bearer {credentials.credentials}" if credentials is not None else None
    caller = await run_in_threadpool(api_caller, request.app.state.settings,
                                     getattr(request.app.state.engine, "tokens", None), given)
    if isinstance(caller, str):
        raise HTTPException(401, caller, headers=CHALLENGE)
    return caller


CallerDep = Annotated[Caller, Depends(require_token)]


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
                responses={**s.UNAUTHORIZED, **s.UNAVAILABLE})

DefinitionBody = Annotated[dict[str, Any], Body()]
ObjectBody = Annotated[dict[str, Any], Body()]
RowsBody = Annotated[list[Any] | dict[str, Any], Body()]


# -- who may ------------------------------------------------------------------------------
class Forbidden(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(403, detail)


def admin_only(caller: Caller, what: str) -> None:
    if not caller.admin:
        raise Forbidden(f"only the admin token may {what}; a person's token acts on the tasks they own")


def owned_task(engine: Engine, caller: Caller, task_id: str, action: str) -> TaskDefinition:
    """The task, if the caller may ``action`` it; NotFound (404) when it is not there or not theirs."""
    definition = engine.store.get_definition(task_id)
    if not may(caller, action, definition.owner):
        raise NotFound("task definition", task_id)
    return definition


def owned_run(engine: Engine, caller: Caller, run_id: str, action: str) -> None:
    """NotFound (404) unless the run exists and the caller may ``action`` it (by the run's owner)."""
    owner = engine.store.run_fields(run_id).get("owner")
    if not may(caller, action, owner):
        raise NotFound("run", run_id)


def owned_schedule(engine: Engine, caller: Caller, schedule_id: str, action: str) -> None:
    if not may(caller, action, engine.schedules.owner(schedule_id)):
        raise NotFound("schedule", schedule_id)


def definition_json(definition: Any) -> dict[str, Any]:
    data: dict[str, Any] = definition.model_dump(mode="json", exclude_none=True)
    return data


def started(rid: str, response: Response) -> s.RunStarted:
    response.headers["Location"] = f"/api/runs/{rid}"
    return s.RunStarted(run_id=rid)


# -- task definitions ------------------------------------------------------------------------
@api.get("/tasks", tags=["tasks"], response_model=list[TaskDefinition], response_model_exclude_none=True)
def list_tasks(engine: EngineDep, caller: CallerDep) -> list[dict[str, Any]]:
    """Every definition (a person's token: those they own)."""
    return [definition_json(d) for d in visible_tasks(caller, engine.store.list_definitions())]


@api.post("/tasks", status_code=201, tags=["tasks"], response_model=TaskDefinition, response_model_exclude_none=True,
          openapi_extra=s.DEFINITION_BODY, responses={**s.ADMIN_ONLY, **s.BAD_BODY})
def create_task(body: DefinitionBody, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    """Validate and store a definition (refused whole, field named, when wrong); same id replaces. Admin only."""
    admin_only(caller, "define tasks")
    return definition_json(engine.apply_definition(body))


@api.get("/tasks/{task_id}", tags=["tasks"], response_model=TaskDefinition, response_model_exclude_none=True,
         responses=s.not_found("task definition"))
def get_task(task_id: str, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    return definition_json(owned_task(engine, caller, task_id, "see"))


@api.put("/tasks/{task_id}", tags=["tasks"], response_model=TaskDefinition, response_model_exclude_none=True,
         openapi_extra=s.DEFINITION_BODY,
         responses={**s.not_found("task definition"), **s.BAD_BODY,
                    403: s.error("a person's token: the definition would no longer be theirs")})
def put_task(task_id: str, body: DefinitionBody, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    """Replace (or, with the admin token, create) the definition with this id.

    A person may replace a task they own; without ``owner`` it stays theirs, and naming someone
    else as ``owner`` is refused (403): giving a task away is the admin's.
    """
    if "id" in body and body["id"] != task_id:
        raise InvalidInput("id", f"must match the task id in the URL ({task_id!r})")
    if not caller.admin:
        current = owned_task(engine, caller, task_id, "edit")
        if body.get("owner") is None:
            body = {**body, "owner": current.owner}
        elif not isinstance(body["owner"], str) or not caller.owns(body["owner"]):
            raise Forbidden("owner: a person's token cannot give a task away; leave owner out or name yourself")
    return definition_json(engine.apply_definition({**body, "id": task_id}))


@api.delete("/tasks/{task_id}", status_code=204, tags=["tasks"], response_class=Response,
            responses=s.not_found("task definition"))
def delete_task(task_id: str, engine: EngineDep, caller: CallerDep) -> Response:
    """Remove the definition (its runs stay)."""
    if not caller.admin:
        owned_task(engine, caller, task_id, "delete")
    engine.store.delete_definition(task_id)
    return Response(status_code=204)


# -- runs --------------------------------------------------------------------------------------
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", description="a key of your own (1-255 visible ASCII characters): a request sent "
    "again with the same key starts no second run, it answers the first run's id (kept for a day)")]
TRIGGER_ERRORS = {**s.not_found("task definition"), **s.BAD_BODY,
                  **s.conflict("the task is inactive, or the Idempotency-Key started another task")}


def trigger(engine: Engine, caller: Caller, response: Response, task_id: str, data: dict[str, Any] | None,
            kind: str, key: str | None, callback_url: str | None = None) -> s.RunStarted:
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise BadParameter("header", "Idempotency-Key", "must be 1 to 255 visible ASCII characters")
    owned_task(engine, caller, task_id, "run")
    by = None if caller.admin else caller.id
    if key is None:
        return started(engine.runs.trigger(task_id, data, kind=kind, by=by, callback_url=callback_url), response)
    rid, new = trigger_once(engine.runs, key, task_id, data, kind=kind, by=by, callback_url=callback_url)
    if not new:
        response.headers["Idempotent-Replayed"] = "true"
    return started(rid, response)


@api.post("/tasks/{task_id}/runs", status_code=202, tags=["runs"], responses=TRIGGER_ERRORS)
def start_run(task_id: str, engine: EngineDep, caller: CallerDep, response: Response,
              body: Annotated[s.RunRequest | None, Body()] = None, idempotency_key: IdempotencyKey = None
              ) -> s.RunStarted:
    """Start a run of the task; retry safely with the same ``Idempotency-Key``."""
    return trigger(engine, caller, response, task_id, body.data if body else None, "api", idempotency_key)


@api.post("/trigger", status_code=202, tags=["runs"], responses=TRIGGER_ERRORS)
def web_trigger(body: s.TriggerRequest, engine: EngineDep, caller: CallerDep, response: Response,
                idempotency_key: IdempotencyKey = None) -> s.RunStarted:
    """The Web Trigger: start a run of ``task_definition_id`` with ``data``; ``callback_url`` gets the run
    object when it ends (its host is resolved here, so this is a plain ``def`` run in the threadpool).

    Retrying safely: a caller that got no answer (a timeout, a 503) sends the request again
    with the same ``Idempotency-Key`` header; it gets the same ``run_id`` and no second run.
    """
    callback = str(body.callback_url) if body.callback_url is not None else None
    return trigger(engine, caller, response, body.task_definition_id, body.data, "web", idempotency_key, callback)


@api.get("/runs", tags=["runs"], response_model=list[s.RunSummary], responses=s.BAD_QUERY)
def list_runs(engine: EngineDep, caller: CallerDep, task_id: str | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    """Newest first, without sub-tasks (``GET /api/runs/{id}`` has them); a person's token: their runs."""
    return engine.list_runs(task_id, limit, caller=caller)


@api.get("/runs/{run_id}", tags=["runs"], response_model=s.Run, responses=s.not_found("run"))
def get_run(run_id: str, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    owned_run(engine, caller, run_id, "see")
    return engine.run_view(run_id)


@api.get("/runs/{run_id}/results.csv", tags=["runs"], response_class=Response, responses={
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "one row per participant: id, name, status, one column per field"},
    **s.not_found("run")})
def results_csv(run_id: str, engine: EngineDep, caller: CallerDep) -> Response:
    """The answers as a table, the file ``taskbot results RUN_ID --csv`` prints (cells a spreadsheet
    would run as a formula start with ``'``)."""
    owned_run(engine, caller, run_id, "see")
    return Response(engine.results_csv(run_id), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{run_id}-results.csv"'})


@api.get("/deliverables/{deliverable_id}/file", tags=["runs"], response_class=Response,
         responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                          "description": "the file"}, **s.not_found("deliverable file")})
def get_deliverable_file(deliverable_id: str, engine: EngineDep, caller: CallerDep) -> Response:
    """An image or file deliverable's bytes (seen by whoever may see its run)."""
    if not caller.admin:
        rid = engine.r.hget(deliverable_key(deliverable_id), "run_id")
        try:
            owned_run(engine, caller, rid.decode() if rid else "", "see")
        except NotFound:
            raise NotFound("deliverable file", deliverable_id) from None
    name, media_type, data = engine.deliverable_file(deliverable_id)
    return Response(data, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@api.post("/runs/{run_id}/cancel", tags=["runs"], response_model=s.Run,
          responses={**s.not_found("run"), **s.conflict("the run is final")})
def cancel_run(run_id: str, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    owned_run(engine, caller, run_id, "cancel")
    engine.runs.cancel(run_id)
    return engine.run_view(run_id)


@api.post("/runs/{run_id}/approve", tags=["runs"], response_model=s.Run,
          responses={**s.not_found("run"), **s.conflict("not awaiting review")})
def approve_run(run_id: str, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    owned_run(engine, caller, run_id, "approve")
    engine.runs.approve(run_id)
    return engine.run_view(run_id)


# -- schedules --------------------------------------------------------------------------------
def task_owners(engine: Engine) -> dict[str, str | None]:
    return {d.id: d.owner for d in engine.store.list_definitions()}


@api.get("/schedules", tags=["schedules"], response_model=list[s.Schedule])
def list_schedules(engine: EngineDep, caller: CallerDep) -> list[dict[str, Any]]:
    """Every schedule (a person's token: those of their tasks), with ``next_run_at`` (UTC) and
    ``next_run_local`` (in its own zone)."""
    views = engine.schedules.views()
    return views if caller.admin else visible_schedules(caller, views, task_owners(engine))


@api.post("/schedules", status_code=201, tags=["schedules"], response_model=s.Schedule,
          responses={**s.not_found("task definition"), **s.BAD_BODY, **s.conflict("the task is inactive")})
def create_schedule(body: s.ScheduleRequest, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    """A cron schedule for a task: refused (422, ``cron`` named) unless five fields that fire some day."""
    owned_task(engine, caller, body.task_id, "schedule")
    created = engine.schedules.create(body.task_id, body.cron, body.timezone, body.data)
    return schedule_view(created)


@api.patch("/schedules/{schedule_id}", tags=["schedules"], response_model=s.Schedule,
           responses={**s.not_found("schedule"), **s.BAD_BODY})
def switch_schedule(schedule_id: str, body: s.ScheduleSwitch, engine: EngineDep, caller: CallerDep
                    ) -> dict[str, Any]:
    """Switch a schedule on or off (``{"enabled": false}``); on again, it fires from the next slot."""
    owned_schedule(engine, caller, schedule_id, "schedule")
    return schedule_view(engine.schedules.set_enabled(schedule_id, body.enabled))


@api.delete("/schedules/{schedule_id}", status_code=204, tags=["schedules"], response_class=Response,
            responses=s.not_found("schedule"))
def delete_schedule(schedule_id: str, engine: EngineDep, caller: CallerDep) -> Response:
    owned_schedule(engine, caller, schedule_id, "unschedule")
    engine.schedules.delete(schedule_id)
    return Response(status_code=204)


# -- the directory -------------------------------------------------------------------------------
@api.get("/contacts", tags=["directory"], response_model=list[Contact], response_model_exclude_none=True)
def list_contacts(engine: EngineDep, caller: CallerDep) -> list[dict[str, Any]]:
    """The directory (a person's token: their own entry only)."""
    contacts = engine.store.list_contacts()
    if not caller.admin:
        contacts = [c for c in contacts if c.id == caller.contact_id]
    return [c.model_dump(mode="json", exclude_none=True) for c in contacts]


@api.get("/contacts/{contact_id}", tags=["directory"], response_model=Contact, response_model_exclude_none=True,
         responses=s.not_found("contact"))
def get_contact(contact_id: str, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    """One contact, by id or email (a person's token: their own)."""
    contact = engine.store.find_contacts([contact_id]).get(contact_id)
    if contact is None or not (caller.admin or contact.id == caller.contact_id):
        raise NotFound("contact", contact_id)
    return contact.model_dump(mode="json", exclude_none=True)


@api.put("/contacts/{contact_id}", tags=["directory"], response_model=Contact, response_model_exclude_none=True,
         openapi_extra=s.CONTACT_BODY, responses={**s.ADMIN_ONLY, **s.BAD_BODY})
def put_contact(contact_id: str, body: ObjectBody, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    admin_only(caller, "write the directory")
    if "id" in body and body["id"] != contact_id:
        raise InvalidInput("id", f"must match the contact id in the URL ({contact_id!r})")
    try:
        [contact] = engine.import_contacts([{**body, "id": contact_id}])
    except InvalidInput as exc:  # the engine names the row ("[0].email"); this body is one contact
        raise InvalidInput(exc.field.removeprefix("[0]").lstrip(".") or "contact", exc.reason) from None
    return contact.model_dump(mode="json", exclude_none=True)


@api.get("/datasets/{name}", tags=["directory"], response_model=s.Dataset,
         responses={**s.ADMIN_ONLY, **s.not_found("dataset")})
def get_dataset(name: str, engine: EngineDep, caller: CallerDep) -> s.Dataset:
    """A dataset's rows (admin only: rows are the directory's, often people's details)."""
    admin_only(caller, "read datasets")
    return s.Dataset(name=name, rows=engine.store.get_dataset(name))


@api.put("/datasets/{name}", tags=["directory"], response_model=s.DatasetStored, openapi_extra=s.ROWS_BODY,
         responses={**s.ADMIN_ONLY, **s.BAD_BODY})
def put_dataset(name: str, body: RowsBody, engine: EngineDep, caller: CallerDep) -> s.DatasetStored:
    """Replace a dataset's rows: a list of objects, or ``{"rows": [...]}``."""
    admin_only(caller, "write the directory")
    rows = body.get("rows") if isinstance(body, dict) else body
    if not isinstance(rows, list):
        raise InvalidInput("rows", 'expected a list of row objects, or {"rows": [...]}')
    try:
        count = engine.import_dataset(name, rows)
    except InvalidInput as exc:
        if exc.field == "NAME":
            raise BadParameter("path", "name", exc.reason) from None
        raise InvalidInput(("rows" if isinstance(body, dict) else "") + exc.field, exc.reason) from None
    return s.DatasetStored(name=name, rows=count)


# -- notifications ---------------------------------------------------------------------------------
@api.get("/notifications", tags=["notifications"], response_model=list[s.Notification],
         responses={**s.BAD_QUERY, 403: s.error("a person's token asked for someone else's notifications")})
def notifications(engine: EngineDep, caller: CallerDep,
                  owner: Annotated[str | None, Query(min_length=1, description="whose (the admin's token; a "
                                                     "person may name only themselves)")] = None
                  ) -> list[dict[str, Any]]:
    """The caller's in-app notifications (run ended, awaiting review ...), oldest first.

    A person's token gets theirs under every identity they have (contact id, email, Slack and
    Telegram ids); the admin token reads anyone's with ``owner=``.
    """
    if owner is None:
        return engine.notifications_for(caller)
    if not caller.admin and not caller.owns(owner):
        raise Forbidden("owner: a person's token reads only its own notifications (leave owner out)")
    return engine.store.notifications(owner)
