"""Every JSON argument's depth and size caps, enforced by the database for a caller who
skips the SDK (issue 17): the same words as the SDK, PT400, and nothing written.

Also: claims that are not JSON are an authentication failure, not bad input, and a
user's pure token verifications cannot grow the audit trail without bound.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from jobforge_sdk._transports._sql import map_error
from jobforge_sdk.errors import PermissionDeniedError
from tests.integration.sql.helpers import SCAN, ActAs, count, sql_error
from tests.support.roles import RoleSession, tenant_claims

DEPTH = "must be nested at most 64 levels deep"


def nested(depth: int) -> Any:
    """Containers nested ``depth`` deep, lists and objects alternating (depth 1 is ``{}``)."""
    value: Any = {}
    for level in range(depth - 1):
        value = [value] if level % 2 else {"k": value}
    return value


def row_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Rows of every table of the library (public.jobforge_* and jobforge_private)."""
    tables = conn.execute(
        "select format('%I.%I', n.nspname, c.relname) from pg_class c"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where c.relkind = 'r' and ((n.nspname = 'public' and c.relname like 'jobforge%')"
        " or n.nspname = 'jobforge_private')"
    ).fetchall()
    return {t: count(conn, f"select count(*) from {t}") for (t,) in tables}


@pytest.fixture
def sr(enabled_db_url: str) -> Iterator[RoleSession]:
    session = RoleSession(enabled_db_url, "service_role")
    yield session
    session.close()


@pytest.fixture
def admin(enabled_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(enabled_db_url, autocommit=True) as conn:
        yield conn


def _refused(
    admin: psycopg.Connection[Any], session: RoleSession, message: str, fn: str, **args: Any
) -> None:
    before = row_counts(admin)
    with sql_error("PT400", message):
        session.call(fn, **args)
    assert row_counts(admin) == before, (fn, message)


def test_jobs_payload_depth(sr: RoleSession, admin: psycopg.Connection[Any]) -> None:
    tenant = uuid.uuid4()
    job = sr.call("jobforge_enqueue_job", p_tenant_id=tenant, p_type="t", p_payload=nested(64))
    assert job["payload"] == nested(64)
    _refused(
        admin, sr, f"payload: {DEPTH}", "jobforge_enqueue_job",
        p_tenant_id=tenant, p_type="t", p_payload=nested(65),
    )  # fmt: skip
    _refused(
        admin, sr, f"jobs[1].payload: {DEPTH}", "jobforge_enqueue_jobs",
        p_tenant_id=tenant, p_jobs=[{"type": "t"}, {"type": "t", "payload": nested(65)}],
    )  # fmt: skip
    # 5,000 deep (as text: Python's own encoder stops near 1,000): refused by the same
    # check, not by the server's stack.
    before = row_counts(admin)
    with sql_error("PT400", f"payload: {DEPTH}"):
        admin.execute(
            "select public.jobforge_enqueue_job(p_tenant_id => %s, p_type => 't',"
            " p_payload => %s::jsonb)",
            (tenant, '{"k":' * 5000 + "1" + "}" * 5000),
        )
    assert row_counts(admin) == before


def test_result_and_error_caps(sr: RoleSession, admin: psycopg.Connection[Any]) -> None:
    tenant = uuid.uuid4()
    jtype = f"t.{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        sr.call("jobforge_enqueue_job", p_tenant_id=tenant, p_type=jtype)
    held = sr.call("jobforge_claim_jobs", p_worker_id="w", p_limit=2, p_types=[jtype])
    one, two = (job["id"] for job in held)
    common = {"p_job_id": one, "p_worker_id": "w"}
    _refused(
        admin, sr, f"result: {DEPTH}", "jobforge_complete_job",
        **common, p_status="succeeded", p_result=nested(65),
    )  # fmt: skip
    _refused(
        admin, sr, "result: must be at most 1 MiB", "jobforge_complete_job",
        **common, p_status="succeeded", p_result={"x": "a" * 1048576},
    )  # fmt: skip
    _refused(
        admin, sr, "error: must be at most 64 KiB", "jobforge_complete_job",
        **common, p_status="failed", p_error={"message": "a" * 65536},
    )  # fmt: skip
    _refused(
        admin, sr, f"error: {DEPTH}", "jobforge_complete_job",
        **common, p_status="failed", p_error=nested(65),
    )  # fmt: skip
    for item in (
        {"job_id": two, "status": "succeeded", "result": nested(65)},
        {"job_id": two, "status": "failed", "error": nested(65)},
        {"job_id": two, "status": "failed", "error": {"m": "a" * 65536}},
        {"job_id": two, "status": "succeeded", "result": "a" * 1048577},
    ):
        _refused(
            admin, sr, "results[1]: must be an object", "jobforge_complete_jobs",
            p_worker_id="w", p_results=[{"job_id": one, "status": "succeeded"}, item],
        )  # fmt: skip
    # At the caps: accepted.
    done = sr.call(
        "jobforge_complete_jobs",
        p_worker_id="w",
        p_results=[
            {"job_id": one, "status": "succeeded", "result": nested(64)},
            {"job_id": two, "status": "failed", "error": nested(64), "retryable": False},
        ],
    )
    assert {row["status"] for row in done} == {"succeeded", "dead"}


def test_event_caps(sr: RoleSession, admin: psycopg.Connection[Any]) -> None:
    tenant = uuid.uuid4()
    event = {"p_tenant_id": tenant, "p_event_type": "a.b", "p_source_app": "settler"}
    _refused(
        admin,
        sr,
        f"payload: {DEPTH}",
        "jobforge_submit_event",
        **event,
        p_payload={"k": nested(64)},
    )
    # The 3 MB hints the issue found accepted.
    big = {"redact_fields": ["a"], "note": "x" * 3_000_000}
    _refused(
        admin, sr, "redaction_hints: must be at most 16 KiB", "jobforge_submit_event",
        **event, p_redaction_hints=big,
    )  # fmt: skip
    _refused(
        admin, sr, f"redaction_hints: {DEPTH}", "jobforge_submit_event",
        **event, p_redaction_hints={"k": nested(64)},
    )  # fmt: skip
    item = {"event_type": "a.b", "source_app": "settler"}
    for bad, message in (
        ({**item, "payload": {"k": nested(64)}}, f"events[1].payload: {DEPTH}"),
        ({**item, "redaction_hints": big}, "events[1].redaction_hints: must be at most 16 KiB"),
        ({**item, "redaction_hints": {"k": nested(64)}}, f"events[1].redaction_hints: {DEPTH}"),
    ):
        _refused(
            admin, sr, message, "jobforge_submit_events", p_tenant_id=tenant, p_events=[item, bad]
        )
    stored = sr.call("jobforge_submit_event", **event, p_payload={"k": nested(63)})
    assert stored["payload"] == {"k": nested(63)}


def test_template_trigger_and_manifest_caps(
    sr: RoleSession, admin: psycopg.Connection[Any]
) -> None:
    tenant = uuid.uuid4()
    _refused(
        admin, sr, f"inputs: {DEPTH}", "jobforge_request_job",
        p_tenant_id=tenant, p_template_key=SCAN, p_inputs={"target": nested(64)},
    )  # fmt: skip
    _refused(
        admin, sr, f"target_inputs: {DEPTH}", "jobforge_create_trigger",
        p_tenant_id=tenant, p_name="n", p_trigger_type="event", p_target_template_key=SCAN,
        p_event_type_filter="a.*", p_target_inputs={"target": nested(64)},
    )  # fmt: skip
    job = sr.call("jobforge_enqueue_job", p_tenant_id=tenant, p_type="test.manifest")
    _refused(
        admin, sr, f"manifest: {DEPTH}", "jobforge_create_manifest",
        p_run_id=job["id"], p_tenant_id=tenant, p_manifest={"error": nested(64)},
    )  # fmt: skip


def test_claims_that_are_not_json_are_an_authentication_failure(enabled_db_url: str) -> None:
    with psycopg.connect(enabled_db_url, autocommit=True) as conn, conn.transaction():
        conn.execute(
            "select set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', '{not json', true)"
        )
        with pytest.raises(psycopg.Error) as info:
            conn.execute("select public.jobforge_list_jobs(%s, '{}')", (uuid.uuid4(),))
    assert info.value.sqlstate == "PT403"
    assert isinstance(map_error(info.value), PermissionDeniedError)


def test_a_users_verifications_write_at_most_60_audit_rows_a_minute(
    act_as: ActAs, enabled_db_url: str, admin: psycopg.Connection[Any]
) -> None:
    tenant = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant), url=enabled_db_url)
    verdicts = [
        user.call(
            "jobforge_verify_policy_token",
            p_tenant_id=tenant,
            p_template_key="autopilot.ops.apply",
            p_policy_token="not.a.token",
        )
        for _ in range(75)
    ]
    assert all(v["allowed"] is False and v["reason"] == "malformed" for v in verdicts)
    assert [v["audit_id"] is None for v in verdicts] == [False] * 60 + [True] * 15
    audited = count(
        admin,
        "select count(*) from jobforge_audit_logs where tenant_id = %s and action = 'policy_check'",
        tenant,
    )
    assert audited == 60
    # The service role is always audited.
    sr = act_as("service_role", url=enabled_db_url)
    verdict = sr.call(
        "jobforge_verify_policy_token",
        p_tenant_id=tenant,
        p_template_key="autopilot.ops.apply",
        p_policy_token="not.a.token",
    )
    assert verdict["audit_id"] is not None
    assert json.dumps(verdict)  # an answer, not an error


def arrays(depth: int) -> Any:
    """The smallest value nested ``depth`` deep: ``[[...]]``."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_the_smallest_too_deep_values_are_caught_by_the_batch_checks(
    sr: RoleSession, admin: psycopg.Connection[Any]
) -> None:
    """The batch checks walk a value only past a size that every value nested 65 deep
    exceeds: the smallest such values, bare arrays, are still refused."""
    tenant = uuid.uuid4()
    _refused(
        admin, sr, f"jobs[0].payload: {DEPTH}", "jobforge_enqueue_jobs",
        p_tenant_id=tenant, p_jobs=[{"type": "t", "payload": arrays(65)}],
    )  # fmt: skip
    _refused(
        admin, sr, f"events[0].payload: {DEPTH}", "jobforge_submit_events",
        p_tenant_id=tenant,
        p_events=[{"event_type": "a.b", "source_app": "settler", "payload": {"k": arrays(64)}}],
    )  # fmt: skip
    jtype = f"t.{uuid.uuid4().hex[:8]}"
    sr.call("jobforge_enqueue_job", p_tenant_id=tenant, p_type=jtype)
    (held,) = sr.call("jobforge_claim_jobs", p_worker_id="w", p_types=[jtype])
    _refused(
        admin, sr, "results[0]: must be an object", "jobforge_complete_jobs",
        p_worker_id="w",
        p_results=[{"job_id": held["id"], "status": "succeeded", "result": arrays(65)}],
    )  # fmt: skip
    # One level less: accepted, in every batch.
    rows = sr.call(
        "jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=[{"type": "t", "payload": arrays(64)}]
    )
    assert rows[0]["payload"] == arrays(64)
    done = sr.call(
        "jobforge_complete_jobs",
        p_worker_id="w",
        p_results=[{"job_id": held["id"], "status": "succeeded", "result": arrays(64)}],
    )
    assert done[0]["result"] == arrays(64)
