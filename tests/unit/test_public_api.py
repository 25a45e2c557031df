"""Pins the public API: a change here is a change users see."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import jobforge_sdk
from jobforge_sdk import AsyncJobForgeClient, JobForgeClient
from jobforge_sdk._client._base import AsyncMethod, SyncMethod
from jobforge_sdk._operations import REGISTRY, Operation

EXPECTED = {
    "ACTION_TEMPLATE_KEYS",
    "AUTOPILOT_TEMPLATE_KEYS",
    "ArtifactManifest",
    "ArtifactOutput",
    "AsyncJobForgeClient",
    "AuditAction",
    "AuditLogEntry",
    "AuditOutcome",
    "ConfigurationError",
    "ConflictError",
    "ConnectorConfig",
    "CostTier",
    "CreateCronTriggerParams",
    "CreateEventTriggerParams",
    "CronFireResult",
    "DatabaseError",
    "DecryptionError",
    "EventEnvelope",
    "EventRow",
    "EventSubject",
    "Feature",
    "FeatureDisabledError",
    "FeatureFlags",
    "InvalidInputError",
    "JobAttemptRow",
    "JobLimit",
    "JobCompletion",
    "JobContext",
    "JobForgeClient",
    "JobForgeError",
    "JobRegistry",
    "JobResultRow",
    "JobRow",
    "JobSpec",
    "JobStatus",
    "JobTemplate",
    "KeyRing",
    "ListEventsParams",
    "ManifestRow",
    "ManifestStatus",
    "MisfirePolicy",
    "MigrationError",
    "Migrator",
    "NonRetryableError",
    "NotFoundError",
    "PermissionDeniedError",
    "PolicyCheckResult",
    "PolicyDeniedError",
    "PolicyToken",
    "PurgeResult",
    "RequestJobParams",
    "RequestJobResult",
    "RunMetrics",
    "Scheduler",
    "SourceApp",
    "SourceModule",
    "SubmitEventParams",
    "TemplateCategory",
    "TemplateRow",
    "TransportError",
    "Trigger",
    "TriggerType",
    "Worker",
    "__version__",
    "calculate_run_metrics",
    "create_artifact_output",
    "decrypt_event",
    "decrypt_job",
    "generate_env_fingerprint",
    "generate_manifest_report",
    "generate_policy_token",
    "manifest_digest",
    "redact_payload",
    "validate_policy_token",
}


def test_all_is_pinned() -> None:
    assert set(jobforge_sdk.__all__) == EXPECTED
    assert len(jobforge_sdk.__all__) == len(set(jobforge_sdk.__all__))
    for name in jobforge_sdk.__all__:
        assert hasattr(jobforge_sdk, name), name


def _methods(
    cls: type, kind: type[SyncMethod[Any, Any]] | type[AsyncMethod[Any, Any]]
) -> dict[str, Operation[..., Any]]:
    """The client's methods made from operations: attribute name -> operation."""
    return {name: value.op for name, value in vars(cls).items() if isinstance(value, kind)}


PUBLIC = {name: op for name, op in REGISTRY.items() if not op.internal}
INTERNAL = {name: op for name, op in REGISTRY.items() if op.internal}


def test_sync_and_async_clients_expose_the_same_operations() -> None:
    """Every registered operation is declared on both clients, public ones under their
    name and internal ones under ``_`` + name, and nothing else is."""
    expected = {op.method_name: op for op in REGISTRY.values()}
    assert _methods(JobForgeClient, SyncMethod) == expected
    assert _methods(AsyncJobForgeClient, AsyncMethod) == expected
    assert INTERNAL, "the worker's and the scheduler's operations are registered as internal"
    assert {"list_cron_triggers", "template_of_job"} <= set(INTERNAL)
    for name in INTERNAL:
        assert not hasattr(JobForgeClient, name), f"{name} is internal, not client API"
    assert {
        "enqueue_job",
        "enqueue_jobs",
        "enqueue_job_ids",
        "claim_jobs",
        "heartbeat_job",
        "heartbeat_jobs",
        "complete_job",
        "complete_jobs",
        "reap_stale_jobs",
        "cancel_job",
        "retry_job",
        "retry_dead_jobs",
        "reschedule_job",
        "list_jobs",
        "get_job",
        "get_result",
        "submit_event_ids",
        "purge_finished_jobs",
        "purge_manifests",
    } <= set(PUBLIC)


def _unreachable(cls: type[JobForgeClient] | type[AsyncJobForgeClient]) -> Any:
    return cls.from_postgres("postgresql://postgres@127.0.0.1:1/none")


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_operation_has_the_same_signature_on_both_clients(name: str) -> None:
    op = PUBLIC[name]
    built = inspect.signature(op.build)
    sync_method = getattr(_unreachable(JobForgeClient), name)
    async_method = getattr(_unreachable(AsyncJobForgeClient), name)
    assert inspect.signature(sync_method) == inspect.signature(async_method)
    assert inspect.signature(sync_method).parameters == built.parameters
    assert inspect.iscoroutinefunction(async_method)
    assert not inspect.iscoroutinefunction(sync_method)
    assert sync_method.__doc__ == async_method.__doc__ == op.build.__doc__
    assert sync_method.__name__ == async_method.__name__ == name
    # The method returns what the plan's answer parses to, not the plan.
    returns = str(inspect.signature(sync_method).return_annotation)
    assert "RpcCall" not in returns
    assert "Steps" not in returns


def test_operations_take_keyword_arguments() -> None:
    for name, op in REGISTRY.items():
        assert op.name == name
        params = inspect.signature(op.build).parameters
        positional = [p.name for p in params.values() if p.kind is not p.KEYWORD_ONLY]
        # Only submit_event takes one positional argument: a whole envelope.
        assert positional == (["envelope"] if name == "submit_event" else []), name


def test_a_method_declared_under_another_name_is_refused() -> None:
    with pytest.raises((TypeError, RuntimeError)) as info:

        class _Typo(JobForgeClient):
            get_jobs = SyncMethod(REGISTRY["get_job"])

    error = info.value.__cause__ or info.value  # 3.11 wraps errors of __set_name__
    assert "declare it as get_job" in str(error)
