"""The execution plane through the SDK, over each transport (direct Postgres and
Supabase, sync and async): events, templates and job requests, policy tokens,
manifests, triggers and the audit trail."""

from __future__ import annotations

import inspect
import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Any

import psycopg
import pytest

from jobforge_sdk import (
    AUTOPILOT_TEMPLATE_KEYS,
    ArtifactManifest,
    ConflictError,
    EventEnvelope,
    FeatureFlags,
    InvalidInputError,
    JobForgeClient,
    NotFoundError,
    PermissionDeniedError,
    PolicyDeniedError,
    create_artifact_output,
    generate_policy_token,
)
from jobforge_sdk.models import ManifestStatus, TriggerType
from tests.support.roles import tenant_claims

SECRET = "plane-tests-policy-secret-0123456789"
ALL_ON = FeatureFlags.all_on(policy_token_secret=SECRET, policy_token_kid="tests")
SCAN = "autopilot.ops.scan"
APPLY = "autopilot.ops.apply"

MakeClient = Callable[..., Any]


@pytest.fixture
def plane(make_client: MakeClient, transport_kind: str) -> Any:
    """A service-role client with every flag on, on the shared database."""
    return make_client(transport_kind, flags=ALL_ON)


@pytest.fixture
def enabled_db(fresh_db_url: str) -> str:
    """A fresh database whose scan and apply templates are enabled, with a policy key."""
    with JobForgeClient.from_postgres(fresh_db_url, flags=ALL_ON) as admin:
        admin.set_template_enabled(template_key=SCAN, enabled=True, actor_id="tests")
        admin.set_template_enabled(template_key=APPLY, enabled=True, actor_id="tests")
        admin.add_policy_key(kid="tests", secret=SECRET)
    return fresh_db_url


def _count(url: str, table: str, tenant: uuid.UUID) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"select count(*) from {table} where tenant_id = %s", (tenant,)
        ).fetchone()
    return int(row[0]) if row else -1


# -- events -------------------------------------------------------------------------------


def test_submit_event_in_all_three_shapes_and_retry_safely(plane: Any) -> None:
    tenant = uuid.uuid4()
    occurred = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    by_keywords = plane.submit_event(
        tenant_id=tenant,
        event_type="infrastructure.alert",
        source_app="settler",
        source_module="ops",
        payload={"host": "api-1"},
        trace_id="tr-1",
        occurred_at=occurred,
    )
    assert by_keywords.tenant_id == tenant
    assert by_keywords.payload == {"host": "api-1"}
    again = plane.submit_event(
        tenant_id=tenant,
        event_type="infrastructure.alert",
        source_app="settler",
        source_module="ops",
        payload={"host": "api-1"},
        trace_id="tr-1",
        occurred_at=occurred,
    )
    assert again.id == by_keywords.id

    ts_json = {  # as the TypeScript SDK serialises it
        "schema_version": "1.0",
        "event_version": "1.0",
        "event_type": "billing.invoice_paid",
        "occurred_at": "2026-11-02T08:00:00Z",
        "trace_id": "tr-2",
        "tenant_id": str(tenant),
        "source_app": "keys",
        "source_module": "finops",
        "subject": {"type": "invoice", "id": "inv_9"},
        "payload": {"amount": 42},
        "contains_pii": False,
        "redaction_hints": {"redact_fields": []},
    }
    from_dict = plane.submit_event(ts_json)
    assert (from_dict.subject_type, from_dict.subject_id) == ("invoice", "inv_9")
    envelope = EventEnvelope.model_validate(
        {**ts_json, "trace_id": "tr-3", "occurred_at": "2026-11-02T09:00:00Z"}
    )
    from_model = plane.submit_event(envelope)
    assert from_model.trace_id == "tr-3"
    assert from_model.source_app == "keys"

    listed = plane.list_events(tenant_id=tenant)
    assert [e.trace_id for e in listed] == ["tr-3", "tr-2", "tr-1"]  # newest first
    assert [e.id for e in plane.list_events(tenant_id=tenant, source_app="settler")] == [
        by_keywords.id
    ]
    assert (
        plane.list_events(tenant_id=tenant, subject_type="invoice", limit=1)[0].trace_id == "tr-3"
    )
    window = plane.list_events(
        tenant_id=tenant, since=occurred, until=occurred + timedelta(hours=1)
    )
    assert [e.id for e in window] == [by_keywords.id]


def test_submit_events_keeps_input_order(plane: Any) -> None:
    tenant = uuid.uuid4()
    rows = plane.submit_events(
        tenant_id=tenant,
        events=[
            {"event_type": "growth.signup", "source_app": "aias", "trace_id": f"t{i}"}
            for i in range(5)
        ],
    )
    assert [r.trace_id for r in rows] == [f"t{i}" for i in range(5)]
    assert len(plane.list_events(tenant_id=tenant)) == 5


def test_submit_event_ids_answers_the_ids_in_input_order(plane: Any) -> None:
    tenant = uuid.uuid4()
    items = [
        {"event_type": "growth.signup", "source_app": "aias", "idempotency_key": f"k{i % 3}"}
        for i in range(5)
    ]
    ids = plane.submit_event_ids(tenant_id=tenant, events=items)
    assert all(isinstance(i, uuid.UUID) for i in ids)
    assert ids[0] == ids[3]
    assert ids[1] == ids[4]
    assert len(set(ids)) == 3
    stored = {e.idempotency_key: e.id for e in plane.list_events(tenant_id=tenant)}
    assert ids[:3] == [stored["k0"], stored["k1"], stored["k2"]]


def test_redacted_fields_never_reach_users_or_the_audit_log(
    plane: Any, make_client: MakeClient, transport_kind: str
) -> None:
    tenant = uuid.uuid4()
    plane.submit_event(
        tenant_id=tenant,
        event_type="support.ticket_opened",
        source_app="readylayer",
        payload={"user": {"email": "vip@example.com", "plan": "pro"}, "text": "help"},
        redaction_hints={"redact_fields": ["user.email"]},
    )
    user = make_client(transport_kind, claims=tenant_claims(tenant), flags=ALL_ON)
    seen = user.list_events(tenant_id=tenant)[0]
    assert seen.payload == {"user": {"email": "[REDACTED]", "plan": "pro"}, "text": "help"}
    raw = plane.list_events(tenant_id=tenant, raw=True)[0]
    assert raw.payload["user"]["email"] == "vip@example.com"
    with pytest.raises(PermissionDeniedError):
        user.list_events(tenant_id=tenant, raw=True)
    audit = plane.list_audit_logs(tenant_id=tenant, action="event_ingest")
    assert len(audit) == 1
    # No payload at all reaches the trail, redacted or not: a digest and the names.
    text = audit[0].model_dump_json()
    assert "vip@example.com" not in text
    assert '"pro"' not in text
    assert '"help"' not in text
    assert audit[0].details["payload_keys"] == ["text", "user"]
    assert audit[0].details["redacted_fields"] == ["user.email"]
    assert (
        audit[0].details["payload_sha256"]
        == sha256(canonical_jsonb_text(raw.payload).encode()).hexdigest()
    )


def canonical_jsonb_text(value: Any) -> str:
    """The text PostgreSQL's jsonb prints for a payload of strings and objects: keys by
    length, then bytes; ``", "`` and ``": "`` separators (enough for this test's payload)."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: (len(kv[0].encode()), kv[0].encode()))
        return (
            "{" + ", ".join(f"{json.dumps(k)}: {canonical_jsonb_text(v)}" for k, v in items) + "}"
        )
    return json.dumps(value)


def test_event_retries_are_idempotent_by_key_without_occurred_at(plane: Any) -> None:
    tenant = uuid.uuid4()
    fields = {"tenant_id": tenant, "event_type": "growth.signup", "source_app": "aias"}
    first = plane.submit_event(**fields, idempotency_key="signup-1", payload={"n": 1})
    assert first.idempotency_key == "signup-1"
    again = plane.submit_event(**fields, idempotency_key="signup-1", payload={"n": 2})
    assert again.id == first.id
    assert again.payload == {"n": 1}

    # The TypeScript envelope sends the key as event_id.
    ts_json = {
        "schema_version": "1.0",
        "event_id": "evt-ts-1",
        "event_type": "billing.invoice_paid",
        "tenant_id": str(tenant),
        "source_app": "keys",
        "subject": {"type": "invoice", "id": "inv_1"},
    }
    from_ts = plane.submit_event(ts_json)
    assert from_ts.idempotency_key == "evt-ts-1"
    assert plane.submit_event(EventEnvelope.model_validate(ts_json)).id == from_ts.id
    assert plane.submit_event(ts_json, idempotency_key="evt-ts-1").id == from_ts.id
    with pytest.raises(InvalidInputError) as info:
        plane.submit_event(ts_json, idempotency_key="evt-other")
    assert info.value.field == "idempotency_key"

    # A batch resent as a whole, envelopes and plain items, keys repeated inside it.
    items: list[Any] = [
        ts_json,
        {"event_type": "growth.signup", "source_app": "aias", "idempotency_key": "signup-1"},
        {"event_type": "growth.visit", "source_app": "aias", "idempotency_key": "visit-1"},
        {"event_type": "growth.visit", "source_app": "aias", "event_id": "visit-1"},
    ]
    rows = plane.submit_events(tenant_id=tenant, events=items)
    assert [r.id for r in rows[:2]] == [from_ts.id, first.id]
    assert rows[2].id == rows[3].id
    assert [r.id for r in plane.submit_events(tenant_id=tenant, events=items)] == [
        r.id for r in rows
    ]
    assert len(plane.list_events(tenant_id=tenant)) == 3
    assert len(plane.list_audit_logs(tenant_id=tenant, action="event_ingest")) == 3


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "at least 1 character"),
        ("k" * 201, "at most 200 characters"),
        ("a\x00b", "NUL"),
    ],
    ids=["empty", "too-long", "nul"],
)
def test_bad_idempotency_keys_are_refused_before_any_io(plane: Any, key: str, message: str) -> None:
    tenant = uuid.uuid4()
    fields = {"event_type": "growth.signup", "source_app": "aias"}
    with pytest.raises(InvalidInputError) as info:
        plane.submit_event(tenant_id=tenant, **fields, idempotency_key=key)
    assert info.value.field == "idempotency_key"
    assert message in str(info.value)
    with pytest.raises(InvalidInputError) as info:
        plane.submit_events(tenant_id=tenant, events=[{**fields, "idempotency_key": key}])
    assert info.value.field == "events.0.idempotency_key"
    with pytest.raises(InvalidInputError) as info:
        plane.submit_event({**fields, "tenant_id": str(tenant), "event_id": key})
    assert info.value.field == "event_id"
    assert plane.list_events(tenant_id=tenant) == []


def test_event_input_errors_name_the_field(plane: Any) -> None:
    tenant = uuid.uuid4()
    with pytest.raises(InvalidInputError) as info:
        plane.submit_event(tenant_id=tenant, event_type="NotDotted", source_app="aias")
    assert info.value.field == "event_type"
    with pytest.raises(InvalidInputError) as info:
        plane.submit_event(tenant_id=tenant, event_type="a.b", source_app="myspace")
    assert info.value.field == "source_app"
    with pytest.raises(InvalidInputError) as info:
        plane.transport.call(
            "jobforge_submit_event",
            {"p_tenant_id": str(tenant), "p_event_type": "a.b", "p_source_app": "myspace"},
        )
    assert info.value.field == "source_app"
    assert plane.list_events(tenant_id=tenant) == []


# -- templates and job requests -----------------------------------------------------------


def test_the_registry_holds_the_13_autopilot_templates_all_disabled(plane: Any) -> None:
    templates = plane.list_templates()
    assert sorted(t.template_key for t in templates) == sorted(AUTOPILOT_TEMPLATE_KEYS)
    assert not any(t.enabled for t in templates)
    assert [t.template_key for t in templates if t.is_action_job] == [APPLY]
    apply = plane.get_template(template_key=APPLY)
    assert set(apply.required_scopes) == {"ops:read", "ops:write"}
    assert apply.input_schema["required"] == ["recommendation_id", "plan"]
    assert [t.template_key for t in plane.list_templates(category="finops")] == sorted(
        k for k in AUTOPILOT_TEMPLATE_KEYS if ".finops." in k
    )
    with pytest.raises(NotFoundError):
        plane.get_template(template_key="autopilot.ops.nope")


def test_request_job_rules(
    plane: Any, make_client: MakeClient, transport_kind: str, enabled_db: str
) -> None:
    tenant = uuid.uuid4()
    with pytest.raises(ConflictError, match=r"autopilot\.support\.triage"):
        plane.request_job(
            tenant_id=tenant,
            template_key="autopilot.support.triage",
            inputs={"ticket_id": "1", "body": "x"},
        )
    with pytest.raises(NotFoundError):
        plane.request_job(tenant_id=tenant, template_key="autopilot.ops.nope")

    client = make_client(transport_kind, url=enabled_db, flags=ALL_ON)
    with pytest.raises(InvalidInputError) as info:
        client.request_job(tenant_id=tenant, template_key=SCAN, inputs={"depth": 2})
    assert info.value.field == "inputs.target"
    with pytest.raises(InvalidInputError) as info:
        client.request_job(tenant_id=tenant, template_key=SCAN, inputs={"target": 7})
    assert info.value.field == "inputs.target"

    dry = client.request_job(
        tenant_id=tenant, template_key=SCAN, inputs={"target": "x"}, dry_run=True
    )
    assert dry.dry_run is True
    assert dry.job is None
    assert dry.would_enqueue["type"] == SCAN
    assert client.list_jobs(tenant_id=tenant) == []

    real = client.request_job(
        tenant_id=tenant,
        template_key=SCAN,
        inputs={"target": "x"},
        actor_id="alice",
        idempotency_key="scan-x",
    )
    assert real.job.type == SCAN
    assert real.job.payload["inputs"] == {"target": "x"}
    assert real.job.payload["trace_id"] == real.trace_id  # generated
    repeat = client.request_job(
        tenant_id=tenant, template_key=SCAN, inputs={"target": "x"}, idempotency_key="scan-x"
    )
    assert repeat.job.id == real.job.id
    audit = client.list_audit_logs(tenant_id=tenant, action="job_request")
    assert {a.outcome for a in audit} >= {"success", "dry_run"}


def test_request_job_checks_the_whole_schema_before_writing(
    make_client: MakeClient, transport_kind: str, enabled_db: str
) -> None:
    """Keywords beyond required/type (bounds, item types) refuse the request in the SDK,
    naming the path, before anything is written: no job, no audit row, and for an action
    template not even the token check's policy_check row."""
    tenant = uuid.uuid4()
    client = make_client(transport_kind, url=enabled_db, flags=ALL_ON)
    sent: list[str] = []
    inner: Any = getattr(client, "_client", client)  # the async client under its facade
    transport = inner.transport
    call = transport.call

    if inspect.iscoroutinefunction(call):

        async def counting_async(fn: str, args: dict[str, Any]) -> Any:
            sent.append(fn)
            return await call(fn, args)

        transport.call = counting_async
    else:

        def counting(fn: str, args: dict[str, Any]) -> Any:
            sent.append(fn)
            return call(fn, args)

        transport.call = counting
    cases = [
        ({"target": "x", "depth": 0}, "inputs.depth: must be at least 1"),
        ({"target": "x", "depth": 6}, "inputs.depth: must be at most 5"),
        ({"target": "x", "checks": ["disk", 3]}, "inputs.checks.1: must be string"),
    ]
    for inputs, message in cases:
        with pytest.raises(InvalidInputError) as info:
            client.request_job(tenant_id=tenant, template_key=SCAN, inputs=inputs)
        assert str(info.value) == message
        assert info.value.field == message.partition(":")[0]
    token = generate_policy_token(
        secret=SECRET,
        kid="tests",
        tenant_id=tenant,
        actor_id="ops-bot",
        action=APPLY,
        scopes=["ops:read", "ops:write"],
    )
    with pytest.raises(InvalidInputError, match=r"inputs\.plan: must be object"):
        client.request_job(
            tenant_id=tenant,
            template_key=APPLY,
            inputs={"recommendation_id": "r1", "plan": "drop everything"},
            policy_token=token,
        )
    # One template read per template (the client remembers it), and nothing else.
    assert sent == ["jobforge_get_template", "jobforge_get_template"]
    for table in ("jobforge_jobs", "jobforge_audit_logs"):
        assert _count(enabled_db, table, tenant) == 0
    # The database refuses the same inputs with the same words when the SDK is bypassed.
    with psycopg.connect(enabled_db) as conn, pytest.raises(psycopg.Error) as raw:
        conn.execute(
            "select public.jobforge_request_job(%s, %s, %s::jsonb)",
            (tenant, SCAN, json.dumps({"target": "x", "depth": 6})),
        )
    assert raw.value.diag.message_primary == "inputs.depth: must be at most 5"


def test_action_jobs_need_a_valid_unused_token(
    make_client: MakeClient, transport_kind: str, enabled_db: str
) -> None:
    tenant = uuid.uuid4()
    client = make_client(transport_kind, url=enabled_db, flags=ALL_ON)
    inputs = {"recommendation_id": "r1", "plan": {"steps": []}}
    with pytest.raises(PolicyDeniedError, match="required"):
        client.request_job(tenant_id=tenant, template_key=APPLY, inputs=inputs)

    token = generate_policy_token(
        secret=SECRET,
        kid="tests",
        tenant_id=tenant,
        actor_id="ops-bot",
        action=APPLY,
        scopes=["ops:read", "ops:write"],
    )
    done = client.request_job(
        tenant_id=tenant, template_key=APPLY, inputs=inputs, policy_token=token, actor_id="ops-bot"
    )
    assert done.job is not None
    with pytest.raises(PolicyDeniedError, match="replayed"):
        client.request_job(tenant_id=tenant, template_key=APPLY, inputs=inputs, policy_token=token)

    narrow = generate_policy_token(
        secret=SECRET,
        kid="tests",
        tenant_id=tenant,
        actor_id="x",
        action=APPLY,
        scopes=["ops:read"],
    )
    with pytest.raises(PolicyDeniedError, match="missing scope ops:write"):
        client.request_job(tenant_id=tenant, template_key=APPLY, inputs=inputs, policy_token=narrow)
    checks = client.list_audit_logs(tenant_id=tenant, action="policy_check")
    assert sorted(c.outcome.value for c in checks) == ["denied", "denied", "success"]
    assert {c.reason for c in checks if c.outcome == "denied"} == {
        "replayed",
        "missing scope ops:write",
    }


def test_a_trusted_backend_may_sign_its_own_tokens(enabled_db: str) -> None:
    flags = FeatureFlags.all_on(
        policy_token_secret=SECRET, policy_token_kid="tests", require_policy_tokens=False
    )
    tenant = uuid.uuid4()
    with JobForgeClient.from_postgres(enabled_db, flags=flags) as client:
        result = client.request_job(
            tenant_id=tenant,
            template_key=APPLY,
            inputs={"recommendation_id": "r1", "plan": {}},
            actor_id="settler-autopilot",
        )
    assert result is not None
    assert result.job is not None


# -- manifests ----------------------------------------------------------------------------


def test_manifest_roundtrip(plane: Any, make_client: MakeClient, transport_kind: str) -> None:
    tenant = uuid.uuid4()
    job = plane.enqueue_job(tenant_id=tenant, type="report.build")
    manifest = ArtifactManifest(
        job_type="report.build",
        outputs=[create_artifact_output("r", "markdown", "s3://b/r.md", data=b"# r")],
        tool_versions={"builder": "2.0"},
    )
    pending = plane.create_manifest(run_id=job.id, tenant_id=tenant, manifest=manifest)
    assert pending.status is ManifestStatus.PENDING
    final = plane.create_manifest(
        run_id=job.id,
        tenant_id=tenant,
        manifest=manifest.model_copy(update={"status": ManifestStatus.COMPLETE}),
    )
    assert final.id == pending.id
    assert final.status is ManifestStatus.COMPLETE
    with pytest.raises(ConflictError):
        plane.create_manifest(run_id=job.id, tenant_id=tenant, manifest=manifest)
    user = make_client(transport_kind, claims=tenant_claims(tenant), flags=ALL_ON)
    fetched = user.get_run_manifest(run_id=job.id, tenant_id=tenant)
    assert fetched.outputs[0].checksum == manifest.outputs[0].checksum
    assert user.get_run_manifest(run_id=uuid.uuid4(), tenant_id=tenant) is None
    with pytest.raises(NotFoundError):
        plane.create_manifest(run_id=job.id, tenant_id=uuid.uuid4(), manifest=manifest)


# -- triggers -----------------------------------------------------------------------------


def test_trigger_lifecycle(plane: Any) -> None:
    tenant = uuid.uuid4()
    cron = plane.create_cron_trigger(
        tenant_id=tenant,
        name="nightly",
        cron_expression="0 3 * * *",
        target_template_key=SCAN,
        target_inputs={"target": "all"},
    )
    assert cron.trigger_type is TriggerType.CRON
    assert cron.enabled is False
    event = plane.create_event_trigger(
        tenant_id=tenant,
        name="on alert",
        event_type_filter="infrastructure.*",
        target_template_key=SCAN,
        event_source_filter="settler",
        cooldown_seconds=60,
        target_inputs={"target": "alerting-host"},
    )
    assert [t.id for t in plane.list_triggers(tenant_id=tenant)] == [event.id, cron.id]
    assert plane.set_trigger_enabled(trigger_id=cron.id, tenant_id=tenant, enabled=True).enabled
    assert [t.id for t in plane.list_triggers(tenant_id=tenant, enabled=True)] == [cron.id]
    with pytest.raises(ConflictError):
        plane.create_cron_trigger(
            tenant_id=tenant,
            name="nightly",
            cron_expression="* * * * *",
            target_template_key=SCAN,
            target_inputs={"target": "all"},
        )
    with pytest.raises(InvalidInputError) as info:
        plane.create_cron_trigger(
            tenant_id=tenant, name="bad", cron_expression="61 * * * *", target_template_key=SCAN
        )
    assert info.value.field == "cron_expression"
    with pytest.raises(InvalidInputError) as info:
        plane.create_event_trigger(
            tenant_id=tenant, name="act", event_type_filter="a.b", target_template_key=APPLY
        )
    assert info.value.field == "target_template_key"
    deleted = plane.delete_trigger(trigger_id=event.id, tenant_id=tenant)
    assert deleted.id == event.id
    with pytest.raises(NotFoundError):
        plane.delete_trigger(trigger_id=event.id, tenant_id=tenant)
    actions = [a.action.value for a in plane.list_audit_logs(tenant_id=tenant)]
    assert sorted(actions) == [
        "trigger_create",
        "trigger_create",
        "trigger_delete",
        "trigger_update",
    ]


def test_cron_fire_is_exactly_once_per_slot_under_concurrency(enabled_db: str) -> None:
    tenant = uuid.uuid4()
    with JobForgeClient.from_postgres(enabled_db, flags=ALL_ON, max_size=8) as client:
        trigger = client.create_cron_trigger(
            tenant_id=tenant,
            name="every minute",
            cron_expression="* * * * *",
            target_template_key=SCAN,
            target_inputs={"target": "t"},
            enabled=True,
        )
        assert trigger is not None
        slot = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
        results: list[Any] = []
        barrier = threading.Barrier(8)

        def fire() -> None:
            barrier.wait()
            results.append(client.fire_cron_trigger(trigger_id=trigger.id, scheduled_for=slot))

        threads = [threading.Thread(target=fire) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(r.fired for r in results) == 1
        assert {r.reason for r in results if not r.fired} == {"already fired for this slot"}
        assert len(client.list_jobs(tenant_id=tenant)) == 1


# -- flags off against the real database --------------------------------------------------


def test_flags_off_write_nothing(
    make_client: MakeClient, transport_kind: str, migrated_db_url: str
) -> None:
    tenant = uuid.uuid4()
    off = make_client(transport_kind, flags=FeatureFlags())
    assert off.submit_event(tenant_id=tenant, event_type="a.b", source_app="aias") is None
    assert off.submit_event_ids(tenant_id=tenant, events=[{"event_type": "a.b"}]) == []
    assert (
        off.create_cron_trigger(
            tenant_id=tenant, name="n", cron_expression="* * * * *", target_template_key=SCAN
        )
        is None
    )
    assert off.request_job(tenant_id=tenant, template_key=SCAN, inputs={"target": "x"}) is None
    for table in ("jobforge_events", "jobforge_triggers", "jobforge_jobs", "jobforge_audit_logs"):
        assert _count(migrated_db_url, table, tenant) == 0, table
    # The core queue is not gated.
    assert off.enqueue_job(tenant_id=tenant, type="legacy.job").tenant_id == tenant


def test_submit_events_takes_typescript_envelopes_of_its_tenant(plane: Any) -> None:
    tenant = uuid.uuid4()
    envelope = {
        "schema_version": "1.0",
        "event_type": "billing.invoice_paid",
        "tenant_id": str(tenant),
        "source_app": "settler",
        "subject": {"type": "invoice", "id": "inv_1"},
        "trace_id": "batch-1",
    }
    rows = plane.submit_events(
        tenant_id=tenant,
        events=[envelope, EventEnvelope.model_validate({**envelope, "trace_id": "batch-2"})],
    )
    assert [(r.trace_id, r.subject_id) for r in rows] == [
        ("batch-1", "inv_1"),
        ("batch-2", "inv_1"),
    ]
    with pytest.raises(InvalidInputError) as info:
        plane.submit_events(tenant_id=tenant, events=[{**envelope, "tenant_id": str(uuid.uuid4())}])
    assert info.value.field == "events.0.tenant_id"


def test_global_audit_rows_are_listed_for_the_service_role_only(
    make_client: MakeClient, transport_kind: str, enabled_db: str
) -> None:
    service = make_client(transport_kind, url=enabled_db, flags=ALL_ON)
    rows = service.list_audit_logs(tenant_id=None)
    assert {r.action.value for r in rows} == {"template_update", "policy_key_add"}
    assert all(r.tenant_id is None for r in rows)
    assert [
        r.target_id for r in service.list_audit_logs(tenant_id=None, action="policy_key_add")
    ] == ["tests"]
    user = make_client(
        transport_kind, url=enabled_db, claims=tenant_claims(uuid.uuid4()), flags=ALL_ON
    )
    with pytest.raises(PermissionDeniedError):
        user.list_audit_logs(tenant_id=None)
