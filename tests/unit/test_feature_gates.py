"""With a feature's flag off, its methods are no-ops: no I/O, ``None`` or ``[]``.

The clients point at a port nobody listens on, so any attempt at I/O would raise
``TransportError``; the pool must also still be unopened afterwards."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from jobforge_sdk import (
    AsyncJobForgeClient,
    Feature,
    FeatureDisabledError,
    FeatureFlags,
    JobForgeClient,
)
from jobforge_sdk._client._base import SyncMethod

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"
T = str(uuid.uuid4())
NOW = datetime.now(UTC)

GATED_CALLS: dict[str, tuple[Feature, dict[str, Any]]] = {
    "submit_event": (Feature.EVENTS, {"tenant_id": T, "event_type": "a.b", "source_app": "aias"}),
    "submit_events": (
        Feature.EVENTS,
        {"tenant_id": T, "events": [{"event_type": "a.b", "source_app": "aias"}]},
    ),
    "list_events": (Feature.EVENTS, {"tenant_id": T}),
    "purge_expired_events": (Feature.EVENTS, {}),
    "list_templates": (Feature.AUTOPILOT_JOBS, {}),
    "get_template": (Feature.AUTOPILOT_JOBS, {"template_key": "autopilot.ops.scan"}),
    "set_template_enabled": (
        Feature.AUTOPILOT_JOBS,
        {"template_key": "autopilot.ops.scan", "enabled": True},
    ),
    "request_job": (Feature.AUTOPILOT_JOBS, {"tenant_id": T, "template_key": "autopilot.ops.scan"}),
    "verify_policy_token": (
        Feature.ACTION_JOBS,
        {"tenant_id": T, "template_key": "autopilot.ops.apply", "policy_token": "x.y.z"},
    ),
    "add_policy_key": (Feature.ACTION_JOBS, {"kid": "k1", "secret": "s" * 32}),
    "retire_policy_key": (Feature.ACTION_JOBS, {"kid": "k1"}),
    "create_manifest": (
        Feature.MANIFESTS,
        {"run_id": str(uuid.uuid4()), "tenant_id": T, "manifest": {"job_type": "t"}},
    ),
    "get_run_manifest": (Feature.MANIFESTS, {"run_id": str(uuid.uuid4()), "tenant_id": T}),
    "create_cron_trigger": (
        Feature.TRIGGERS,
        {
            "tenant_id": T,
            "name": "n",
            "cron_expression": "*/5 * * * *",
            "target_template_key": "autopilot.ops.scan",
        },
    ),
    "create_event_trigger": (
        Feature.TRIGGERS,
        {
            "tenant_id": T,
            "name": "n",
            "event_type_filter": "infrastructure.*",
            "target_template_key": "autopilot.ops.scan",
        },
    ),
    "list_triggers": (Feature.TRIGGERS, {"tenant_id": T}),
    "list_cron_triggers": (Feature.TRIGGERS, {}),
    "set_trigger_enabled": (
        Feature.TRIGGERS,
        {"trigger_id": str(uuid.uuid4()), "tenant_id": T, "enabled": True},
    ),
    "delete_trigger": (Feature.TRIGGERS, {"trigger_id": str(uuid.uuid4()), "tenant_id": T}),
    "fire_cron_trigger": (
        Feature.TRIGGERS,
        {"trigger_id": str(uuid.uuid4()), "scheduled_for": NOW},
    ),
    "list_audit_logs": (Feature.AUDIT_LOGGING, {"tenant_id": T}),
    "purge_audit_logs": (Feature.AUDIT_LOGGING, {}),
}
LIST_METHODS = {
    "submit_events",
    "list_events",
    "list_templates",
    "list_triggers",
    "list_cron_triggers",
    "list_audit_logs",
}


def test_every_gated_method_is_covered() -> None:
    gated = {
        name
        for name, attr in vars(JobForgeClient).items()
        if isinstance(attr, SyncMethod) and attr.op.feature is not None
    }
    assert gated == set(GATED_CALLS)


@pytest.mark.parametrize("method", sorted(GATED_CALLS))
def test_flag_off_is_a_no_op_without_io(method: str) -> None:
    _, kwargs = GATED_CALLS[method]
    client = JobForgeClient.from_postgres(UNREACHABLE, flags=FeatureFlags(), timeout=1)
    result = getattr(client, method)(**kwargs)
    assert result == ([] if method in LIST_METHODS else None)
    assert client.transport.pool.closed  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", sorted(GATED_CALLS))
def test_flag_off_is_a_no_op_on_the_async_client(method: str) -> None:
    _, kwargs = GATED_CALLS[method]
    client = AsyncJobForgeClient.from_postgres(UNREACHABLE, flags=FeatureFlags(), timeout=1)
    result = asyncio.run(getattr(client, method)(**kwargs))
    assert result == ([] if method in LIST_METHODS else None)
    assert client.transport.pool.closed  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", sorted(GATED_CALLS))
def test_strict_clients_raise_naming_the_flag(method: str) -> None:
    feature, kwargs = GATED_CALLS[method]
    client = JobForgeClient.from_postgres(UNREACHABLE, flags=FeatureFlags(), strict=True)
    with pytest.raises(FeatureDisabledError, match=f"{feature.env_var}=1"):
        getattr(client, method)(**kwargs)


def test_action_templates_also_need_action_jobs() -> None:
    flags = FeatureFlags(autopilot_jobs=True, action_jobs=False)
    client = JobForgeClient.from_postgres(UNREACHABLE, flags=flags, timeout=1)
    assert client.request_job(tenant_id=T, template_key="autopilot.ops.apply") is None
    assert client.transport.pool.closed  # type: ignore[attr-defined]
    strict = JobForgeClient.from_postgres(UNREACHABLE, flags=flags, strict=True)
    with pytest.raises(FeatureDisabledError, match="JOBFORGE_ACTION_JOBS_ENABLED"):
        strict.request_job(tenant_id=T, template_key="autopilot.ops.apply")


def test_the_off_state_is_logged_once_per_feature(caplog: pytest.LogCaptureFixture) -> None:
    client = JobForgeClient.from_postgres(UNREACHABLE, flags=FeatureFlags())
    with caplog.at_level(logging.INFO, logger="jobforge_sdk"):
        for _ in range(3):
            client.list_events(tenant_id=T)
            client.submit_event(tenant_id=T, event_type="a.b", source_app="aias")
        client.list_triggers(tenant_id=T)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "JOBFORGE_EVENTS_ENABLED" in messages[0]
    assert "JOBFORGE_TRIGGERS_ENABLED" in messages[1]


def test_the_core_queue_is_never_gated() -> None:
    ungated = {
        name
        for name, attr in vars(JobForgeClient).items()
        if isinstance(attr, SyncMethod) and attr.op.feature is None
    }
    assert ungated == {
        "enqueue_job",
        "enqueue_jobs",
        "claim_jobs",
        "heartbeat_job",
        "complete_job",
        "complete_jobs",
        "release_job",
        "reap_stale_jobs",
        "cancel_job",
        "reschedule_job",
        "list_jobs",
        "get_job",
        "get_result",
        "list_job_attempts",
        # Not a core-queue method, but a worker's: a template job's definition is read
        # whatever the worker's own flags (the job exists, so its requester had them on).
        "template_of_job",
    }
