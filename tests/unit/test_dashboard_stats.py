"""The overview's arithmetic over bounded job lists (pure: no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from jobforge_sdk.dashboard.stats import LIST_CAP, overview, queue_depth, tenant_ids
from jobforge_sdk.models.jobs import JobRow, JobStatus

NOW = datetime(2026, 12, 6, 12, 30, 30, tzinfo=UTC)


def _job(status: JobStatus, type: str = "t", **fields: Any) -> JobRow:
    base: dict[str, Any] = {
        "id": uuid.uuid4(),
        "tenant_id": fields.pop("tenant_id", uuid.UUID(int=1)),
        "type": type,
        "payload": {},
        "status": status,
        "attempts": 1,
        "max_attempts": 5,
        "run_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return JobRow.model_validate({**base, **fields})


def test_counts_per_status_type_and_tenant() -> None:
    other = uuid.UUID(int=2)
    lists = {
        JobStatus.QUEUED: [
            _job(JobStatus.QUEUED, "a"),
            _job(JobStatus.QUEUED, "b", tenant_id=other),
        ],
        JobStatus.DEAD: [_job(JobStatus.DEAD, "a")],
    }
    view = overview(lists, NOW)
    assert view.counts[JobStatus.QUEUED] == 2
    assert view.counts[JobStatus.DEAD] == 1
    assert view.counts[JobStatus.RUNNING] == 0
    assert not view.capped
    by_type = {row.name: dict(row.counts) for row in view.types}
    assert by_type == {"a": {JobStatus.QUEUED: 1, JobStatus.DEAD: 1}, "b": {JobStatus.QUEUED: 1}}
    assert view.types[0].name == "a"  # the busiest type first
    assert {row.name for row in view.tenants} == {str(uuid.UUID(int=1)), str(other)}


def test_a_full_list_is_marked_capped() -> None:
    lists = {JobStatus.SUCCEEDED: [_job(JobStatus.SUCCEEDED)] * LIST_CAP}
    assert overview(lists, NOW).capped == frozenset({JobStatus.SUCCEEDED})


def test_throughput_buckets_by_finish_minute() -> None:
    lists = {
        JobStatus.SUCCEEDED: [
            _job(JobStatus.SUCCEEDED, finished_at=NOW - timedelta(seconds=10)),
            _job(JobStatus.SUCCEEDED, finished_at=NOW - timedelta(seconds=20)),
            _job(JobStatus.SUCCEEDED, finished_at=NOW - timedelta(minutes=3)),
            _job(JobStatus.SUCCEEDED, finished_at=NOW - timedelta(minutes=30)),  # too old
        ],
        JobStatus.DEAD: [_job(JobStatus.DEAD, finished_at=NOW - timedelta(minutes=3))],
    }
    view = overview(lists, NOW, minutes=5)
    assert [(b.succeeded, b.failed) for b in view.throughput] == [
        (0, 0),
        (1, 1),
        (0, 0),
        (0, 0),
        (2, 0),
    ]
    assert view.throughput[-1].start == datetime(2026, 12, 6, 12, 30, tzinfo=UTC)
    assert view.throughput_peak == 2


def test_queue_depth_and_oldest_due_job() -> None:
    queued = [
        _job(JobStatus.QUEUED, "a", run_at=NOW - timedelta(seconds=90)),
        _job(JobStatus.QUEUED, "a", run_at=NOW - timedelta(seconds=5)),
        _job(JobStatus.QUEUED, "b", run_at=NOW + timedelta(hours=1)),  # not due: not late
    ]
    assert queue_depth(queued, NOW) == {"a": (2, 90.0), "b": (1, 0.0)}


def test_tenant_ids_keep_first_appearance_order() -> None:
    one, two = uuid.UUID(int=1), uuid.UUID(int=2)
    jobs = [_job(JobStatus.QUEUED, tenant_id=t) for t in (two, one, two)]
    assert tenant_ids(jobs) == [two, one]
