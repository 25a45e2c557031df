"""Artifact manifests: the canonical record of one run (outputs, metrics, environment)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue, Strict, field_validator

from ._base import DEPTH_REASON, Params, Row, TenantId, check_json

__all__ = [
    "MAX_MANIFEST_BYTES",
    "ArtifactManifest",
    "ArtifactOutput",
    "CreateManifestParams",
    "GetManifestParams",
    "ManifestRow",
    "ManifestStatus",
    "RunMetrics",
]


# As 50_manifests.sql: a manifest lists references to outputs, not the outputs.
MAX_MANIFEST_BYTES = 1024 * 1024


class ManifestStatus(StrEnum):
    PENDING = "pending"
    COMPLETE = "complete"
    FAILED = "failed"


class ArtifactOutput(BaseModel):
    """One output of a run: where it is and how to check it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=255)]
    type: Annotated[str, Field(min_length=1, max_length=255)]
    ref: Annotated[str, Field(min_length=1, max_length=2048)] | None = None
    size: Annotated[int, Strict(), Field(ge=0)] | None = None
    checksum: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")] | None = None
    mime_type: Annotated[str, Field(max_length=255)] | None = None


class RunMetrics(BaseModel):
    """Measured facts of a run. ``duration_ms`` is wall time between start and finish."""

    model_config = ConfigDict(extra="allow", frozen=True)

    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0)] | None = None
    cpu_time_ms: Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0)] | None = None
    peak_memory_bytes: Annotated[int, Strict(), Field(ge=0)] | None = None
    attempt: Annotated[int, Strict(), Field(ge=1)] | None = None


class ArtifactManifest(BaseModel):
    """What a worker writes for a run (``create_manifest``) and what a report renders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    manifest_version: str = "1.0"
    job_type: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    inputs_snapshot_ref: str | None = None
    logs_ref: str | None = None
    outputs: list[ArtifactOutput] = Field(default_factory=list)
    metrics: RunMetrics = Field(default_factory=RunMetrics)
    env_fingerprint: dict[str, JsonValue] = Field(default_factory=dict)
    tool_versions: dict[str, str] = Field(default_factory=dict)
    status: ManifestStatus = ManifestStatus.PENDING
    error: JsonValue = None


class ManifestRow(Row):
    id: UUID
    run_id: UUID
    tenant_id: UUID
    project_id: UUID | None = None
    manifest_version: str
    job_type: str
    inputs_snapshot_ref: str | None = None
    logs_ref: str | None = None
    outputs: list[ArtifactOutput]
    metrics: RunMetrics
    env_fingerprint: dict[str, JsonValue]
    tool_versions: dict[str, str]
    status: ManifestStatus
    error: JsonValue = None
    created_at: datetime
    updated_at: datetime


class CreateManifestParams(Params):
    run_id: UUID
    tenant_id: TenantId
    manifest: ArtifactManifest

    @field_validator("manifest", mode="before")
    @classmethod
    def _caps(cls, value: Any) -> Any:
        """Size and depth as JSON before the model reads it (its ``error`` and
        ``env_fingerprint`` are free-form JSON)."""
        if isinstance(value, ArtifactManifest):
            try:
                dumped = value.model_dump(mode="json", exclude_none=True)
            except (ValueError, RecursionError):
                raise ValueError(DEPTH_REASON) from None
            check_json(dumped, max_bytes=MAX_MANIFEST_BYTES)
            return value
        return check_json(value, max_bytes=MAX_MANIFEST_BYTES)

    def rpc_args(self) -> dict[str, Any]:
        return {
            "p_run_id": str(self.run_id),
            "p_tenant_id": str(self.tenant_id),
            "p_manifest": self.manifest.model_dump(mode="json", exclude_none=True),
        }


class GetManifestParams(Params):
    run_id: UUID
    tenant_id: TenantId
