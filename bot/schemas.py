"""The REST API's bodies as pydantic models (SPEC §8, §12), so ``/openapi.json`` tells a client everything.

Responses are the engine's views (``engine/views.py``, ``engine/schedules.py``) described field by
field; free-form values (a run's gathered data, a participant's answers, a dataset's rows) stay
objects because they are whatever the task's fields make them. Task definitions and contacts are
the engine's own models (:class:`~engine.model.TaskDefinition`, :class:`~engine.model.Contact`):
one schema for the YAML file, the JSON body and the answer. Their request bodies are read as
plain JSON and validated by the engine, which names the bad field the same way for the CLI.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from engine.model import Contact, TaskDefinition

Json = dict[str, Any]


class Open(BaseModel):
    """A view: more fields may be added later, so clients must ignore what they do not know."""

    model_config = ConfigDict(extra="allow")


# -- requests ----------------------------------------------------------------------------
class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: Json = Field(default_factory=dict, description="gathered data the run starts with")


class TriggerRequest(RunRequest):
    task_definition_id: str
    callback_url: HttpUrl | None = Field(
        None, description="gets the run object, signed, when the run ends; http(s) only, and no private, loopback or "
                          "link-local address unless TASKBOT_CALLBACK_ALLOW_PRIVATE=true (SPEC §11)")


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_id: str
    cron: str = Field(description='five fields: minute hour day-of-month month day-of-week, e.g. "0 9 * * MON"')
    timezone: str = Field("UTC", description="an IANA time zone, e.g. Europe/Paris")
    data: Json = Field(default_factory=dict, description="gathered data each run starts with")


class ScheduleSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(description="off, the schedule keeps its place but starts no run")


class DatasetRows(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[Json] = Field(description="the dataset's rows, each an object")


# -- responses -------------------------------------------------------------------------------
class RunStarted(BaseModel):
    run_id: str


class Usage(Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    model_calls: int | None = Field(None, description="on a run: how many model calls its tokens came from")


class Trigger(Open):
    kind: str = Field(description="manual, api, web, schedule, slack, telegram, ...")
    by: str | None = Field(None, description="who or what started the run")


class Message(Open):
    """One message of a conversation (the chat page's ``{role, text, at}`` and what the run shows)."""

    role: str = Field(description="user, assistant, system or tool")
    text: str
    at: str | None = Field(description="ISO 8601, UTC")
    kind: str | None = None
    late: bool | None = None
    edited: bool | None = None


class Replaced(BaseModel):
    value: Any = None
    replaced_at: str | None


class Subtask(Open):
    """One participant's part of a run (or the owner's conversation, ``kind: conversation``)."""

    id: str
    run_id: str
    participant_id: str
    name: str
    kind: str
    channel: str | None
    status: str = Field(description="pending, running, completed, timed_out, failed, cancelled, excused")
    chases_sent: int
    data: Json = Field(description="the answers gathered so far, by field key")
    data_history: dict[str, list[Replaced]] = Field(description="each field's earlier values, oldest first")
    reason: str | None
    timezone: str | None
    late: bool
    escalated_to: str | None
    created_at: str | None
    opened_at: str | None
    completed_at: str | None
    last_activity_at: str | None
    escalated_at: str | None
    next_at: str | None = Field(description="when the next opening, chase or time-out is due (ISO 8601, UTC)")
    next_action: str | None
    usage: Usage | None = None
    chat_url: str | None = Field(None, description="the web chat link (web channel only); the link is the credential")
    conversation: list[Message] | None = None


class DeliverableFile(BaseModel):
    filename: str
    content_type: str | None
    size: int
    url: str = Field(description="GET it for the bytes")


class Deliverable(Open):
    id: str
    run_id: str
    output_type: str
    title: str
    content: str
    version: int
    change: str | None
    created_at: str | None
    file: DeliverableFile | None = None


class Callback(BaseModel):
    url: str = Field(description="shown without its query and credentials")
    status: str
    attempts: int
    error: str | None
    at: str | None


class RunSummary(Open):
    """A run's fields (SPEC §1), as ``GET /api/runs`` lists them (without sub-tasks)."""

    id: str
    task_id: str
    status: str = Field(description="pending, running, awaiting_review, completed, failed, cancelled")
    trigger: Trigger
    owner: str | None
    gathered: Json
    result_summary: str | None
    error_message: str | None
    closed_by: str | None
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    deadline: str | None
    closed_at: str | None
    usage: Usage
    deliverables: list[Deliverable] = Field(description="every version, newest first, each with its content")
    reports: list[Json] = Field(description="posts of the deliverables to report_to targets")
    callback: Callback | None


class Run(RunSummary):
    """The run object (SPEC §8): its fields, its sub-tasks and its deliverables."""

    subtasks: list[Subtask]


class Schedule(Open):
    id: str
    task_id: str
    cron: str
    timezone: str
    data: Json
    enabled: bool
    next_run_at: str | None = Field(description="ISO 8601, UTC")
    next_run_local: str | None = Field(description="the same time in the schedule's own zone, with its offset")


class Notification(Open):
    id: str
    kind: str = Field(description="what happened: run ended, awaiting review, ...")
    run_id: str
    task_id: str
    text: str
    at: float = Field(description="unix time")


class DatasetStored(BaseModel):
    name: str
    rows: int


class Dataset(BaseModel):
    name: str
    rows: list[Json]


# -- errors ---------------------------------------------------------------------------------
class Problem(BaseModel):
    """401, 403, 404, 405, 409, 413 and 503: what went wrong, in words."""

    detail: str


class FieldError(BaseModel):
    type: str
    loc: list[str | int] = Field(description='where: ["body", "template", "fields", 0, "key"]')
    msg: str


class Refusal(BaseModel):
    """422 (and 400 for a body that is not UTF-8): the input refused whole, the first bad field named."""

    detail: list[FieldError]
    field: str = Field(description="the bad field, as a path: template.fields[0].key")


def error(description: str, model: type[BaseModel] = Problem) -> dict[str, Any]:
    return {"model": model, "description": description}


UNAUTHORIZED = {401: error("no bearer token, or one that opens nothing (the API is off without TASKBOT_API_TOKEN)")}
ADMIN_ONLY = {403: error("a person's token: only the admin token may do this")}
BAD_BODY = {413: error("the body is larger than TASKBOT_MAX_BODY"),
            422: error("a bad body or parameter, refused whole with the field named", Refusal),
            400: error("the body cannot be read as JSON (not UTF-8)", Refusal)}
BAD_QUERY = {422: error("a bad parameter, refused with the field named", Refusal)}
UNAVAILABLE = {503: error("Redis is not answering; retry (Retry-After)")}


def not_found(what: str) -> dict[int | str, dict[str, Any]]:
    return {404: error(f"no such {what}, or it is not yours (a person's token sees only what they own)")}


def conflict(why: str) -> dict[int | str, dict[str, Any]]:
    return {409: error(why)}


def inline(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` inlined, to describe a body the engine validates itself."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve({**defs[ref.removeprefix("#/$defs/")], **{k: v for k, v in node.items() if k != "$ref"}})
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)  # type: ignore[no-any-return]


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": schema}}}}


DEFINITION_BODY = json_body(inline(TaskDefinition), "a task definition (SPEC §3), as JSON")
CONTACT_BODY = json_body(inline(Contact), "a contact; its id is the one in the URL")
ROWS_BODY = json_body({"anyOf": [{"type": "array", "items": {"type": "object"}}, inline(DatasetRows)]},
                      'row objects, or {"rows": [...]}')



def webhook_responses(provider: str) -> dict[int | str, dict[str, Any]]:
    """What a provider's webhook can answer besides its 200 (the provider reads these, not a person)."""
    return {400: error(f"not a {provider} request taskbot can read"),
            401: error("missing or wrong signature or secret token, or none configured"),
            404: error(f"{provider} is off: its bot token is not set"),
            413: error("the body is larger than TASKBOT_MAX_BODY"), **UNAVAILABLE}


__all__ = ["Contact", "TaskDefinition"]
