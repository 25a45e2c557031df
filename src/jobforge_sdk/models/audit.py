"""The append-only audit trail."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, JsonValue, Strict

from ._base import NonEmptyStr, Params, Row, TenantId

__all__ = ["AuditAction", "AuditLogEntry", "AuditOutcome", "ListAuditLogsParams"]


class AuditAction(StrEnum):
    EVENT_INGEST = "event_ingest"
    JOB_REQUEST = "job_request"
    JOB_CANCEL = "job_cancel"
    JOB_RETRY = "job_retry"
    POLICY_CHECK = "policy_check"
    TRIGGER_FIRE = "trigger_fire"
    TRIGGER_CREATE = "trigger_create"
    TRIGGER_UPDATE = "trigger_update"
    TRIGGER_DELETE = "trigger_delete"
    TEMPLATE_UPDATE = "template_update"
    MANIFEST_WRITE = "manifest_write"
    POLICY_KEY_ADD = "policy_key_add"
    POLICY_KEY_RETIRE = "policy_key_retire"
    RETENTION_PURGE = "retention_purge"
    CONNECTOR_CONFIG_SET = "connector_config_set"
    CONNECTOR_CONFIG_DELETE = "connector_config_delete"
    LIMIT_SET = "limit_set"
    LIMIT_DELETE = "limit_delete"


class AuditOutcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    SKIPPED = "skipped"
    DRY_RUN = "dry_run"


class AuditLogEntry(Row):
    id: UUID
    tenant_id: UUID | None = None
    project_id: UUID | None = None
    action: AuditAction
    actor_id: str | None = None
    trace_id: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    outcome: AuditOutcome
    reason: str | None = None
    details: dict[str, JsonValue]
    created_at: datetime


class ListAuditLogsParams(Params):
    # None lists the global rows (template and policy-key changes): service role only.
    tenant_id: TenantId | None
    action: AuditAction | None = None
    actor_id: NonEmptyStr | None = None
    trace_id: NonEmptyStr | None = None
    target_type: NonEmptyStr | None = None
    target_id: NonEmptyStr | None = None
    outcome: AuditOutcome | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: Annotated[int, Strict(), Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Strict(), Field(ge=0, le=2147483647)] = 0

    def rpc_args(self) -> dict[str, Any]:
        filters = self.model_dump(
            mode="json", exclude_none=True, exclude={"tenant_id", "since", "until"}
        )
        if self.since is not None:
            filters["from"] = self.since.isoformat()
        if self.until is not None:
            filters["to"] = self.until.isoformat()
        tenant = str(self.tenant_id) if self.tenant_id is not None else None
        return {"p_tenant_id": tenant, "p_filters": filters}
