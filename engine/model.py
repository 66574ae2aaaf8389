"""The product's nouns (SPEC §1–§3): definitions, contacts, assistants and the states runs move through."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from .durations import JSON_SCHEMA as DURATION_SCHEMA
from .durations import parse_duration
from .filters import FilterError, parse_filter
from .hours import check_away, check_hours, check_zone
from .messages import template_problem

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
FIELD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: Where a deliverable may be posted (``report_to``): a Slack channel by name or id, a Telegram chat, a mailbox.
REPORT_TARGET = re.compile(r"^(slack:(#[a-z0-9][a-z0-9._-]{0,79}|[CG][A-Z0-9]{2,20})"
                           r"|telegram:(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})"
                           r"|email:[^@\s:]+@[^@\s]+\.[^@\s]+)$")

#: Output types known to the engine; plugins add theirs with :func:`register_output_type`.
OUTPUT_TYPES: set[str] = {"freeform", "blog_post", "report", "summary", "image", "proofreading", "file"}
#: The built-in channels.
CHANNELS: tuple[str, ...] = ("slack", "telegram", "email", "web")
#: Channels plugins added (``channels.register``), in the order they were added: tried after the built-in ones.
EXTRA_CHANNELS: list[str] = []


def register_channel(name: str) -> None:
    """Let a plugin add a channel, so contacts and assistants may name it."""
    if not SLUG.match(name):
        raise ValueError(f"{name!r} is no channel name: lowercase letters, digits, - and _")
    if name not in CHANNELS and name not in EXTRA_CHANNELS:
        EXTRA_CHANNELS.append(name)


#: The validation context the store reads records with: what was accepted once stays readable.
STORED = {"stored": True}


def known_channel(name: str, info: ValidationInfo) -> str:
    """A channel name that is built in or a plugin's; refused on input, kept on a stored record's read (a plugin
    since removed leaves contacts that name its channel: they are read, and the channel is not configured)."""
    stored = bool(info.context and info.context.get("stored"))
    if not stored and name not in CHANNELS and name not in EXTRA_CHANNELS:
        raise ValueError(f"unknown channel {name!r} (known: {', '.join([*CHANNELS, *EXTRA_CHANNELS])})")
    return name


ChannelName = Annotated[str, AfterValidator(known_channel)]


def report_target(target: str) -> str:
    if not REPORT_TARGET.match(target):
        raise ValueError(f"{target!r} is not a target: use slack:#channel, slack:C0123, telegram:<chat id> "
                         "or email:<address>")
    return target


def register_output_type(name: str) -> None:
    """Let a plugin add an output type, so definitions using it validate."""
    OUTPUT_TYPES.add(name)


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    AWAITING_REVIEW = "awaiting_review"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_RUN = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class SubtaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    TIMED_OUT = "timed_out"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXCUSED = "excused"


FINAL_SUBTASK = frozenset(
    {
        SubtaskStatus.COMPLETED,
        SubtaskStatus.TIMED_OUT,
        SubtaskStatus.FAILED,
        SubtaskStatus.CANCELLED,
        SubtaskStatus.EXCUSED,
    }
)


class Strict(BaseModel):
    """Unknown keys are refused: a typo in a task file must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class FieldSpec(Strict):
    key: str
    prompt: str
    required: bool = True
    type: Literal["text", "choice", "number", "scale", "date", "list"] = "text"
    choices: list[str] | None = None
    min: float | None = None  # number and scale (a scale is 1–5 unless these say otherwise)
    max: float | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not FIELD_KEY.match(value):
            raise ValueError("must be letters, digits and _ (not starting with a digit)")
        return value

    @model_validator(mode="after")
    def _choices(self) -> FieldSpec:
        if self.type == "choice" and not self.choices:
            raise ValueError("a choice field needs choices")
        if self.type == "choice" and len({c.casefold() for c in self.choices or []}) != len(self.choices or []):
            raise ValueError("choices must differ (ignoring case)")
        if (self.min is not None or self.max is not None) and self.type not in ("number", "scale"):
            raise ValueError("min and max are for number and scale fields")
        if self.type == "scale" and any(v is not None and not float(v).is_integer() for v in (self.min, self.max)):
            raise ValueError("a scale's min and max are whole numbers")
        low = self.min if self.min is not None else (1 if self.type == "scale" else None)
        high = self.max if self.max is not None else (5 if self.type == "scale" else None)
        if low is not None and high is not None and low >= high:
            raise ValueError(f"min ({low:g}) must be below max ({high:g})")
        return self


class Budget(Strict):
    """``budget: {tokens: N}`` on a task or an assistant: the model tokens (prompt and completion) one run may
    spend. A run that would go past it calls the model no more: the rest of its conversations go on with the
    scripted questions, and its owner is told once."""

    tokens: int = Field(ge=1)


ESCALATION_TEXT = "Hi {name}: {missing} has not answered \"{task}\" yet, after every reminder. It closes {deadline}."


class ChaseSpec(Strict):
    """Reminders, and (``escalate_to``) one message to the participant's manager or the run's owner
    after the last one. Both texts may use the placeholders of :mod:`.messages`."""

    interval: Annotated[float, WithJsonSchema(DURATION_SCHEMA)] = 24 * 3600
    max_chases: int = Field(default=2, ge=0, le=20)
    message: str = "Reminder: we are still waiting for your answer."
    escalate_to: Literal["manager", "owner"] | None = None
    escalation_message: str = ESCALATION_TEXT

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("message", "escalation_message")
    @classmethod
    def _template(cls, value: str) -> str:
        problem = template_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class CloseSpec(Strict):
    """When a fan-out closes before everyone is final: at a deadline (``at`` or ``after`` the run's
    start) or as soon as the ``quorum`` fraction of its sub-tasks is completed (SPEC §11)."""

    at: datetime | None = None
    after: Annotated[float, WithJsonSchema(DURATION_SCHEMA)] | None = None
    quorum: float | None = None

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("must be an ISO date-time with an offset, e.g. 2024-05-17T17:00:00+02:00")
        return value

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("quorum")
    @classmethod
    def _quorum(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value <= 1:
            raise ValueError("must be a fraction more than 0 and at most 1, e.g. 0.7 for 70 %")
        return value

    @model_validator(mode="after")
    def _one_deadline(self) -> CloseSpec:
        if self.at is not None and self.after is not None:
            raise ValueError("give at or after, not both")
        if self.at is None and self.after is None and self.quorum is None:
            raise ValueError("give at, after or quorum")
        return self


class TemplateSpec(Strict):
    """A fan-out to participants; every participant answers the same fields privately."""

    instructions: str = ""
    fields: list[FieldSpec] = Field(min_length=1)
    participants: list[str] | None = None
    participants_from: str | None = None
    dataset: str | None = None
    filter: str | None = None
    participant_field: str = "email"
    chase: ChaseSpec = Field(default_factory=ChaseSpec)
    close: CloseSpec | None = None
    accept_late: bool = False
    #: for participants whose contact has none (SPEC §11); unset: TASKBOT_WORKING_HOURS
    working_hours: str | list[str] | None = None

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: str | list[str] | None) -> str | list[str] | None:
        return check_hours(value)

    @field_validator("fields")
    @classmethod
    def _unique_keys(cls, fields: list[FieldSpec]) -> list[FieldSpec]:
        keys = [f.key for f in fields]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"duplicate field key {', '.join(dupes)}")
        return fields

    @field_validator("participants_from")
    @classmethod
    def _from(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^gathered\.[A-Za-z_][\w.]*$", value):
            raise ValueError("must look like gathered.<key>")
        return value

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_filter(value)
            except FilterError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> TemplateSpec:
        sources = [s for s in ("participants", "participants_from", "dataset") if getattr(self, s) is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of participants, participants_from or dataset")
        if self.filter is not None and self.dataset is None:
            raise ValueError("filter needs a dataset")
        return self


class ConversationState(Strict):
    """The assistant talks with the run's owner; with no fields it is a free conversation that
    ends when the assistant completes it (a litellm model) or at the owner's first reply (scripted)."""

    type: Literal["conversation"]
    name: str | None = None
    instructions: str = ""
    fields: list[FieldSpec] = Field(default_factory=list)


class TaskState(TemplateSpec):
    type: Literal["task"]
    name: str | None = None


class CompileState(Strict):
    type: Literal["compile"]
    name: str | None = None
    instructions: str = ""


WorkflowState = Annotated[ConversationState | TaskState | CompileState, Field(discriminator="type")]


class TaskDefinition(Strict):
    id: str
    name: str
    output_type: str = "report"
    description: str = ""
    assistant: str = "default"
    allowed_tools: list[str] = Field(default_factory=list)
    active: bool = True
    review: bool = False
    owner: str | None = None
    template: TemplateSpec | None = None
    workflow: list[WorkflowState] | None = None
    report_to: list[Annotated[str, AfterValidator(report_target)]] = Field(default_factory=list)
    budget: Budget | None = None
    _states: list[ConversationState | TaskState | CompileState] | None = PrivateAttr(default=None)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError("must be a slug: lowercase letters, digits, - and _")
        return value

    @field_validator("output_type")
    @classmethod
    def _output_type(cls, value: str) -> str:
        if value not in OUTPUT_TYPES:
            raise ValueError(f"unknown output type {value!r} (known: {', '.join(sorted(OUTPUT_TYPES))})")
        return value

    @field_validator("report_to")
    @classmethod
    def _targets(cls, targets: list[str]) -> list[str]:
        return list(dict.fromkeys(targets))

    @model_validator(mode="after")
    def _shape(self) -> TaskDefinition:
        if self.template is not None and self.workflow is not None:
            raise ValueError("give template or workflow, not both")
        if self.workflow is not None and not self.workflow:
            raise ValueError("workflow needs at least one state")
        return self

    def states(self) -> list[ConversationState | TaskState | CompileState]:
        """The workflow the run walks through; a template is shorthand for [task, compile].

        Computed once per definition object: a template listing ten thousand participants
        must not be copied again for every sub-task opened or chased.
        """
        if self._states is None:
            if self.workflow is not None:
                self._states = list(self.workflow)
            elif self.template is not None:
                task = TaskState.model_construct(type="task", name=None, **{
                    name: getattr(self.template, name) for name in TemplateSpec.model_fields})
                self._states = [task, CompileState(type="compile")]
            else:
                self._states = [CompileState(type="compile", instructions=self.description)]
        return self._states


class Contact(Strict):
    id: str = ""
    name: str = ""
    email: str | None = None
    slack_user_id: str | None = None
    telegram_chat_id: str | None = None
    preferred_channel: ChannelName | None = None
    #: Addresses on channels plugins add (``{"pager": "P-77"}``); the built-in ones have their own fields.
    addresses: dict[str, str] = Field(default_factory=dict)
    timezone: str = "UTC"
    manager: str | None = None
    away_until: str | None = None
    working_hours: str | list[str] | None = None

    @field_validator("timezone", mode="before")
    @classmethod
    def _zone(cls, value: Any) -> Any:
        return "UTC" if value in (None, "") else check_zone(str(value).strip())

    @field_validator("away_until")
    @classmethod
    def _away(cls, value: str | None) -> str | None:
        return None if value is None else check_away(value)

    @field_validator("working_hours", mode="before")
    @classmethod
    def _hours(cls, value: Any) -> Any:
        return None if value in (None, "", []) else check_hours(value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
            raise ValueError(f"{value!r} is not an email address")
        return value.lower()

    @field_validator("addresses", mode="before")
    @classmethod
    def _addresses_text(cls, value: Any) -> Any:
        """A CSV cell: ``pager=P-77; sms=+15550100`` (JSON and the API give an object)."""
        if value in (None, ""):
            return {}
        if isinstance(value, str):
            pairs = [p.partition("=") for p in value.split(";") if p.strip()]
            if any(not sep for _, sep, _ in pairs):
                raise ValueError("write each address as channel=address, separated by ;")
            return {k.strip(): v.strip() for k, _, v in pairs}
        return value

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        for name, address in value.items():
            if name in CHANNELS:
                raise ValueError(f"{name!r} is a built-in channel: give its address in its own field")
            known_channel(name, info)
            if not address:
                raise ValueError(f"{name}: an address may not be empty")
        return value

    @field_validator("telegram_chat_id", "slack_user_id", "preferred_channel", "manager", "away_until", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if value == "":
            return None
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _identity(self) -> Contact:
        if not self.id:
            if not self.email:
                raise ValueError("a contact needs an id or an email")
            self.id = self.email
        if not self.name:
            self.name = self.id.split("@")[0]
        return self


class Assistant(Strict):
    """``model`` is ``scripted`` or a litellm model string (``openai/gpt-4o-mini``, ``ollama/llama3``);
    ``api_base`` points it at a server of your own (an OpenAI-compatible one, Ollama, a proxy) and
    ``api_key_env`` names the environment variable holding its key (the key itself is never stored)."""

    id: str
    model: str = "scripted"
    system_prompt: str = ""
    tools: list[str] = Field(default_factory=list)
    channels: list[ChannelName] = Field(default_factory=lambda: [*CHANNELS, *EXTRA_CHANNELS])
    max_concurrent_tasks: int | None = Field(default=None, ge=1)
    api_base: str | None = None
    api_key_env: str | None = None
    image_model: str | None = None  # for `image` deliverables; default: ``model``
    budget: Budget | None = None  # per run of any task this assistant does (the task's own, if lower, wins)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError("must be a slug: lowercase letters, digits, - and _")
        return value

    @property
    def scripted(self) -> bool:
        return self.model == "scripted"
