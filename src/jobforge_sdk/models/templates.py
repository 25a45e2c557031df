"""Job templates: the registry of ``autopilot.*`` jobs and how apps request them."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, Strict

from ._base import Bool, JsonObject, NonEmptyStr, Params, Row, TenantId
from .jobs import JobRow

__all__ = [
    "ACTION_TEMPLATE_KEYS",
    "AUTOPILOT_TEMPLATE_KEYS",
    "CostTier",
    "GetTemplateParams",
    "JobTemplate",
    "ListTemplatesParams",
    "RequestJobParams",
    "RequestJobResult",
    "SetTemplateEnabledParams",
    "TemplateCategory",
    "TemplateRow",
]

AUTOPILOT_TEMPLATE_KEYS: tuple[str, ...] = (
    "autopilot.ops.scan",
    "autopilot.ops.diagnose",
    "autopilot.ops.recommend",
    "autopilot.ops.apply",
    "autopilot.support.triage",
    "autopilot.support.draft_reply",
    "autopilot.support.propose_kb_patch",
    "autopilot.growth.seo_scan",
    "autopilot.growth.experiment_propose",
    "autopilot.growth.content_draft",
    "autopilot.finops.reconcile",
    "autopilot.finops.anomaly_scan",
    "autopilot.finops.churn_risk_report",
)

# Action jobs write to the outside world and need a policy token. The database is the
# authority (``is_action_job``); the SDK knows the seeded ones so that the ACTION_JOBS flag
# can gate them without a round trip.
ACTION_TEMPLATE_KEYS: frozenset[str] = frozenset({"autopilot.ops.apply"})

TemplateKey = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[a-z0-9_.]+$")]


class TemplateCategory(StrEnum):
    OPS = "ops"
    SUPPORT = "support"
    GROWTH = "growth"
    FINOPS = "finops"


class CostTier(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class JobTemplate(Row):
    """A template's definition: what it takes, what it returns, what it needs."""

    template_key: str
    name: str
    description: str | None = None
    category: TemplateCategory
    version: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    required_scopes: list[str]
    required_connectors: list[str] = Field(default_factory=list)
    estimated_cost_tier: CostTier | None = None
    default_max_attempts: int
    default_timeout_ms: int
    default_priority: int = 0
    encrypt_fields: list[str] = Field(default_factory=list)
    is_action_job: bool


class TemplateRow(JobTemplate):
    enabled: bool
    created_at: Any = None
    updated_at: Any = None


class ListTemplatesParams(Params):
    category: TemplateCategory | None = None
    enabled: Bool | None = None


class GetTemplateParams(Params):
    template_key: TemplateKey


# A top-level input name (encryption.py encrypts top-level fields only), at most 32 of them.
EncryptFieldName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^.\s]+$")]


class SetTemplateEnabledParams(Params):
    template_key: TemplateKey
    enabled: Bool
    actor_id: NonEmptyStr | None = None
    encrypt_fields: Annotated[list[EncryptFieldName], Field(max_length=32)] | None = None
    default_priority: Annotated[int, Strict(), Field(ge=-32768, le=32767)] | None = None


class RequestJobParams(Params):
    tenant_id: TenantId
    template_key: TemplateKey
    inputs: JsonObject = Field(default_factory=dict)
    project_id: UUID | None = None
    trace_id: NonEmptyStr | None = None
    actor_id: NonEmptyStr | None = None
    dry_run: Bool = False
    idempotency_key: NonEmptyStr | None = None
    policy_token: Annotated[str, Field(min_length=1, max_length=8192)] | None = None


class RequestJobResult(Row):
    """What ``request_job`` did: the job (None on a dry run), its trace and audit ids."""

    job: JobRow | None = None
    trace_id: str
    audit_id: UUID
    dry_run: bool
    template_key: str
    would_enqueue: dict[str, Any] | None = None
