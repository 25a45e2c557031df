"""The overview's numbers, computed from bounded job lists.

No RPC counts jobs per status or type, and adding one is a schema change; so the overview
asks ``list_jobs`` for at most ``LIST_CAP`` jobs of each status (newest first) and counts
those. A count that reaches the cap is shown as "at least" (``capped``). Pure functions,
so they are tested without a database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from jobforge_sdk.metrics import LIST_CAP, oldest_age, queue_depth
from jobforge_sdk.models.jobs import JobRow, JobStatus

__all__ = [
    "LIST_CAP",
    "Overview",
    "ThroughputBucket",
    "TypeRow",
    "overview",
    "queue_depth",
    "tenant_ids",
]

FINISHED = (JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.FAILED)


@dataclass(frozen=True)
class TypeRow:
    name: str
    counts: Mapping[JobStatus, int]
    oldest_queued_seconds: float | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class ThroughputBucket:
    start: datetime
    succeeded: int
    failed: int


@dataclass(frozen=True)
class Overview:
    counts: Mapping[JobStatus, int]
    capped: frozenset[JobStatus]
    types: Sequence[TypeRow]
    tenants: Sequence[TypeRow]
    throughput: Sequence[ThroughputBucket]
    throughput_peak: int = field(default=0)


def _grouped(lists: Mapping[JobStatus, Sequence[JobRow]], key: str, now: datetime) -> list[TypeRow]:
    counts: dict[str, Counter[JobStatus]] = {}
    queued: dict[str, list[JobRow]] = {}
    for status, jobs in lists.items():
        for job in jobs:
            name = str(getattr(job, key))
            counts.setdefault(name, Counter())[status] += 1
            if status is JobStatus.QUEUED:
                queued.setdefault(name, []).append(job)
    rows = [
        TypeRow(name, dict(counter), oldest_age(queued.get(name, []), now))
        for name, counter in counts.items()
    ]
    rows.sort(key=lambda row: (-row.total, row.name))
    return rows


def _throughput(
    lists: Mapping[JobStatus, Sequence[JobRow]], now: datetime, minutes: int
) -> list[ThroughputBucket]:
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    ok = [0] * minutes
    bad = [0] * minutes
    for status in FINISHED:
        for job in lists.get(status, ()):
            if job.finished_at is None or job.finished_at < start:
                continue
            slot = int((job.finished_at - start).total_seconds() // 60)
            if 0 <= slot < minutes:
                if status is JobStatus.SUCCEEDED:
                    ok[slot] += 1
                else:
                    bad[slot] += 1
    return [ThroughputBucket(start + timedelta(minutes=i), ok[i], bad[i]) for i in range(minutes)]


def overview(
    lists: Mapping[JobStatus, Sequence[JobRow]], now: datetime, *, minutes: int = 15
) -> Overview:
    """Counts per status, per type and per tenant, and jobs finished per minute over the
    last ``minutes`` (from the finished jobs the lists hold)."""
    counts = {status: len(lists.get(status, ())) for status in JobStatus}
    capped = frozenset(s for s, jobs in lists.items() if len(jobs) >= LIST_CAP)
    buckets = _throughput(lists, now, minutes)
    peak = max((b.succeeded + b.failed for b in buckets), default=0)
    return Overview(
        counts=counts,
        capped=capped,
        types=_grouped(lists, "type", now),
        tenants=_grouped(lists, "tenant_id", now),
        throughput=buckets,
        throughput_peak=peak,
    )


def tenant_ids(jobs: Iterable[JobRow]) -> list[UUID]:
    """Distinct tenants, in the order they first appear (the newest job's first)."""
    seen: dict[UUID, None] = {}
    for job in jobs:
        seen.setdefault(job.tenant_id, None)
    return list(seen)
