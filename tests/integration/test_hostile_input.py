"""Hostile input through the clients and the worker, on a real database (issue 17).

Values at the caps travel and come back readable on all four transports; text the
database cannot hold is ``InvalidInputError`` at the transport boundary too (a caller
who skips the SDK's checks); and one job the worker cannot handle fails that job, never
the worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from jobforge_sdk import (
    InvalidInputError,
    JobContext,
    JobForgeClient,
    JobStatus,
)
from jobforge_sdk.models._base import MAX_JSON_DEPTH
from jobforge_sdk.runtime.worker import Worker


def nested(depth: int) -> Any:
    value: Any = {}
    for level in range(depth - 1):
        value = [value] if level % 2 else {"k": value}
    return value


def test_values_at_the_depth_cap_travel_and_read_back(client: Any) -> None:
    tenant = uuid.uuid4()
    jtype = f"cap.{uuid.uuid4().hex[:8]}"
    payload = {"k": nested(MAX_JSON_DEPTH - 1)}
    job = client.enqueue_job(tenant_id=tenant, type=jtype, payload=payload)
    assert job.payload == payload
    assert [j.payload for j in client.list_jobs(tenant_id=tenant)] == [payload]
    (held,) = client.claim_jobs(worker_id="w", types=[jtype])
    assert held.payload == payload
    done = client.complete_job(
        job_id=held.id, worker_id="w", status="succeeded", result={"k": nested(MAX_JSON_DEPTH - 1)}
    )
    assert done.result == {"k": nested(MAX_JSON_DEPTH - 1)}
    with pytest.raises(InvalidInputError, match=r"payload: .*nested at most 64 levels deep"):
        client.enqueue_job(tenant_id=tenant, type=jtype, payload={"k": nested(MAX_JSON_DEPTH)})


def test_text_the_database_cannot_hold_is_invalid_input_at_the_boundary(
    client: Any, transport_kind: str, migrated_db_url: str
) -> None:
    """Straight to the transport, past the SDK's own checks: the driver's or the server's
    refusal is mapped to ``InvalidInputError`` (it used to be a ``TransportError``, which
    a caller retries forever), and nothing is written."""
    tenant = uuid.uuid4()
    for args in (
        {"p_tenant_id": str(tenant), "p_type": "a\x00b"},
        {"p_tenant_id": str(tenant), "p_type": "t", "p_idempotency_key": "k\x00"},
        {"p_tenant_id": str(tenant), "p_type": "t", "p_payload": {"k": "a\x00"}},
    ):
        with pytest.raises(InvalidInputError):
            client.transport.call("jobforge_enqueue_job", args)
    if transport_kind.startswith("postgres"):
        with pytest.raises(InvalidInputError):
            client.transport.call(
                "jobforge_enqueue_job", {"p_tenant_id": str(tenant), "p_type": "a\ud800"}
            )
    with psycopg.connect(migrated_db_url) as conn:
        row = conn.execute(
            "select count(*) from jobforge_jobs where tenant_id = %s", (tenant,)
        ).fetchone()
    assert row == (0,)


@pytest.fixture
def sync_client(fresh_db_url: str) -> Iterator[JobForgeClient]:
    with JobForgeClient.from_postgres(fresh_db_url, max_size=6) as c:
        yield c


def _insert_raw(url: str, tenant: uuid.UUID, jtype: str, payload_json: str) -> uuid.UUID:
    """A job written past every RPC (as one written before the caps existed)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "insert into jobforge_jobs (tenant_id, type, payload) values (%s, %s, %s::jsonb)"
            " returning id",
            (tenant, jtype, payload_json),
        ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def test_a_row_deeper_than_the_cap_does_not_stop_claims_or_lists(
    sync_client: JobForgeClient, fresh_db_url: str
) -> None:
    tenant = uuid.uuid4()
    deep = '{"k":' * 300 + "1" + "}" * 300  # deeper than pydantic's JSON parser goes
    poisoned = _insert_raw(fresh_db_url, tenant, "hostile.deep", deep)
    fine = sync_client.enqueue_job(tenant_id=tenant, type="hostile.fine", payload={"n": 1})
    seen: list[str] = []

    def handle(ctx: JobContext) -> dict[str, Any]:
        seen.append(ctx.job.type)
        return {"ok": True}

    worker = Worker(sync_client, {"hostile.deep": handle, "hostile.fine": handle}, listen=False)
    assert worker.run_until_idle(timeout=30) == 2
    assert sorted(seen) == ["hostile.deep", "hostile.fine"]
    jobs = {job.id: job for job in sync_client.list_jobs(tenant_id=tenant)}
    assert jobs[poisoned].status is JobStatus.SUCCEEDED
    assert jobs[fine.id].status is JobStatus.SUCCEEDED


def test_what_a_handler_returns_that_cannot_be_reported_fails_that_job_only(
    sync_client: JobForgeClient,
) -> None:
    tenant = uuid.uuid4()
    returns: dict[str, Any] = {
        "hostile.set": {1, 2},
        "hostile.big": "x" * (1024 * 1024 + 1),
        "hostile.deep": {"k": nested(MAX_JSON_DEPTH)},
        "hostile.fine": {"ok": True},
    }
    ids = {jtype: sync_client.enqueue_job(tenant_id=tenant, type=jtype).id for jtype in returns}

    def handler(value: Any) -> Any:
        return lambda ctx: value

    worker = Worker(sync_client, {jtype: handler(v) for jtype, v in returns.items()}, listen=False)
    assert worker.run_until_idle(timeout=30) == 4
    for jtype, job_id in ids.items():
        job = sync_client.get_job(job_id=job_id, tenant_id=tenant)
        assert job is not None
        if jtype == "hostile.fine":
            assert job.status is JobStatus.SUCCEEDED
        else:
            # Not retryable: the same handler returns the same value again.
            assert job.status is JobStatus.DEAD, jtype
            assert job.attempts == 1
            assert job.error["type"] == "UnreportableResult", job.error
            assert job.error["message"].startswith("result: ")


def test_anything_failing_around_a_job_fails_that_job_not_the_worker(
    sync_client: JobForgeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard around each run: whatever escapes ``_execute`` (a bug between claim and
    handler) ends that job as failed for good, and the thread goes on to the next."""
    tenant = uuid.uuid4()
    bad = sync_client.enqueue_job(tenant_id=tenant, type="hostile.guard", payload={"bad": True})
    good = sync_client.enqueue_job(tenant_id=tenant, type="hostile.guard", payload={"bad": False})

    def ok(ctx: JobContext) -> dict[str, Any]:
        return {"ok": True}

    worker = Worker(sync_client, {"hostile.guard": ok}, listen=False)
    original = worker._execute

    def execute(job: Any) -> None:
        if job.payload.get("bad"):
            raise KeyError("no such thing")
        original(job)

    monkeypatch.setattr(worker, "_execute", execute)
    worker.concurrency = 1
    assert worker.run_until_idle(timeout=30) == 2
    failed = sync_client.get_job(job_id=bad.id, tenant_id=tenant)
    assert failed is not None
    assert failed.status is JobStatus.DEAD
    assert failed.error["type"] == "JobSetupError"
    assert "KeyError" in failed.error["message"]
    done = sync_client.get_job(job_id=good.id, tenant_id=tenant)
    assert done is not None
    assert done.status is JobStatus.SUCCEEDED


def test_payload_caps_hold_for_a_direct_insert_helper_too(fresh_db_url: str) -> None:
    """The private insert helper keeps the stored payload's size cap (template jobs go
    through it); the depth cap is the public arguments'."""
    with (
        psycopg.connect(fresh_db_url, autocommit=True) as conn,
        pytest.raises(psycopg.Error) as info,
    ):
        conn.execute(
            "select jobforge_private.enqueue_job(%s, 't', %s)",
            (uuid.uuid4(), Jsonb({"x": "a" * 1048577})),
        )
    assert info.value.sqlstate == "PT400"
