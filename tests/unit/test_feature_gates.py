"""With a feature's flag off, its methods are no-ops: no I/O, ``None`` or ``[]``.

The clients point at a port nobody listens on, so any attempt at I/O would raise
``TransportError``; the pool must also still be unopened afterwards."""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobforge_sdk import (
    AsyncJobForgeClient,
    Feature,
    FeatureDisabledError,
    FeatureFlags,
    JobForgeClient,
)
from jobforge_sdk._operations import REGISTRY, limits, queue

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"
T = str(uuid.uuid4())
NOW = datetime.now(UTC)

# Valid arguments for each gated operation, by operation name (an internal one is the
# client's ``_`` + name); the feature is checked against the registry.
GATED_CALLS: dict[str, tuple[Feature, dict[str, Any]]] = {
    "submit_event": (Feature.EVENTS, {"tenant_id": T, "event_type": "a.b", "source_app": "aias"}),
    "submit_events": (
        Feature.EVENTS,
        {"tenant_id": T, "events": [{"event_type": "a.b", "source_app": "aias"}]},
    ),
    "submit_event_ids": (
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
    "purge_manifests": (Feature.MANIFESTS, {"older_than": timedelta(days=90)}),
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
    "set_trigger_misfire_policy": (
        Feature.TRIGGERS,
        {"trigger_id": str(uuid.uuid4()), "tenant_id": T, "misfire_policy": "run_once"},
    ),
    "delete_trigger": (Feature.TRIGGERS, {"trigger_id": str(uuid.uuid4()), "tenant_id": T}),
    "fire_cron_trigger": (
        Feature.TRIGGERS,
        {"trigger_id": str(uuid.uuid4()), "scheduled_for": NOW},
    ),
    "set_connector_config": (
        Feature.AUTOPILOT_JOBS,
        {"tenant_id": T, "connector_type": "slack", "secrets": {"token": "x"}},
    ),
    "list_connector_configs": (Feature.AUTOPILOT_JOBS, {"tenant_id": T}),
    "delete_connector_config": (
        Feature.AUTOPILOT_JOBS,
        {"tenant_id": T, "connector_type": "slack"},
    ),
    "list_audit_logs": (Feature.AUDIT_LOGGING, {"tenant_id": T}),
    "purge_audit_logs": (Feature.AUDIT_LOGGING, {}),
}
GATED = {name: op for name, op in REGISTRY.items() if op.feature is not None}


def test_every_gated_operation_is_covered() -> None:
    assert set(GATED) == set(GATED_CALLS)
    for name, (feature, _) in GATED_CALLS.items():
        assert GATED[name].feature is feature, name


@pytest.mark.parametrize("name", sorted(GATED))
def test_a_gated_off_list_is_empty_and_anything_else_none(name: str) -> None:
    op = GATED[name]
    returns = str(inspect.signature(op.build).return_annotation)
    returns_list = returns.startswith(("RpcCall[list[", "Steps[list[", "Plan[list["))
    assert op.empty_value() == ([] if returns_list else None), name


def _method(client: JobForgeClient | AsyncJobForgeClient, name: str) -> Any:
    return getattr(client, REGISTRY[name].method_name)


@pytest.mark.parametrize("method", sorted(GATED_CALLS))
def test_flag_off_is_a_no_op_without_io(method: str) -> None:
    _, kwargs = GATED_CALLS[method]
    client = JobForgeClient.from_postgres(UNREACHABLE, flags=FeatureFlags(), timeout=1)
    result = _method(client, method)(**kwargs)
    assert result == REGISTRY[method].empty_value()
    assert client.transport.pool.closed  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", sorted(GATED_CALLS))
def test_flag_off_is_a_no_op_on_the_async_client(method: str) -> None:
    _, kwargs = GATED_CALLS[method]
    client = AsyncJobForgeClient.from_postgres(UNREACHABLE, flags=FeatureFlags(), timeout=1)
    result = asyncio.run(_method(client, method)(**kwargs))
    assert result == REGISTRY[method].empty_value()
    assert client.transport.pool.closed  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", sorted(GATED_CALLS))
def test_strict_clients_raise_naming_the_flag(method: str) -> None:
    feature, kwargs = GATED_CALLS[method]
    client = JobForgeClient.from_postgres(UNREACHABLE, flags=FeatureFlags(), strict=True)
    with pytest.raises(FeatureDisabledError, match=f"{feature.env_var}=1"):
        _method(client, method)(**kwargs)


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
    # The queue's own operations, and the limits its claims keep.
    core_modules = {queue.__name__, limits.__name__}
    core_queue = {op.name for op in REGISTRY.values() if op.build.__module__ in core_modules}
    assert {"set_limit", "list_limits", "delete_limit"} <= core_queue
    assert {
        "enqueue_job",
        "claim_jobs",
        "complete_job",
        "list_job_attempts",
        "purge_finished_jobs",
    } <= core_queue
    ungated = {name for name, op in REGISTRY.items() if op.feature is None}
    # Beside the core queue, one worker's call: a template job's definition is read
    # whatever the worker's own flags (the job exists, so its requester had them on); and
    # the scheduler's daily guard, which a configured purge takes whatever the flags.
    assert ungated == core_queue | {"template_of_job", "claim_daily_purge"}
    assert REGISTRY["claim_daily_purge"].internal
    assert REGISTRY["template_of_job"].internal
