"""Concurrency and rate limits that every claim keeps (``supabase/schema/27_limits.sql``).

A limit is keyed by a job type, a tenant, both, or a template cost tier, and caps the
running jobs it counts (``max_running``), their starts per window (``max_starts`` per
``per``), or both. The checks mirror the database's (``jobforge_private.limit_error``),
which checks again for callers who skip the SDK.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, Strict, field_validator

from ._base import NonEmptyStr, Params, Row, TenantId
from .templates import CostTier

__all__ = ["MAX_LIMIT", "DeleteLimitParams", "JobLimit", "ListLimitsParams", "SetLimitParams"]

MAX_LIMIT = 1_000_000
MaxRunning = Annotated[int, Strict(), Field(ge=0, le=MAX_LIMIT)]
MaxStarts = Annotated[int, Strict(), Field(ge=1, le=MAX_LIMIT)]


class JobLimit(Row):
    """A limit as the database answers it, with how many of its jobs run right now."""

    id: UUID
    type: str | None = None
    tenant_id: UUID | None = None
    cost_tier: CostTier | None = None
    max_running: int | None = None
    max_starts: int | None = None
    per_seconds: int | None = None
    running: int
    created_at: datetime
    updated_at: datetime


class _LimitKey(Params):
    type: NonEmptyStr | None = None
    tenant_id: TenantId | None = None
    cost_tier: CostTier | None = None
    actor_id: NonEmptyStr | None = None

    def problem(self) -> tuple[str, str] | None:
        """What is wrong across fields, as (field, reason): the key must name something."""
        if self.cost_tier is None and self.type is None and self.tenant_id is None:
            return "type", "type, tenant_id or cost_tier is required"
        if self.cost_tier is not None and (self.type is not None or self.tenant_id is not None):
            return "cost_tier", "cannot be combined with type or tenant_id"
        return None


class SetLimitParams(_LimitKey):
    max_running: MaxRunning | None = None
    max_starts: MaxStarts | None = None
    # A fixed window, aligned to the Unix epoch: whole seconds from 1 s to a day.
    per: Annotated[timedelta, Strict()] | None = None

    @field_validator("per")
    @classmethod
    def _window(cls, value: timedelta | None) -> timedelta | None:
        if value is not None:
            seconds = value.total_seconds()
            if seconds != int(seconds) or not 1 <= seconds <= 86400:
                raise ValueError("must be whole seconds between 1 second and 1 day")
        return value

    def problem(self) -> tuple[str, str] | None:
        key = super().problem()
        if key is not None:
            return key
        if self.cost_tier is not None and (self.max_starts is not None or self.per is not None):
            return "max_starts", "a cost tier limits running jobs only"
        if self.max_starts is None and self.per is not None:
            return "max_starts", "is required with per"
        if self.max_starts is not None and self.per is None:
            return "per", "is required with max_starts"
        if self.max_running is None and self.max_starts is None:
            return "max_running", "max_running or max_starts is required"
        return None

    def rpc_args(self) -> dict[str, Any]:
        args = super().rpc_args()
        args.pop("p_per", None)
        if self.per is not None:
            args["p_per_seconds"] = int(self.per.total_seconds())
        return args


class ListLimitsParams(Params):
    type: NonEmptyStr | None = None
    tenant_id: TenantId | None = None


class DeleteLimitParams(_LimitKey):
    pass
