"""The REST API's bodies as pydantic models (SPEC §8, §12), so ``/openapi.json`` tells a client every shape.

Responses are built by the engine as plain dicts (``engine.views``); the models here describe them
for the schema and for clients. A route declares its body type with :class:`Shaped` where the
engine validates the body itself (a task definition, a contact): the engine names the first bad
field in its own words, which FastAPI's validation would word differently, so the route still
takes a plain JSON object while the schema shows the engine's model.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, HttpUrl
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema as cs

Time = str  # ISO 8601 in UTC, e.g. 2024-05-01T09:30:00Z


class Shaped:
    """``Annotated[dict[str, Any], Shaped(Model)]``: any JSON object at run time, ``Model``'s shape in the schema."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model

    def __get_pydantic_json_schema__(self, schema: cs.CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return handler(self.model.__pydantic_core_schema__)


class Open(BaseModel):
    """A response object: the keys listed are there; a later version may add keys."""

    model_config = ConfigDict(extra="allow")


# -- errors ------------------------------------------------------------------------------------
class Error(BaseModel):
    detail: str = Field(description="what went wrong, in words")


class FieldError(BaseModel):
    type: str
    loc: list[str | int] = Field(description='where: ["body", "template", "fields", 0, "key"], ["query", "limit"]')
    msg: str


class Invalid(BaseModel):
    detail: list[FieldError]
    field: str = Field(description="the first bad field, dotted: template.fields[0].key")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route can give, documented with their bodies."""
    said = {400: ("the body cannot be read as JSON (is it UTF-8?)", Invalid),
            401: ("missing or wrong bearer token (admin's or a person's)", Error),
            403: ("a person's token: this needs the admin's token", Error),
            404: ("no such thing, or (with a person's token) not theirs", Error),
            409: ("its state refuses it", Error),
            413: ("the body is larger than TASKBOT_MAX_BODY", Error),
            422: ("a bad body, path, query parameter or header, named in `field`; nothing changed", Invalid)}
    return {s: {"description": said[s][0], "model": said[s][1]} for s in statuses}


# -- requests ----------------------------------------------------------------------------------
class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: dict[str, Any] = Field(default_factory=dict, description="gathered data the run starts with")


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
    data: dict[str, Any] = Field(default_factory=dict, description="gathered data each run starts with")


class ScheduleSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(description="false: kept, but starts no run; true: runs again from its next slot")


class Rows(BaseModel):
    rows: list[dict[str, Any]]


# -- responses ---------------------------------------------------------------------------------
class RunStarted(BaseModel):
    run_id: str


class DatasetStored(BaseModel):
    name: str
    rows: int = Field(description="how many rows it has now")


class Dataset(BaseModel):
    name: str
    rows: list[dict[str, Any]]


class Trigger(Open):
    kind: str = Field(description="manual, slash, schedule, web, api or delegation")
    by: str | None = None


class Usage(Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class DeliverableFile(BaseModel):
    filename: str
    content_type: str | None
    size: int
    url: str


class Deliverable(Open):
    id: str
    run_id: str
    output_type: str
    title: str
    content: str
    version: int
    change: str | None
    created_at: Time | None
    file: DeliverableFile | None = None


class Report(Open):
    target: str
    version: int | None = None
    status: str = Field(description="pending, retrying, posted or failed")
    attempts: int | None = None
    error: str | None = None
    at: Time | None = None
    ref: str | None = None


class Callback(Open):
    url: str
    status: str = Field(description="waiting, pending, retrying, delivered or failed")
    attempts: int
    error: str | None
    at: Time | None


class Message(Open):
    role: str = Field(description="user, assistant, system (or tool, in the run object)")
    text: str
    at: Time | None


class Subtask(Open):
    id: str
    run_id: str
    participant_id: str
    name: str
    kind: str
    channel: str | None
    status: str = Field(description="pending, running, completed, timed_out, failed, cancelled or excused")
    chases_sent: int
    data: dict[str, Any]
    data_history: dict[str, list[dict[str, Any]]]
    reason: str | None
    timezone: str | None
    late: bool
    escalated_to: str | None
    created_at: Time | None
    opened_at: Time | None
    completed_at: Time | None
    last_activity_at: Time | None
    escalated_at: Time | None
    next_at: Time | None
    next_action: str | None
    usage: Usage | None = None
    chat_url: str | None = Field(None, description="the participant's web chat link (web channel only)")
    conversation: list[Message] | None = None


class RunSummary(Open):
    """A run without its sub-tasks (``GET /api/runs``)."""

    id: str
    task_id: str
    status: str = Field(description="pending, running, awaiting_review, completed, failed or cancelled")
    trigger: Trigger
    owner: str | None
    gathered: dict[str, Any]
    result_summary: str | None
    error_message: str | None
    closed_by: str | None = Field(description="all, quorum or deadline (how its fan-out closed)")
    created_at: Time | None
    started_at: Time | None
    completed_at: Time | None
    deadline: Time | None
    closed_at: Time | None
    usage: dict[str, int]
    deliverables: list[Deliverable]
    reports: list[Report]
    callback: Callback | None


class Run(RunSummary):
    """The run object (SPEC §8): the run's fields, its deliverables and its sub-tasks."""

    subtasks: list[Subtask]


class Schedule(Open):
    id: str
    task_id: str
    cron: str
    timezone: str
    data: dict[str, Any]
    enabled: bool
    next_run_at: Time | None = Field(description="UTC")
    next_run_local: str | None = Field(description="in the schedule's own zone, with its offset")


class Notification(Open):
    id: str
    kind: str = Field(description="task_completed, task_awaiting_review, task_failed, task_cancelled, "
                                  "assistant_error, task_revised, escalation, report_failed, callback_failed")
    run_id: str
    task_id: str
    text: str
    at: float = Field(description="seconds since the epoch")
