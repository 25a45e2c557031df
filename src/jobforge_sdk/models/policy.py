"""Policy tokens: the claims an action job must carry, and the verdict on a token."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from ._base import NonEmptyStr, Params, Row, TenantId

__all__ = [
    "AddPolicyKeyParams",
    "PolicyCheckResult",
    "PolicyKeyRow",
    "PolicyToken",
    "RetirePolicyKeyParams",
    "VerifyPolicyTokenParams",
]


class PolicyToken(BaseModel):
    """The claims of a policy token (docs/architecture.md, "Policy tokens")."""

    model_config = ConfigDict(extra="allow", frozen=True)

    iss: str = "jobforge"
    sub: str = Field(description="the actor")
    aud: str | list[str] = Field(description="the action: a template key")
    tid: str = Field(description="the tenant")
    pid: str | None = Field(default=None, description="the project")
    scp: list[str] = Field(default_factory=list, description="granted scopes")
    res: str | None = Field(default=None, description="the resource acted on")
    ctx: dict[str, Any] | None = Field(default=None, description="free-form context")
    jti: str
    iat: int | None = None
    exp: int


class PolicyCheckResult(BaseModel):
    """A verdict that never raises: ``allowed`` or the ``reason`` why not."""

    model_config = ConfigDict(frozen=True)

    allowed: bool
    reason: str | None = None
    claims: PolicyToken | None = None
    kid: str | None = None
    audit_id: UUID | None = None


class VerifyPolicyTokenParams(Params):
    tenant_id: TenantId
    template_key: NonEmptyStr
    policy_token: Annotated[str, Field(min_length=1, max_length=8192)]
    actor_id: NonEmptyStr | None = None


class AddPolicyKeyParams(Params):
    kid: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    secret: Annotated[str, Field(min_length=32, max_length=1024)]


class RetirePolicyKeyParams(Params):
    kid: Annotated[str, Field(min_length=1, max_length=64)]


class PolicyKeyRow(Row):
    kid: str
    created_at: Any = None
    retired_at: Any = None
