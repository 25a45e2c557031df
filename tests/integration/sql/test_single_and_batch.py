"""The single and the batch RPCs refuse the same values with the same reason.

Each input rule is written twice in SQL (a one-value helper for the single RPC, a
set-based check for the batch, so the batch stays fast: see 00_private.sql). These tests
hold the two to the same verdict, and check that a refused call writes nothing.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

JOB_CASES: list[tuple[str, Any]] = [
    ("type", None),
    ("type", ""),
    ("type", "autopilot.ops.scan"),
    ("type", "x" * 256),
    ("idempotency_key", ""),
    ("idempotency_key", "k" * 256),
    ("max_attempts", 0),
    ("max_attempts", 101),
    ("payload", {"x": "a" * (1024 * 1024)}),
]

EVENT_CASES: list[tuple[str, Any]] = [
    ("event_type", "Not.Dotted Lowercase"),
    ("event_type", "single"),
    ("source_app", "nobody"),
    ("source_module", "marketing"),
    ("payload", [1, 2]),
    ("payload", {"x": "a" * (256 * 1024)}),
    ("trace_id", ""),
    ("redaction_hints", [1]),
]


def _refusal(conn: psycopg.Connection[Any], query: str, *params: Any) -> str:
    with pytest.raises(psycopg.Error) as info, conn.transaction():
        conn.execute(query, params)
    assert info.value.sqlstate == "PT400", info.value
    return info.value.diag.message_primary or ""


def _count(conn: psycopg.Connection[Any], table: str, tenant: uuid.UUID) -> int:
    row = conn.execute(f"select count(*) from public.{table} where tenant_id = %s", (tenant,))
    found = row.fetchone()
    assert found is not None
    return int(found[0])


@pytest.mark.parametrize(("field", "value"), JOB_CASES)
def test_enqueue_and_enqueue_jobs_agree(
    admin_conn: psycopg.Connection[Any], field: str, value: Any
) -> None:
    tenant = uuid.uuid4()
    job: dict[str, Any] = {"type": "parity.job", "payload": {}, "max_attempts": 5}
    job[field] = value
    single = _refusal(
        admin_conn,
        "select public.jobforge_enqueue_job(p_tenant_id => %s, p_type => %s,"
        " p_payload => %s::jsonb, p_idempotency_key => %s, p_max_attempts => %s)",
        tenant,
        job["type"],
        json.dumps(job["payload"]),
        job.get("idempotency_key"),
        job["max_attempts"],
    )
    batch = _refusal(
        admin_conn,
        "select public.jobforge_enqueue_jobs(%s, %s::jsonb)",
        tenant,
        json.dumps([{"type": "parity.ok"}, job]),
    )
    assert single.startswith(f"{field}: "), single
    assert batch == f"jobs[1].{single}"
    assert _count(admin_conn, "jobforge_jobs", tenant) == 0


@pytest.mark.parametrize(("field", "value"), EVENT_CASES)
def test_submit_event_and_submit_events_agree(
    admin_conn: psycopg.Connection[Any], field: str, value: Any
) -> None:
    tenant = uuid.uuid4()
    event: dict[str, Any] = {
        "event_type": "parity.checked",
        "source_app": "settler",
        "payload": {},
        "trace_id": "trace-1",
    }
    event[field] = value
    params = {name: event.get(name) for name in (*event, "source_module", "redaction_hints")}
    single = _refusal(
        admin_conn,
        "select public.jobforge_submit_event(p_tenant_id => %s, p_event_type => %s,"
        " p_source_app => %s, p_payload => %s::jsonb, p_trace_id => %s,"
        " p_source_module => %s, p_redaction_hints => %s::jsonb)",
        tenant,
        params["event_type"],
        params["source_app"],
        json.dumps(params["payload"]),
        params["trace_id"],
        params["source_module"],
        None if params["redaction_hints"] is None else json.dumps(params["redaction_hints"]),
    )
    batch = _refusal(
        admin_conn,
        "select public.jobforge_submit_events(%s, %s::jsonb)",
        tenant,
        json.dumps([{"event_type": "parity.ok", "source_app": "settler"}, event]),
    )
    assert single.startswith(f"{field}: "), single
    assert batch == f"events[1].{single}"
    assert _count(admin_conn, "jobforge_events", tenant) == 0


@pytest.mark.parametrize("hints", [{}, {"note": 1}, {"redact_fields": []}])
def test_redaction_hints_without_fields_are_accepted_single_and_batch(
    admin_conn: psycopg.Connection[Any], hints: dict[str, Any]
) -> None:
    tenant = uuid.uuid4()
    admin_conn.execute(
        "select public.jobforge_submit_event(p_tenant_id => %s, p_event_type => 'parity.hints',"
        " p_source_app => 'settler', p_payload => '{}', p_redaction_hints => %s::jsonb)",
        (tenant, json.dumps(hints)),
    )
    admin_conn.execute(
        "select public.jobforge_submit_events(%s, %s::jsonb)",
        (
            tenant,
            json.dumps(
                [{"event_type": "parity.hints", "source_app": "settler", "redaction_hints": hints}]
            ),
        ),
    )
    assert _count(admin_conn, "jobforge_events", tenant) == 2
