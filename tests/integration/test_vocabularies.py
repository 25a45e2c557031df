"""The SDK's enums and limits are the database's: the two cannot drift apart.

Each enum is compared with the CHECK constraint of the column it describes (whose list is
a lookup function of jobforge_private, or a literal array); each limit is probed at its
edge through the RPC that enforces it.
"""

from __future__ import annotations

import json
import re
import uuid
from enum import StrEnum
from typing import Any

import psycopg
import pytest

from jobforge_sdk.models.audit import AuditAction, AuditOutcome
from jobforge_sdk.models.events import MAX_EVENT_PAYLOAD_BYTES, SourceApp, SourceModule
from jobforge_sdk.models.jobs import MAX_BATCH, MAX_PAYLOAD_BYTES, JobStatus
from jobforge_sdk.models.manifests import ManifestStatus
from jobforge_sdk.models.templates import CostTier, TemplateCategory
from jobforge_sdk.models.triggers import TriggerType

PINNED: list[tuple[str, str, type[StrEnum]]] = [
    ("jobforge_jobs", "status", JobStatus),
    ("jobforge_events", "source_app", SourceApp),
    ("jobforge_events", "source_module", SourceModule),
    ("jobforge_triggers", "event_source_filter", SourceApp),
    ("jobforge_job_templates", "category", TemplateCategory),
    ("jobforge_job_templates", "estimated_cost_tier", CostTier),
    ("jobforge_audit_logs", "action", AuditAction),
    ("jobforge_audit_logs", "outcome", AuditOutcome),
    ("jobforge_artifact_manifests", "status", ManifestStatus),
    ("jobforge_triggers", "trigger_type", TriggerType),
]


def allowed_values(conn: psycopg.Connection[Any], table: str, column: str) -> set[str]:
    """The words the CHECK constraint of the column alone admits."""
    rows = conn.execute(
        "select pg_get_constraintdef(k.oid) from pg_constraint k"
        " join pg_attribute a on a.attrelid = k.conrelid and a.attnum = any (k.conkey)"
        " where k.contype = 'c' and cardinality(k.conkey) = 1"
        " and k.conrelid = %s::regclass and a.attname = %s",
        (f"public.{table}", column),
    ).fetchall()
    assert len(rows) == 1, f"{table}.{column}: expected one CHECK, found {rows}"
    definition = str(rows[0][0])
    lookup = re.search(r"(jobforge_private\.[a-z_]+)\(\)", definition)
    if lookup:
        values = conn.execute(f"select {lookup.group(1)}()").fetchone()
        assert values is not None
        return set(values[0])
    words = set(re.findall(r"'([^']*)'::text", definition))
    assert words, f"{table}.{column}: no vocabulary in {definition}"
    return words


@pytest.mark.parametrize(("table", "column", "enum"), PINNED)
def test_each_enum_is_the_vocabulary_of_its_column(
    admin_conn: psycopg.Connection[Any], table: str, column: str, enum: type[StrEnum]
) -> None:
    assert {member.value for member in enum} == allowed_values(admin_conn, table, column)


def _refusal(conn: psycopg.Connection[Any], query: str, *params: object) -> str | None:
    """None when the call succeeds, else the PT400 message (rolled back either way)."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(query, params)
    except psycopg.Error as exc:
        if exc.sqlstate != "PT400":
            raise
        return str(exc.diag.message_primary)
    return None


def test_the_job_limits_are_the_databases(admin_conn: psycopg.Connection[Any]) -> None:
    tenant = uuid.uuid4()
    enqueue = "select public.jobforge_enqueue_job(%s, 'limits.probe', %s::jsonb, null, null, %s)"
    assert _refusal(admin_conn, enqueue, tenant, "{}", 100) is None
    assert "max_attempts" in (_refusal(admin_conn, enqueue, tenant, "{}", 101) or "")

    def payload_of(size: int) -> str:
        # {"x": "aaa…"}: the jsonb text form is exactly `size` bytes.
        return json.dumps({"x": "a" * (size - len('{"x": ""}'))})

    assert _refusal(admin_conn, enqueue, tenant, payload_of(MAX_PAYLOAD_BYTES), 5) is None
    refused = _refusal(admin_conn, enqueue, tenant, payload_of(MAX_PAYLOAD_BYTES + 1), 5)
    assert refused is not None
    assert refused.startswith("payload")

    batch = "select public.jobforge_enqueue_jobs(%s, %s::jsonb)"
    jobs = [{"type": "limits.probe"}] * MAX_BATCH
    assert _refusal(admin_conn, batch, tenant, json.dumps(jobs)) is None
    assert _refusal(admin_conn, batch, tenant, json.dumps([*jobs, jobs[0]])) is not None


def test_the_event_payload_limit_is_the_databases(admin_conn: psycopg.Connection[Any]) -> None:
    submit = (
        "select public.jobforge_submit_event(p_tenant_id => %s, p_event_type => 'limits.probe',"
        " p_source_app => 'external', p_payload => %s::jsonb)"
    )

    def payload_of(size: int) -> str:
        return json.dumps({"x": "a" * (size - len('{"x": ""}'))})

    tenant = uuid.uuid4()
    assert _refusal(admin_conn, submit, tenant, payload_of(MAX_EVENT_PAYLOAD_BYTES)) is None
    refused = _refusal(admin_conn, submit, tenant, payload_of(MAX_EVENT_PAYLOAD_BYTES + 1))
    assert refused is not None
    assert refused.startswith("payload")
