"""Retention purges, all in batches: ``purge_finished_jobs``, ``purge_manifests``,
``purge_expired_events`` and ``purge_audit_logs`` (``supabase/schema/20_jobs.sql``,
``50_manifests.sql``, ``30_events.sql``, ``10_audit.sql``).

Each deletes at most ``batch_size`` rows per call so no call holds its row locks for
long; the answer says whether more remain, and the caller loops. Jobs and manifests take
a duration; events and audit rows keep their whole ``retention_days``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from pydantic import Field, Strict, field_validator

from ._base import JsonObject, NonEmptyStr, Params, PurgeParams, Row

__all__ = [
    "MAX_PURGE_BATCH",
    "MAX_RETENTION",
    "BatchedDaysParams",
    "ClaimDailyPurgeParams",
    "DailyPurgeClaim",
    "PurgeResult",
    "RetentionParams",
]

MAX_PURGE_BATCH = 10_000
# The database's bound (jobforge_private.retention_cutoff): 100 years of days, as the
# SDK bounds retention_days.
MAX_RETENTION = timedelta(days=36_500)


BatchSize = Annotated[int, Strict(), Field(ge=1, le=MAX_PURGE_BATCH)]


class RetentionParams(Params):
    # Strict: a number is not a duration (``30`` would be 30 what?), and ``True`` is not
    # a batch of one.
    older_than: Annotated[timedelta, Strict()]
    batch_size: BatchSize = MAX_PURGE_BATCH

    @field_validator("older_than")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        if value > MAX_RETENTION:
            raise ValueError("must be at most 36500 days")
        return value

    def rpc_args(self) -> dict[str, Any]:
        # Seconds as a plain interval literal: unambiguous for both transports.
        return {
            "p_older_than": f"{self.older_than.total_seconds()} seconds",
            "p_batch_size": self.batch_size,
        }


class PurgeResult(Row):
    """One batch of a purge: how many rows it deleted, and whether more remain (call
    again while ``more`` is true)."""

    deleted: int
    more: bool


class BatchedDaysParams(PurgeParams):
    """``purge_expired_events`` and ``purge_audit_logs``: whole days, in batches."""

    batch_size: BatchSize = MAX_PURGE_BATCH


class ClaimDailyPurgeParams(Params):
    taken_by: NonEmptyStr | None = None
    settings: JsonObject | None = None


class DailyPurgeClaim(Row):
    """The answer of the scheduler's daily guard: ``taken`` for the one caller of the
    day (UTC) that runs the purge; the others learn who took it and when."""

    taken: bool
    day: date
    taken_by: str | None = None
    started_at: datetime | None = None
