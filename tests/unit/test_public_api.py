"""Pins the public API: a change here is a change users see."""

from __future__ import annotations

import inspect
from typing import Any

import jobforge_sdk
from jobforge_sdk import AsyncJobForgeClient, JobForgeClient
from jobforge_sdk._client._base import AsyncMethod, SyncMethod
from jobforge_sdk._operations import REGISTRY

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
    "CostTier",
    "CreateCronTriggerParams",
    "CreateEventTriggerParams",
    "CronFireResult",
    "DatabaseError",
    "EventEnvelope",
    "EventRow",
    "EventSubject",
    "Feature",
    "FeatureDisabledError",
    "FeatureFlags",
    "InvalidInputError",
    "JobAttemptRow",
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
    "ListEventsParams",
    "ManifestRow",
    "ManifestStatus",
    "MigrationError",
    "Migrator",
    "NotFoundError",
    "PermissionDeniedError",
    "PolicyCheckResult",
    "PolicyDeniedError",
    "PolicyToken",
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
) -> dict[str, Any]:
    methods: dict[str, Any] = {}
    for name, value in vars(cls).items():
        if isinstance(value, kind):
            methods[name] = value.build
    return methods


def test_every_registered_operation_is_a_method_of_both_clients() -> None:
    sync_ops = _methods(JobForgeClient, SyncMethod)
    async_ops = _methods(AsyncJobForgeClient, AsyncMethod)
    assert sync_ops == async_ops
    assert sync_ops == REGISTRY, "an operation is missing from a client, or a method from REGISTRY"
    assert {
        "enqueue_job",
        "enqueue_jobs",
        "claim_jobs",
        "heartbeat_job",
        "complete_job",
        "complete_jobs",
        "reap_stale_jobs",
        "cancel_job",
        "reschedule_job",
        "list_jobs",
        "get_job",
        "get_result",
    } <= set(sync_ops)
    for name, op in REGISTRY.items():
        assert op.name == name
        params = inspect.signature(op.build).parameters
        positional = [p.name for p in params.values() if p.kind is not p.KEYWORD_ONLY]
        # Only submit_event takes one positional argument: a whole envelope.
        assert positional == (["envelope"] if name == "submit_event" else []), name
