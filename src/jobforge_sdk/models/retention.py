"""Retention purges that work in batches: ``purge_finished_jobs`` and
``purge_manifests`` (``supabase/schema/20_jobs.sql``, ``50_manifests.sql``).

They take a duration rather than a number of days (the older ``purge_expired_events``
and ``purge_audit_logs`` keep ``retention_days``), and delete at most ``batch_size``
rows per call so no call holds its row locks for long; the answer says whether more
remain, and the caller loops.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, Strict, field_validator

from ._base import Params, Row

__all__ = ["MAX_PURGE_BATCH", "MAX_RETENTION", "PurgeResult", "RetentionParams"]

MAX_PURGE_BATCH = 10_000
# The database's bound (jobforge_private.retention_cutoff): 100 years of days, as the
# SDK bounds retention_days.
MAX_RETENTION = timedelta(days=36_500)


class RetentionParams(Params):
    # Strict: a number is not a duration (``30`` would be 30 what?), and ``True`` is not
    # a batch of one.
    older_than: Annotated[timedelta, Strict()]
    batch_size: Annotated[int, Strict(), Field(ge=1, le=MAX_PURGE_BATCH)] = MAX_PURGE_BATCH

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
