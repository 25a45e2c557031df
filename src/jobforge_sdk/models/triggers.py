"""Triggers: cron schedules and event matches that request template jobs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, Strict, field_validator

from ._base import Bool, NonEmptyStr, Params, Row, TargetInputs, TenantId
from .events import SourceApp
from .jobs import JobRow

__all__ = [
    "CreateCronTriggerParams",
    "CreateEventTriggerParams",
    "CronFireResult",
    "FireCronTriggerParams",
    "ListTriggersParams",
    "MisfirePolicy",
    "SetTriggerEnabledParams",
    "SetTriggerMisfirePolicyParams",
    "Trigger",
    "TriggerRef",
    "TriggerType",
]

EVENT_FILTER_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*|(\.[a-z][a-z0-9_]*))$"


class TriggerType(StrEnum):
    CRON = "cron"
    EVENT = "event"


class MisfirePolicy(StrEnum):
    """What the scheduler does with the slots of a cron trigger that passed while no
    scheduler fired them (docs/operations.md, "Missed cron slots")."""

    SKIP = "skip"  # fire none of them: the next slot is the next fire
    RUN_ONCE = "run_once"  # fire the latest of them, once
    CATCH_UP = "catch_up"  # fire each of them, oldest first, at most max_catch_up


# How many missed slots ``catch_up`` fires at most: the database's bounds and default.
MAX_CATCH_UP = 1000
DEFAULT_MAX_CATCH_UP = 10
CatchUp = Annotated[int, Strict(), Field(ge=1, le=MAX_CATCH_UP)]


class Trigger(Row):
    id: UUID
    tenant_id: UUID
    project_id: UUID | None = None
    name: str
    trigger_type: TriggerType
    cron_expression: str | None = None
    event_type_filter: str | None = None
    event_source_filter: str | None = None
    target_template_key: str
    target_inputs: dict[str, Any]
    enabled: bool
    dry_run: bool
    cooldown_seconds: int
    max_fires_per_hour: int
    last_fired_at: datetime | None = None
    last_job_id: UUID | None = None
    fire_count: int
    # Cron triggers only (None for event triggers).
    misfire_policy: MisfirePolicy | None = None
    max_catch_up: int | None = None
    # The newest cron slot claimed (fired, dry-run or skipped): missed slots count from it.
    last_scheduled_for: datetime | None = None
    # When the trigger was last switched on: the slots of a time it was off are not missed.
    enabled_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class _CreateTrigger(Params):
    tenant_id: TenantId
    name: NonEmptyStr
    target_template_key: NonEmptyStr
    target_inputs: TargetInputs = Field(default_factory=dict)
    enabled: Bool = False
    dry_run: Bool = False
    cooldown_seconds: Annotated[int, Strict(), Field(ge=0, le=86400)] = 0
    max_fires_per_hour: Annotated[int, Strict(), Field(ge=1, le=3600)] = 60
    project_id: UUID | None = None
    actor_id: NonEmptyStr | None = None


class CreateCronTriggerParams(_CreateTrigger):
    cron_expression: NonEmptyStr
    misfire_policy: MisfirePolicy = MisfirePolicy.SKIP
    max_catch_up: CatchUp = DEFAULT_MAX_CATCH_UP

    @field_validator("cron_expression")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        from croniter import croniter  # imported here: only trigger creation needs it

        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError("must be a valid 5-field cron expression")
        return value

    def rpc_args(self) -> dict[str, Any]:
        return {**super().rpc_args(), "p_trigger_type": TriggerType.CRON.value}


class CreateEventTriggerParams(_CreateTrigger):
    event_type_filter: Annotated[str, Field(max_length=255, pattern=EVENT_FILTER_PATTERN)]
    event_source_filter: SourceApp | None = None

    def rpc_args(self) -> dict[str, Any]:
        return {**super().rpc_args(), "p_trigger_type": TriggerType.EVENT.value}


class ListTriggersParams(Params):
    tenant_id: TenantId
    trigger_type: TriggerType | None = None
    enabled: Bool | None = None
    limit: Annotated[int, Strict(), Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Strict(), Field(ge=0, le=2147483647)] = 0

    def rpc_args(self) -> dict[str, Any]:
        filters = self.model_dump(mode="json", exclude_none=True, exclude={"tenant_id"})
        return {"p_tenant_id": str(self.tenant_id), "p_filters": filters}


class TriggerRef(Params):
    trigger_id: UUID
    tenant_id: TenantId
    actor_id: NonEmptyStr | None = None


class SetTriggerEnabledParams(TriggerRef):
    enabled: Bool


class SetTriggerMisfirePolicyParams(TriggerRef):
    misfire_policy: MisfirePolicy
    # None keeps the trigger's current value.
    max_catch_up: CatchUp | None = None


class FireCronTriggerParams(Params):
    trigger_id: UUID
    scheduled_for: datetime


class CronFireResult(Row):
    """What one ``fire_cron_trigger`` call did for its slot."""

    fired: bool
    job: JobRow | None = None
    dry_run: bool = False
    reason: str | None = None
    audit_id: UUID | None = None
    trigger_id: UUID | None = None
    scheduled_for: datetime | None = None
