"""Events: the standard envelope apps submit, the stored row, and the list filters.

``EventEnvelope`` reads the canonical JSON envelope of the TypeScript SDK as is (snake_case
keys, ``subject: {type, id}``, ``schema_version``, ``redaction_hints``, ``event_id`` as the
idempotency key); unknown keys of a newer envelope are ignored rather than refused, so
producers can move first.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
)

from ._base import Bool, NonEmptyStr, Params, Row, TenantId, check_json

__all__ = [
    "EVENT_TYPE_PATTERN",
    "MAX_EVENT_IDEMPOTENCY_KEY_LENGTH",
    "MAX_EVENT_PAYLOAD_BYTES",
    "MAX_REDACTION_HINTS_BYTES",
    "EventEnvelope",
    "EventRow",
    "EventSubject",
    "ListEventsParams",
    "RedactionHints",
    "SourceApp",
    "SourceModule",
    "SubmitEventParams",
    "SubmitEventsParams",
]

MAX_EVENT_PAYLOAD_BYTES = 256 * 1024
# Hints are a list of field paths: far smaller than the payload they describe.
MAX_REDACTION_HINTS_BYTES = 16 * 1024
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"

MAX_EVENT_IDEMPOTENCY_KEY_LENGTH = 200

EventType = Annotated[str, Field(max_length=255, pattern=EVENT_TYPE_PATTERN)]
ShortText = Annotated[str, Field(min_length=1, max_length=255)]


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold a NUL: refused here, by name, rather than by the driver.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# The producer's own id of an event: alone, it makes a resubmission the same event
# (30_events.sql applies the same rules).
EventIdempotencyKey = Annotated[
    str,
    Field(min_length=1, max_length=MAX_EVENT_IDEMPOTENCY_KEY_LENGTH),
    AfterValidator(_no_nul),
]


def _key_or_event_id(value: str | None, info: ValidationInfo) -> str | None:
    """``event_id`` (the TypeScript envelope's name) read as ``idempotency_key``.

    Both may be given only with the same value: two different keys for one event would
    leave unclear which one dedupes it.
    """
    event_id: str | None = info.data.get("event_id")
    if value is None:
        return event_id
    if event_id is not None and event_id != value:
        raise ValueError("differs from event_id, its alias")
    return value


class SourceApp(StrEnum):
    SETTLER = "settler"
    AIAS = "aias"
    KEYS = "keys"
    READYLAYER = "readylayer"
    JOBFORGE = "jobforge"
    EXTERNAL = "external"


class SourceModule(StrEnum):
    OPS = "ops"
    SUPPORT = "support"
    GROWTH = "growth"
    FINOPS = "finops"
    CORE = "core"


class RedactionHints(BaseModel):
    """Which payload fields must never leave the event store in clear (dotted paths)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    redact_fields: list[ShortText] = Field(default_factory=list)


class EventSubject(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: ShortText
    id: ShortText


def _check_event_payload(value: dict[str, Any]) -> dict[str, Any]:
    return check_json(value, max_bytes=MAX_EVENT_PAYLOAD_BYTES)  # type: ignore[no-any-return]


def _check_hints(value: Any) -> Any:
    """Hints meet their caps as JSON before they become a model (whose extra keys could
    otherwise hold anything, of any size or depth)."""
    if isinstance(value, RedactionHints):
        extra = value.model_extra or {}
        check_json(
            {"redact_fields": value.redact_fields, **extra}, max_bytes=MAX_REDACTION_HINTS_BYTES
        )
        return value
    return check_json(value, max_bytes=MAX_REDACTION_HINTS_BYTES)


class _EventFields(Params):
    event_type: EventType
    source_app: SourceApp
    payload: dict[str, Any] = Field(default_factory=dict)
    source_module: SourceModule | None = None
    project_id: UUID | None = None
    trace_id: ShortText | None = None
    actor_id: ShortText | None = None
    subject_type: ShortText | None = None
    subject_id: ShortText | None = None
    occurred_at: datetime | None = None
    event_version: Annotated[str, Field(min_length=1, max_length=32)] = "1.0"
    contains_pii: Bool = False
    redaction_hints: RedactionHints | None = None
    # event_id comes first: the idempotency_key validator reads it (fields validate in order).
    event_id: EventIdempotencyKey | None = Field(default=None, exclude=True)
    idempotency_key: EventIdempotencyKey | None = Field(default=None, validate_default=True)

    _key_or_event_id = field_validator("idempotency_key")(_key_or_event_id)

    @field_validator("payload")
    @classmethod
    def _payload_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_event_payload(value)

    _hints = field_validator("redaction_hints", mode="before")(_check_hints)


class SubmitEventParams(_EventFields):
    tenant_id: TenantId


class SubmitEventsParams(Params):
    tenant_id: TenantId
    events: Annotated[list[_EventFields], Field(min_length=1, max_length=1000)]

    def rpc_args(self) -> dict[str, Any]:
        return {
            "p_tenant_id": str(self.tenant_id),
            "p_events": [e.model_dump(mode="json", exclude_none=True) for e in self.events],
        }


class EventEnvelope(BaseModel):
    """The cross-SDK event envelope (what the TypeScript SDK serialises)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: str = "1.0"
    event_version: str = "1.0"
    event_type: EventType
    occurred_at: datetime | None = None
    trace_id: ShortText | None = None
    tenant_id: TenantId | None = None
    project_id: UUID | None = None
    actor_id: ShortText | None = None
    source_app: SourceApp
    source_module: SourceModule | None = None
    subject: EventSubject | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    contains_pii: bool = False
    redaction_hints: RedactionHints | None = None
    # event_id comes first: the idempotency_key validator reads it (fields validate in order).
    event_id: EventIdempotencyKey | None = Field(default=None, exclude=True)
    idempotency_key: EventIdempotencyKey | None = Field(default=None, validate_default=True)

    _key_or_event_id = field_validator("idempotency_key")(_key_or_event_id)

    def submit_fields(self) -> dict[str, Any]:
        """The envelope as ``submit_event`` keyword arguments (``subject`` flattened)."""
        fields = self.model_dump(exclude={"schema_version", "subject"}, exclude_none=True)
        if self.subject is not None:
            fields["subject_type"] = self.subject.type
            fields["subject_id"] = self.subject.id
        return fields


class EventRow(Row):
    id: UUID
    tenant_id: UUID
    project_id: UUID | None = None
    event_version: str
    event_type: str
    occurred_at: datetime
    trace_id: str
    idempotency_key: str | None = None
    actor_id: str | None = None
    source_app: SourceApp
    source_module: SourceModule | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    payload: Any
    contains_pii: bool
    redaction_hints: Any = None
    processed: bool
    processed_at: datetime | None = None
    processing_job_id: UUID | None = None
    created_at: datetime


class ListEventsParams(Params):
    tenant_id: TenantId
    project_id: UUID | None = None
    event_type: EventType | None = None
    source_app: SourceApp | None = None
    source_module: SourceModule | None = None
    processed: Bool | None = None
    trace_id: NonEmptyStr | None = None
    subject_type: NonEmptyStr | None = None
    subject_id: NonEmptyStr | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: Annotated[int, Strict(), Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Strict(), Field(ge=0, le=2147483647)] = 0
    raw: Bool = False

    def rpc_args(self) -> dict[str, Any]:
        filters = self.model_dump(
            mode="json", exclude_none=True, exclude={"tenant_id", "project_id", "since", "until"}
        )
        if not self.raw:
            filters.pop("raw")
        if self.since is not None:
            filters["from"] = self.since.isoformat()
        if self.until is not None:
            filters["to"] = self.until.isoformat()
        args: dict[str, Any] = {"p_tenant_id": str(self.tenant_id), "p_filters": filters}
        if self.project_id is not None:
            args["p_project_id"] = str(self.project_id)
        return args
