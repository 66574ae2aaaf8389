"""The REST API under ``/api`` (SPEC §8, §12): definitions, runs, the Web Trigger, schedules, the directory.

Every route needs a bearer token: the admin's ``TASKBOT_API_TOKEN`` (everything) or a person's
(``taskbot tokens create``): then only the tasks they own, their runs, their schedules and their
notifications (:mod:`engine.access`). Something of another owner answers 404, as if it did not
exist, so a person cannot probe for others' ids; what only the admin may do at all (write task
definitions, the directory) answers 403. :class:`~bot.guards.ApiTokenGate` decides who calls
before any body is read; the ``caller`` dependency here reads its answer (and documents the
scheme in the OpenAPI schema). Bodies and answers are the models of :mod:`bot.schemas`.
Routes are plain ``def``: FastAPI runs them in its threadpool, so Redis never blocks the loop.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import WithJsonSchema
from starlette.concurrency import run_in_threadpool

from engine import keys
from engine.access import Caller, may, visible_schedules, visible_tasks
from engine.bounds import check_value
from engine.engine import Engine
from engine.errors import InvalidInput, NotFound
from engine.idempotency import KEY as IDEMPOTENCY_KEY
from engine.idempotency import trigger_once
from engine.model import Contact, TaskDefinition
from engine.schedules import schedule_view

from .guards import CALLER_STATE, CHALLENGE, api_caller
from .schemas import (
    Dataset,
    DatasetStored,
    Notification,
    Run,
    RunRequest,
    RunStarted,
    RunSummary,
    Schedule,
    ScheduleRequest,
    ScheduleSwitch,
    Shaped,
    TriggerRequest,
    errors,
)


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(engine_of)]


class BadParameter(InvalidInput):
    """An ``InvalidInput`` about a path or query parameter, so the 422's ``loc`` points there."""

    def __init__(self, where: str, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.where = where


bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <the admin's TASKBOT_API_TOKEN, or a "
                                                  "person's token from `taskbot tokens create`>")


async def caller_of(request: Request,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """Every /api route: who calls (the admin or a person), or 401; with no admin token set the API stays closed.

    :class:`~bot.guards.ApiTokenGate` decided it already, before any body was read; asked again
    only for an app mounted without the gate.
    """
    known = getattr(request.state, CALLER_STATE, None)
    if isinstance(known, Caller):
        return known
    given = f"Bearer {credentials.credentials}" if credentials is not None else None
    caller = await run_in_threadpool(api_caller, request.app.state.settings, request.app.state.engine.tokens, given)
    if isinstance(caller, str):
        raise HTTPException(401, caller, headers=CHALLENGE)
    return caller


CallerDep = Annotated[Caller, Depends(caller_of)]


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


api = APIRouter(prefix="/api", dependencies=[Depends(caller_of), Depends(storable_body)], responses=errors(401))

DefinitionBody = Annotated[dict[str, Any], Shaped(TaskDefinition),
                           Body(description="a task definition (SPEC §3), as JSON; the engine validates it")]
ContactBody = Annotated[dict[str, Any], Shaped(Contact), Body(description="one contact; `id` may be left out")]
ROWS_SCHEMA = {"type": "array", "items": {"type": "object", "additionalProperties": True,
                                          "description": "one row: column name to value (the dataset's own columns)"}}
#: Taken as any list or object, so the engine names a bad row (``rows[1]``) in its words.
RowsBody = Annotated[list[Any] | dict[str, Any],
                     WithJsonSchema({"anyOf": [ROWS_SCHEMA, {"type": "object", "properties": {"rows": ROWS_SCHEMA},
                                                             "required": ["rows"]}]}),
                     Body(description='row objects, or {"rows": [...]}')]
TaskOut = Annotated[dict[str, Any], Shaped(TaskDefinition)]
ContactOut = Annotated[dict[str, Any], Shaped(Contact)]


# -- who may: the admin everything, a person what they own (404 for another's, 403 for admin-only) ---------------
def admin_only(caller: Caller, what: str) -> None:
    if not caller.admin:
        raise HTTPException(403, f"{what} needs the admin's token (TASKBOT_API_TOKEN)")


def task_for(engine: Engine, caller: Caller, task_id: str, action: str = "see") -> TaskDefinition:
    """The task if the caller may ``action`` it; a task of another owner is one that does not exist."""
    definition = engine.store.get_definition(task_id)
    if not may(caller, action, definition.owner):
        raise NotFound("task", task_id)
    return definition


def run_for(engine: Engine, caller: Caller, run_id: str, action: str = "see") -> None:
    if not may(caller, action, engine.store.run_fields(run_id).get("owner")):
        raise NotFound("run", run_id)


#: Answers the engine built as dicts go out as built: a model's optional key the engine left out
#: (a text deliverable's ``file``, a non-web sub-task's ``chat_url``) is not added as null.
AS_BUILT: dict[str, Any] = {"response_model_exclude_unset": True}


def definition_json(definition: Any) -> dict[str, Any]:
    data: dict[str, Any] = definition.model_dump(mode="json", exclude_none=True)
    return data


def started(rid: str, response: Response) -> RunStarted:
    response.headers["Location"] = f"/api/runs/{rid}"
    return RunStarted(run_id=rid)


# -- task definitions ----------------------------------------------------------------------------------------
@api.get("/tasks", tags=["tasks"], response_model=list[TaskOut])
def list_tasks(engine: EngineDep, caller: CallerDep) -> list[dict[str, Any]]:
    """Every definition (the admin), or those the caller owns."""
    return [definition_json(d) for d in visible_tasks(caller, engine.store.list_definitions())]


@api.post("/tasks", status_code=201, tags=["tasks"], response_model=TaskOut, responses=errors(403, 400, 413, 422))
def create_task(body: DefinitionBody, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    """Validate and store a definition (refused whole, field named, when wrong); same id replaces. Admin only:
    a definition says whom taskbot messages and where it posts reports."""
    admin_only(caller, "writing a task definition")
    return definition_json(engine.apply_definition(body))


@api.get("/tasks/{task_id}", tags=["tasks"], response_model=TaskOut, responses=errors(404))
def get_task(task_id: str, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    return definition_json(task_for(engine, caller, task_id))


@api.put("/tasks/{task_id}", tags=["tasks"], response_model=TaskOut, responses=errors(403, 400, 413, 422))
def put_task(task_id: str, body: DefinitionBody, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    """Store the definition under this id (created or replaced). Admin only, as ``POST /api/tasks``."""
    admin_only(caller, "writing a task definition")
    if "id" in body and body["id"] != task_id:
        raise InvalidInput("id", f"must match the task id in the URL ({task_id!r})")
    return definition_json(engine.apply_definition({**body, "id": task_id}))


@api.delete("/tasks/{task_id}", status_code=204, tags=["tasks"], responses=errors(404))
def delete_task(task_id: str, engine: EngineDep, caller: CallerDep) -> Response:
    """Remove a definition (its owner or the admin); runs already started keep theirs."""
    task_for(engine, caller, task_id, "delete")
    engine.store.delete_definition(task_id)
    return Response(status_code=204)


# -- runs ----------------------------------------------------------------------------------------------------
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", description="a key of your own (1-255 visible ASCII characters): a request sent "
    "again with the same key starts no second run, it answers the first run's id (kept for a day)")]


def trigger(engine: Engine, caller: Caller, response: Response, task_id: str, data: dict[str, Any] | None,
            kind: str, key: str | None, callback_url: str | None = None) -> RunStarted:
    task_for(engine, caller, task_id, "run")
    by = None if caller.admin else caller.id
    if key is None:
        return started(engine.runs.trigger(task_id, data, kind=kind, by=by, callback_url=callback_url), response)
    if not IDEMPOTENCY_KEY.match(key):
        raise BadParameter("header", "Idempotency-Key", "must be 1 to 255 visible ASCII characters")
    rid, new = trigger_once(engine.runs, key, task_id, data, kind=kind, by=by, callback_url=callback_url)
    if not new:
        response.headers["Idempotent-Replayed"] = "true"
    return started(rid, response)


STARTS = {**errors(404, 400, 413, 422), 409: {"description": "the task is inactive, or the Idempotency-Key started "
                                                        "another task", "model": errors(409)[409]["model"]}}


@api.post("/tasks/{task_id}/runs", status_code=202, tags=["runs"], responses=STARTS)
def start_run(task_id: str, engine: EngineDep, caller: CallerDep, response: Response,
              body: Annotated[RunRequest | None, Body()] = None, idempotency_key: IdempotencyKey = None
              ) -> RunStarted:
    """Start a run of the task (its owner or the admin); retry safely with the same ``Idempotency-Key``."""
    return trigger(engine, caller, response, task_id, body.data if body else None, "api", idempotency_key)


@api.post("/trigger", status_code=202, tags=["runs"], responses=STARTS)
def web_trigger(body: TriggerRequest, engine: EngineDep, caller: CallerDep, response: Response,
                idempotency_key: IdempotencyKey = None) -> RunStarted:
    """The Web Trigger: start a run of ``task_definition_id`` with ``data``; ``callback_url`` gets the run
    object when it ends (its host is resolved here, so this is a plain ``def`` run in the threadpool).

    Retrying safely: a caller that got no answer (a timeout, a 503) sends the request again
    with the same ``Idempotency-Key`` header; it gets the same ``run_id`` and no second run.
    """
    callback = str(body.callback_url) if body.callback_url is not None else None
    return trigger(engine, caller, response, body.task_definition_id, body.data, "web", idempotency_key, callback)


@api.get("/runs", tags=["runs"], response_model=list[RunSummary], **AS_BUILT, responses=errors(422))
def list_runs(engine: EngineDep, caller: CallerDep, task_id: str | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    """Newest first, without sub-tasks (``GET /api/runs/{id}`` has them); a person's: the runs they own."""
    return engine.list_runs(task_id, limit, caller)


@api.get("/runs/{run_id}", tags=["runs"], response_model=Run, **AS_BUILT, responses=errors(404))
def get_run(run_id: str, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    run_for(engine, caller, run_id)
    return engine.run_view(run_id)


@api.get("/runs/{run_id}/results.csv", tags=["runs"], response_class=Response,
         responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                          "description": "one row per participant: id, name, status, one column per field"},
                    **errors(404)})
def get_results_csv(run_id: str, engine: EngineDep, caller: CallerDep) -> Response:
    """The answers as CSV: the same file as ``taskbot results RUN_ID --csv`` and the dashboard's download
    (a cell that a spreadsheet would run as a formula is quoted with a leading ``'``)."""
    run_for(engine, caller, run_id)
    task_id = engine.store.run_fields(run_id)["task_id"]
    return Response(engine.results_csv(run_id), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{task_id}-{run_id}.csv"',
                             "X-Content-Type-Options": "nosniff"})


@api.get("/deliverables/{deliverable_id}/file", tags=["runs"], response_class=Response,
         responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                          "description": "the file"}, **errors(404)})
def get_deliverable_file(deliverable_id: str, engine: EngineDep, caller: CallerDep) -> Response:
    """An image or file deliverable's bytes (of a run the caller may see)."""
    run_id = engine.r.hget(keys.deliverable(deliverable_id), "run_id")
    if run_id is None:
        raise NotFound("deliverable file", deliverable_id)
    try:
        run_for(engine, caller, run_id.decode() if isinstance(run_id, bytes) else str(run_id))
    except NotFound:
        raise NotFound("deliverable file", deliverable_id) from None
    name, media_type, data = engine.deliverable_file(deliverable_id)
    return Response(data, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@api.post("/runs/{run_id}/cancel", tags=["runs"], response_model=Run, **AS_BUILT,
          responses={**errors(404), 409: {"description": "the run is final", "model": errors(409)[409]["model"]}})
def cancel_run(run_id: str, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    run_for(engine, caller, run_id, "cancel")
    engine.runs.cancel(run_id)
    return engine.run_view(run_id)


@api.post("/runs/{run_id}/approve", tags=["runs"], response_model=Run, **AS_BUILT,
          responses={**errors(404), 409: {"description": "not awaiting review", "model": errors(409)[409]["model"]}})
def approve_run(run_id: str, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    run_for(engine, caller, run_id, "approve")
    engine.runs.approve(run_id)
    return engine.run_view(run_id)


# -- schedules -----------------------------------------------------------------------------------------------
@api.get("/schedules", tags=["schedules"], response_model=list[Schedule], **AS_BUILT)
def list_schedules(engine: EngineDep, caller: CallerDep) -> list[dict[str, Any]]:
    """Every schedule (a person's: those of their tasks), with ``next_run_at`` (UTC) and ``next_run_local``."""
    views = engine.schedules.views()
    if caller.admin:
        return views
    owners = {d.id: d.owner for d in engine.store.list_definitions()}
    return visible_schedules(caller, views, owners)


@api.post("/schedules", status_code=201, tags=["schedules"], response_model=Schedule, **AS_BUILT,
          responses={**errors(404, 400, 413, 422), 409: {"description": "the task is inactive",
                                                    "model": errors(409)[409]["model"]}})
def create_schedule(body: ScheduleRequest, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    """A cron schedule for a task: refused (422, ``cron`` named) unless five fields that fire some day."""
    task_for(engine, caller, body.task_id, "schedule")
    created = engine.schedules.create(body.task_id, body.cron, body.timezone, body.data)
    return schedule_view(created)


@api.delete("/schedules/{schedule_id}", status_code=204, tags=["schedules"], responses=errors(404))
def delete_schedule(schedule_id: str, engine: EngineDep, caller: CallerDep) -> Response:
    if not may(caller, "unschedule", engine.schedules.owner(schedule_id)):
        raise NotFound("schedule", schedule_id)
    engine.schedules.delete(schedule_id)
    return Response(status_code=204)


@api.patch("/schedules/{schedule_id}", tags=["schedules"], response_model=Schedule, **AS_BUILT,
           responses=errors(400, 404, 413, 422))
def switch_schedule(schedule_id: str, body: ScheduleSwitch, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    """Switch a schedule off (it keeps its place and data, and starts no run) or on again (from the next slot)."""
    owner = engine.schedules.owner(schedule_id)
    if not may(caller, "schedule" if body.enabled else "unschedule", owner):
        raise NotFound("schedule", schedule_id)
    return schedule_view(engine.schedules.set_enabled(schedule_id, body.enabled))


# -- the directory -------------------------------------------------------------------------------------------
def contact_json(contact: Contact) -> dict[str, Any]:
    data: dict[str, Any] = contact.model_dump(mode="json", exclude_none=True)
    return data


@api.get("/contacts", tags=["directory"], response_model=list[ContactOut])
def list_contacts(engine: EngineDep, caller: CallerDep) -> list[dict[str, Any]]:
    """The directory (the admin); a person's token: their own entry only."""
    return [contact_json(c) for c in engine.store.list_contacts() if caller.admin or c.id == caller.contact_id]


@api.get("/contacts/{contact_id}", tags=["directory"], response_model=ContactOut, responses=errors(404))
def get_contact(contact_id: str, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    """One contact, by id (or email); a person's token: their own only."""
    contact = engine.store.find_contacts([contact_id]).get(contact_id)
    if contact is None or not (caller.admin or contact.id == caller.contact_id):
        raise NotFound("contact", contact_id)
    return contact_json(contact)


@api.put("/contacts/{contact_id}", tags=["directory"], response_model=ContactOut, responses=errors(403, 400, 413, 422))
def put_contact(contact_id: str, body: ContactBody, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
    admin_only(caller, "writing the directory")
    if "id" in body and body["id"] != contact_id:
        raise InvalidInput("id", f"must match the contact id in the URL ({contact_id!r})")
    try:
        [contact] = engine.import_contacts([{**body, "id": contact_id}])
    except InvalidInput as exc:  # the engine names the row ("[0].email"); this body is one contact
        raise InvalidInput(exc.field.removeprefix("[0]").lstrip(".") or "contact", exc.reason) from None
    return contact_json(contact)


@api.get("/datasets/{name}", tags=["directory"], response_model=Dataset, responses=errors(403, 404))
def get_dataset(name: str, engine: EngineDep, caller: CallerDep) -> Dataset:
    """A dataset's rows (admin only: they are the directory's)."""
    admin_only(caller, "reading a dataset")
    return Dataset(name=name, rows=engine.store.get_dataset(name))


@api.put("/datasets/{name}", tags=["directory"], response_model=DatasetStored, responses=errors(403, 400, 413, 422))
def put_dataset(name: str, body: RowsBody, engine: EngineDep, caller: CallerDep) -> DatasetStored:
    """Replace a dataset's rows: a list of objects, or ``{"rows": [...]}``."""
    admin_only(caller, "writing the directory")
    rows = body.get("rows") if isinstance(body, dict) else body
    if not isinstance(rows, list):
        raise InvalidInput("rows", 'expected a list of row objects, or {"rows": [...]}')
    try:
        count = engine.import_dataset(name, rows)
    except InvalidInput as exc:
        if exc.field == "NAME":
            raise BadParameter("path", "name", exc.reason) from None
        raise InvalidInput(("rows" if isinstance(body, dict) else "") + exc.field, exc.reason) from None
    return DatasetStored(name=name, rows=count)


# -- notifications -------------------------------------------------------------------------------------------
@api.get("/notifications", tags=["notifications"], response_model=list[Notification], **AS_BUILT,
         responses=errors(403, 422))
def notifications(request: Request, engine: EngineDep, caller: CallerDep,
                  owner: Annotated[str | None, Query(min_length=1, description="whose (the admin: anyone's; a "
                                                     "person: one of their own identities)")] = None
                  ) -> list[dict[str, Any]]:
    """The caller's in-app notifications (run ended, awaiting review ...), oldest first.

    A person's are those under every identity of theirs (contact id, email, Slack and Telegram
    ids); the admin's those of ``admin`` and of each ``TASKBOT_ADMINS`` identity, or ``owner``'s.
    """
    if owner is not None:
        if not (caller.admin or caller.owns(owner)):
            raise HTTPException(403, "a person's token reads only their own notifications")
        return engine.store.notifications(owner)
    if caller.admin:
        caller = Caller(frozenset({"admin", *request.app.state.settings.admin_ids}), admin=True)
    return engine.notifications_for(caller)
