"""Pydantic v2 models, one module per area of the contract.

Which models are public (re-exported from ``jobforge_sdk`` and pinned by
tests/unit/test_public_api.py):

- every row model a method returns (``JobRow``, ``EventRow``, ``ManifestRow``, ...), the
  enums of their fields, and the value objects users build (``EventEnvelope``,
  ``JobSpec``, ``JobCompletion``, ``ArtifactManifest``, ``PolicyToken``);
- the params models of the calls apps assemble as data and pass around before calling —
  an event to submit, an event query, a job request, a trigger to create
  (``SubmitEventParams``, ``ListEventsParams``, ``RequestJobParams``,
  ``Create*TriggerParams``); the MCP tools publish their JSON Schemas.

Every other ``*Params`` model is how an operation validates its keyword arguments: it is
importable from here, but it is not API and may change with its method's signature.
"""

from __future__ import annotations

from ._base import PurgeParams
from .audit import AuditAction, AuditLogEntry, AuditOutcome, ListAuditLogsParams
from .connectors import ConnectorConfig, SetConnectorConfigParams
from .events import (
    EventEnvelope,
    EventRow,
    EventSubject,
    ListEventsParams,
    RedactionHints,
    SourceApp,
    SourceModule,
    SubmitEventParams,
    SubmitEventsParams,
)
from .jobs import (
    CancelJobParams,
    ClaimJobsParams,
    CompleteJobParams,
    CompleteJobsParams,
    EnqueueJobParams,
    EnqueueJobsParams,
    FindJobParams,
    GetJobParams,
    HeartbeatJobParams,
    JobAttemptRow,
    JobCompletion,
    JobResultRow,
    JobRow,
    JobSpec,
    JobStatus,
    ListJobsParams,
    ReapStaleJobsParams,
    RescheduleJobParams,
)
from .limits import JobLimit, SetLimitParams
from .manifests import (
    ArtifactManifest,
    ArtifactOutput,
    CreateManifestParams,
    ManifestRow,
    ManifestStatus,
    RunMetrics,
)
from .policy import PolicyCheckResult, PolicyKeyRow, PolicyToken
from .retention import PurgeResult, RetentionParams
from .templates import (
    ACTION_TEMPLATE_KEYS,
    AUTOPILOT_TEMPLATE_KEYS,
    CostTier,
    JobTemplate,
    RequestJobParams,
    RequestJobResult,
    TemplateCategory,
    TemplateRow,
)
from .triggers import (
    CreateCronTriggerParams,
    CreateEventTriggerParams,
    CronFireResult,
    ListTriggersParams,
    MisfirePolicy,
    Trigger,
    TriggerType,
)

__all__ = [
    "ACTION_TEMPLATE_KEYS",
    "AUTOPILOT_TEMPLATE_KEYS",
    "ArtifactManifest",
    "ArtifactOutput",
    "AuditAction",
    "AuditLogEntry",
    "AuditOutcome",
    "CancelJobParams",
    "ClaimJobsParams",
    "CompleteJobParams",
    "CompleteJobsParams",
    "ConnectorConfig",
    "CostTier",
    "CreateCronTriggerParams",
    "CreateEventTriggerParams",
    "CreateManifestParams",
    "CronFireResult",
    "EnqueueJobParams",
    "EnqueueJobsParams",
    "EventEnvelope",
    "EventRow",
    "EventSubject",
    "FindJobParams",
    "GetJobParams",
    "HeartbeatJobParams",
    "JobAttemptRow",
    "JobCompletion",
    "JobLimit",
    "JobResultRow",
    "JobRow",
    "JobSpec",
    "JobStatus",
    "JobTemplate",
    "ListAuditLogsParams",
    "ListEventsParams",
    "ListJobsParams",
    "ListTriggersParams",
    "ManifestRow",
    "ManifestStatus",
    "MisfirePolicy",
    "PolicyCheckResult",
    "PolicyKeyRow",
    "PolicyToken",
    "PurgeParams",
    "PurgeResult",
    "ReapStaleJobsParams",
    "RedactionHints",
    "RequestJobParams",
    "RequestJobResult",
    "RescheduleJobParams",
    "RetentionParams",
    "RunMetrics",
    "SetConnectorConfigParams",
    "SetLimitParams",
    "SourceApp",
    "SourceModule",
    "SubmitEventParams",
    "SubmitEventsParams",
    "TemplateCategory",
    "TemplateRow",
    "Trigger",
    "TriggerType",
]
