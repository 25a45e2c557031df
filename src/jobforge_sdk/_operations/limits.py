"""Operations of the concurrency and rate limits (``supabase/schema/27_limits.sql``).

Limits are operator settings of the core queue, so they are never behind a feature flag,
and the database lets only the service role manage them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar
from uuid import UUID

from jobforge_sdk._operations._machinery import RpcCall, operation, parse_list, parse_one, validate
from jobforge_sdk.errors import InvalidInputError
from jobforge_sdk.models.limits import (
    DeleteLimitParams,
    JobLimit,
    ListLimitsParams,
    SetLimitParams,
    _LimitKey,
)

__all__ = ["delete_limit", "list_limits", "set_limit"]

Id = UUID | str
K = TypeVar("K", bound=_LimitKey)


def _checked(params: K) -> K:
    problem = params.problem()
    if problem is not None:
        field, reason = problem
        raise InvalidInputError(f"{field}: {reason}", field=field, code=None)
    return params


@operation()
def set_limit(
    *,
    type: str | None = None,
    tenant_id: Id | None = None,
    cost_tier: str | None = None,
    max_running: int | None = None,
    max_starts: int | None = None,
    per: timedelta | None = None,
    actor_id: str | None = None,
) -> RpcCall[JobLimit]:
    """Create or change the limit of a job type, a tenant, a type within a tenant, or a
    template cost tier (audited). ``max_running`` caps how many of its jobs run at once
    (0 pauses them); ``max_starts`` per ``per`` caps how many start in each fixed window
    (aligned to the Unix epoch). Every claim keeps it, whichever worker claims."""
    params = _checked(validate(SetLimitParams, locals()))
    return RpcCall("jobforge_set_limit", params.rpc_args(), parse_one(JobLimit))


@operation()
def list_limits(*, type: str | None = None, tenant_id: Id | None = None) -> RpcCall[list[JobLimit]]:
    """The limits (of a type and/or tenant when given), each with its running count."""
    params = validate(ListLimitsParams, locals())
    return RpcCall("jobforge_list_limits", params.rpc_args(), parse_list(JobLimit))


@operation()
def delete_limit(
    *,
    type: str | None = None,
    tenant_id: Id | None = None,
    cost_tier: str | None = None,
    actor_id: str | None = None,
) -> RpcCall[JobLimit]:
    """Delete the limit of one key; returns it (audited). ``NotFoundError`` when there is
    none. Deleting a cost tier's limit leaves that tier's templates uncapped."""
    params = _checked(validate(DeleteLimitParams, locals()))
    return RpcCall("jobforge_delete_limit", params.rpc_args(), parse_one(JobLimit))
