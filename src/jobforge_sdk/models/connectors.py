"""Connector configs: what a tenant has set up for the connectors templates require
(``required_connectors``), with write-only secrets.

The rules are the database's (``supabase/schema/47_connectors.sql``), checked here first
only to fail earlier: a connector type is a lowercase identifier, ``config`` an object of
at most 64 KiB, ``secrets`` an object of at most 16 KiB. Secrets are never answered back:
a ``ConnectorConfig`` carries the names of the secret keys (``secret_keys``) only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BeforeValidator, Field, JsonValue, StringConstraints

from ._base import Bool, NoneIsEmpty, NonEmptyStr, Params, Row, TenantId, check_json

__all__ = [
    "MAX_CONNECTOR_CONFIG_BYTES",
    "MAX_CONNECTOR_SECRETS_BYTES",
    "ConnectorConfig",
    "ConnectorRef",
    "ConnectorType",
    "ListConnectorConfigsParams",
    "SetConnectorConfigParams",
]

MAX_CONNECTOR_CONFIG_BYTES = 64 * 1024
MAX_CONNECTOR_SECRETS_BYTES = 16 * 1024

# The CHECK on jobforge_connector_configs.connector_type, and the names templates use in
# required_connectors.
ConnectorType = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z][a-z0-9_]*$")
]


def _config(value: Any) -> Any:
    return check_json(value, max_bytes=MAX_CONNECTOR_CONFIG_BYTES)


def _secrets(value: Any) -> Any:
    return check_json(value, max_bytes=MAX_CONNECTOR_SECRETS_BYTES)


ConnectorSettings = Annotated[dict[str, JsonValue], NoneIsEmpty, BeforeValidator(_config)]
# No NoneIsEmpty: None means "keep the stored secrets", {} means "clear them".
ConnectorSecrets = Annotated[dict[str, JsonValue], BeforeValidator(_secrets)]


class ConnectorConfig(Row):
    """One connector config of a tenant, as the RPCs answer it: never its secrets, only
    their key names."""

    id: UUID
    tenant_id: UUID
    connector_type: str
    config: dict[str, Any]
    enabled: bool
    secret_keys: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class SetConnectorConfigParams(Params):
    tenant_id: TenantId
    connector_type: ConnectorType
    config: ConnectorSettings = Field(default_factory=dict)
    # Left out of repr, so a logged or printed params model shows no secret.
    secrets: ConnectorSecrets | None = Field(default=None, repr=False)
    enabled: Bool = False
    actor_id: NonEmptyStr | None = None


class ListConnectorConfigsParams(Params):
    tenant_id: TenantId


class ConnectorRef(Params):
    tenant_id: TenantId
    connector_type: ConnectorType
    actor_id: NonEmptyStr | None = None
