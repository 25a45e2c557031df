"""Connector configs through the SDK, over each transport (direct Postgres and Supabase,
sync and async): set, list, delete, secrets never answered, tenant checks, bad input,
and request_job refused until the required connectors are configured and enabled."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from jobforge_sdk import (
    ConflictError,
    ConnectorConfig,
    FeatureFlags,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from tests.support.roles import tenant_claims

FLAGS = FeatureFlags(autopilot_jobs=True, audit_logging=True)
SECRET = "sk-live-never-answered-41b7"

MakeClient = Callable[..., Any]


def _stored(url: str, tenant: uuid.UUID) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select connector_type, config, secrets, enabled from jobforge_connector_configs"
            " where tenant_id = %s order by connector_type",
            (tenant,),
        ).fetchall()


def _audit_count(url: str, tenant: uuid.UUID) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select count(*) from jobforge_audit_logs where tenant_id = %s", (tenant,)
        ).fetchone()
    return int(row[0]) if row else -1


def test_set_list_delete(
    make_client: MakeClient, transport_kind: str, migrated_db_url: str
) -> None:
    client = make_client(transport_kind, flags=FLAGS)
    tenant = uuid.uuid4()
    made = client.set_connector_config(
        tenant_id=tenant,
        connector_type="slack",
        config={"channel": "#ops"},
        secrets={"bot_token": SECRET},
        enabled=True,
        actor_id="ops-admin",
    )
    assert isinstance(made, ConnectorConfig)
    assert (made.connector_type, made.config, made.enabled, made.secret_keys) == (
        "slack",
        {"channel": "#ops"},
        True,
        ["bot_token"],
    )
    kept = client.set_connector_config(tenant_id=tenant, connector_type="slack", enabled=True)
    assert kept.secret_keys == ["bot_token"]
    assert kept.config == {}
    assert _stored(migrated_db_url, tenant) == [("slack", {}, {"bot_token": SECRET}, True)]

    client.set_connector_config(tenant_id=tenant, connector_type="github")
    listed = client.list_connector_configs(tenant_id=tenant)
    assert [(c.connector_type, c.enabled) for c in listed] == [("github", False), ("slack", True)]

    deleted = client.delete_connector_config(tenant_id=tenant, connector_type="slack")
    assert deleted.id == made.id
    assert [c.connector_type for c in client.list_connector_configs(tenant_id=tenant)] == ["github"]
    with pytest.raises(NotFoundError):
        client.delete_connector_config(tenant_id=tenant, connector_type="slack")

    answers = [made, kept, *listed, deleted]
    assert all(SECRET not in a.model_dump_json() for a in answers)
    assert all("secrets" not in a.model_dump() for a in answers)
    audit = client.list_audit_logs(tenant_id=tenant)
    assert [a.action.value for a in audit] == [
        "connector_config_delete",
        "connector_config_set",
        "connector_config_set",
        "connector_config_set",
    ]
    assert audit[-1].actor_id == "ops-admin"
    assert all(SECRET not in a.model_dump_json() for a in audit)


def test_a_user_acts_for_its_own_tenants_only(
    make_client: MakeClient, transport_kind: str, migrated_db_url: str
) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    user = make_client(transport_kind, claims=tenant_claims(tenant), flags=FLAGS)
    mine = user.set_connector_config(
        tenant_id=tenant, connector_type="slack", secrets={"token": SECRET}, enabled=True
    )
    assert mine.secret_keys == ["token"]
    assert [c.connector_type for c in user.list_connector_configs(tenant_id=tenant)] == ["slack"]

    backend = make_client(transport_kind, flags=FLAGS)
    backend.set_connector_config(tenant_id=other, connector_type="slack", secrets={"token": "b"})
    before = (_stored(migrated_db_url, other), _audit_count(migrated_db_url, other))
    with pytest.raises(PermissionDeniedError):
        user.set_connector_config(tenant_id=other, connector_type="slack", enabled=True)
    with pytest.raises(PermissionDeniedError):
        user.list_connector_configs(tenant_id=other)
    with pytest.raises(PermissionDeniedError):
        user.delete_connector_config(tenant_id=other, connector_type="slack")
    assert (_stored(migrated_db_url, other), _audit_count(migrated_db_url, other)) == before


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"tenant_id": "not-a-uuid"}, "tenant_id"),
        ({"connector_type": "Slack"}, "connector_type"),
        ({"connector_type": "slack-bot"}, "connector_type"),
        ({"connector_type": "s" * 64}, "connector_type"),
        ({"connector_type": ""}, "connector_type"),
        ({"config": [1, 2]}, "config"),
        ({"config": {"x": "y" * 70_000}}, "config"),
        ({"secrets": [SECRET]}, "secrets"),
        ({"secrets": {"token": SECRET * 1000}}, "secrets"),
        ({"secrets": {"token": float("nan")}}, "secrets"),
        ({"enabled": "yes"}, "enabled"),
        ({"actor_id": ""}, "actor_id"),
    ],
)
def test_bad_input_is_refused_naming_the_field_before_any_write(
    make_client: MakeClient,
    transport_kind: str,
    migrated_db_url: str,
    args: dict[str, Any],
    field: str,
) -> None:
    client = make_client(transport_kind, flags=FLAGS)
    tenant = uuid.uuid4()
    call = {"tenant_id": tenant, "connector_type": "slack", **args}
    with pytest.raises(InvalidInputError) as info:
        client.set_connector_config(**call)
    assert info.value.field is not None
    assert info.value.field.startswith(field), info.value
    # Nothing of the secrets in what the error carries.
    assert SECRET not in f"{info.value} {info.value.details!r} {info.value.args!r}"
    assert info.value.details is None
    assert _stored(migrated_db_url, tenant) == []
    assert _audit_count(migrated_db_url, tenant) == 0


def test_the_params_model_does_not_print_secrets() -> None:
    from jobforge_sdk.models import SetConnectorConfigParams

    params = SetConnectorConfigParams(
        tenant_id=uuid.uuid4(), connector_type="slack", secrets={"token": SECRET}
    )
    assert SECRET not in repr(params)
    assert SECRET not in str(params)
    assert params.rpc_args()["p_secrets"] == {"token": SECRET}


def test_request_job_waits_for_the_required_connectors(
    make_client: MakeClient, transport_kind: str, fresh_db_url: str
) -> None:
    key = "autopilot.ops.notify"
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(
            "insert into jobforge_job_templates"
            " (template_key, name, category, required_scopes, required_connectors, enabled)"
            " values (%s, 'notify', 'ops', '{}', '{slack}', true)",
            (key,),
        )
    tenant = uuid.uuid4()
    user = make_client(transport_kind, url=fresh_db_url, claims=tenant_claims(tenant), flags=FLAGS)
    with pytest.raises(ConflictError, match="requires connector slack, which has no config"):
        user.request_job(tenant_id=tenant, template_key=key)
    with pytest.raises(ConflictError, match="requires connector slack"):
        user.request_job(tenant_id=tenant, template_key=key, dry_run=True)
    user.set_connector_config(
        tenant_id=tenant, connector_type="slack", secrets={"token": SECRET}, enabled=False
    )
    with pytest.raises(ConflictError, match="requires connector slack, which is disabled"):
        user.request_job(tenant_id=tenant, template_key=key)
    user.set_connector_config(tenant_id=tenant, connector_type="slack", enabled=True)
    requested = user.request_job(tenant_id=tenant, template_key=key)
    assert requested.job is not None
    assert requested.job.type == key
    user.delete_connector_config(tenant_id=tenant, connector_type="slack")
    with pytest.raises(ConflictError, match="requires connector slack"):
        user.request_job(tenant_id=tenant, template_key=key)
