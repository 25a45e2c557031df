"""JobForge: a Postgres-native, multi-tenant job queue and execution plane.

Everything a user needs is importable from here; the names in ``__all__`` are the public
API (pinned by tests/unit/test_public_api.py).
"""

from __future__ import annotations

from .aio import AsyncJobForgeClient
from .client import JobForgeClient
from .errors import (
    ConfigurationError,
    ConflictError,
    DatabaseError,
    FeatureDisabledError,
    InvalidInputError,
    JobForgeError,
    MigrationError,
    NotFoundError,
    PermissionDeniedError,
    PolicyDeniedError,
    TransportError,
)
from .flags import Feature, FeatureFlags
from .manifests import (
    calculate_run_metrics,
    create_artifact_output,
    generate_env_fingerprint,
    generate_manifest_report,
    manifest_digest,
)
from .migrate import Migrator
from .models import (
    ACTION_TEMPLATE_KEYS,
    AUTOPILOT_TEMPLATE_KEYS,
    ArtifactManifest,
    ArtifactOutput,
    AuditAction,
    AuditLogEntry,
    AuditOutcome,
    CostTier,
    CreateCronTriggerParams,
    CreateEventTriggerParams,
    CronFireResult,
    EventEnvelope,
    EventRow,
    EventSubject,
    JobAttemptRow,
    JobResultRow,
    JobRow,
    JobSpec,
    JobStatus,
    JobTemplate,
    ListEventsParams,
    ManifestRow,
    ManifestStatus,
    PolicyCheckResult,
    PolicyToken,
    RequestJobParams,
    RequestJobResult,
    RunMetrics,
    SourceApp,
    SourceModule,
    SubmitEventParams,
    TemplateCategory,
    TemplateRow,
    Trigger,
    TriggerType,
)
from .policy import generate_policy_token, redact_payload, validate_policy_token
from .registry import JobContext, JobRegistry
from .scheduler import Scheduler
from .smoke import demo_handlers
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
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
    "demo_handlers",
    "generate_env_fingerprint",
    "generate_manifest_report",
    "generate_policy_token",
    "manifest_digest",
    "redact_payload",
    "validate_policy_token",
]
