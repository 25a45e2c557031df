"""Operations of connector configs (``supabase/schema/47_connectors.sql``): what a
tenant has set up for the connectors its templates require. They belong to the
templates, so they sit behind the same flag, ``AUTOPILOT_JOBS``.

Secrets go one way. The answers carry only the names of the secret keys, and a refused
call never carries the secrets it was given: its ``InvalidInputError`` names the field
and the reason, without pydantic's error details (which quote the input).
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from pydantic import JsonValue

from jobforge_sdk._operations._machinery import RpcCall, operation, parse_list, parse_one, validate
from jobforge_sdk.errors import InvalidInputError
from jobforge_sdk.flags import Feature
from jobforge_sdk.models.connectors import (
    ConnectorConfig,
    ConnectorRef,
    ListConnectorConfigsParams,
    SetConnectorConfigParams,
)

__all__ = ["delete_connector_config", "list_connector_configs", "set_connector_config"]

Id = UUID | str


@operation(Feature.AUTOPILOT_JOBS)
def set_connector_config(
    *,
    tenant_id: Id,
    connector_type: str,
    config: Mapping[str, JsonValue] | None = None,
    secrets: Mapping[str, JsonValue] | None = None,
    enabled: bool = False,
    actor_id: str | None = None,
) -> RpcCall[ConnectorConfig | None]:
    """Create or replace the tenant's config of one connector (audited).

    ``config`` and ``enabled`` are replaced as given. ``secrets`` are stored where nothing
    answers them; ``None`` keeps the stored ones, a mapping replaces them all (``{}``
    clears them). The answer names the secret keys (``secret_keys``), never their values.
    A template that requires the connector can be requested once its config is enabled.
    """
    try:
        params = validate(SetConnectorConfigParams, locals())
    except InvalidInputError as exc:
        # The details hold the input as given, secrets included: drop them.
        raise InvalidInputError(exc.message, field=exc.field, code=None) from None
    return RpcCall("jobforge_set_connector_config", params.rpc_args(), parse_one(ConnectorConfig))


@operation(Feature.AUTOPILOT_JOBS, empty=list)
def list_connector_configs(*, tenant_id: Id) -> RpcCall[list[ConnectorConfig]]:
    """The tenant's connector configs by connector type, each without its secrets."""
    params = validate(ListConnectorConfigsParams, locals())
    return RpcCall(
        "jobforge_list_connector_configs", params.rpc_args(), parse_list(ConnectorConfig)
    )


@operation(Feature.AUTOPILOT_JOBS)
def delete_connector_config(
    *, tenant_id: Id, connector_type: str, actor_id: str | None = None
) -> RpcCall[ConnectorConfig | None]:
    """Delete the tenant's config of one connector, secrets with it; returns the deleted
    row without secrets (audited). ``NotFoundError`` when there is none."""
    params = validate(ConnectorRef, locals())
    return RpcCall(
        "jobforge_delete_connector_config", params.rpc_args(), parse_one(ConnectorConfig)
    )
