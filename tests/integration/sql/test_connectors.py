"""``supabase/schema/47_connectors.sql``: connector configs, called as each role, and the
check ``jobforge_request_job`` makes of a template's ``required_connectors``.

The secret value used throughout is a marker looked for in every answer, every audit row
and every error message: it must never appear in any of them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from tests.integration.sql.helpers import SCAN, ActAs, count, sql_error
from tests.support.roles import RoleSession, tenant_claims

SECRET = "xoxb-never-answered-7f3a9c"


def _config_rows(conn: psycopg.Connection[Any], tenant: uuid.UUID) -> list[dict[str, Any]]:
    """The tenant's rows as stored, secrets included (read by the owner)."""
    rows = conn.execute(
        "select to_jsonb(c) from public.jobforge_connector_configs c where c.tenant_id = %s"
        " order by c.connector_type",
        (tenant,),
    ).fetchall()
    return [r[0] for r in rows]


def _audit(conn: psycopg.Connection[Any], tenant: uuid.UUID) -> list[dict[str, Any]]:
    rows = conn.execute(
        "select to_jsonb(a) from public.jobforge_audit_logs a where a.tenant_id = %s"
        " order by a.created_at, a.id",
        (tenant,),
    ).fetchall()
    return [r[0] for r in rows]


def _state(conn: psycopg.Connection[Any], tenant: uuid.UUID) -> tuple[Any, ...]:
    return (_config_rows(conn, tenant), _audit(conn, tenant))


def test_set_list_delete_answer_secret_names_never_values(
    act_as: ActAs, admin_conn: psycopg.Connection[Any]
) -> None:
    tenant = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant, sub="user-conn"))

    made = user.call(
        "jobforge_set_connector_config",
        p_tenant_id=tenant,
        p_connector_type="slack",
        p_config={"channel": "#ops"},
        p_secrets={"bot_token": SECRET, "signing_secret": SECRET + "-2"},
        p_enabled=True,
    )
    assert "secrets" not in made
    assert made["secret_keys"] == ["bot_token", "signing_secret"]
    assert (made["connector_type"], made["config"], made["enabled"]) == (
        "slack",
        {"channel": "#ops"},
        True,
    )
    assert made["tenant_id"] == str(tenant)
    stored = _config_rows(admin_conn, tenant)
    assert stored[0]["secrets"] == {"bot_token": SECRET, "signing_secret": SECRET + "-2"}

    # No secrets given: the stored ones are kept; config and enabled are replaced.
    updated = user.call(
        "jobforge_set_connector_config",
        p_tenant_id=tenant,
        p_connector_type="slack",
        p_config={"channel": "#alerts"},
    )
    assert updated["id"] == made["id"]
    assert (updated["config"], updated["enabled"]) == ({"channel": "#alerts"}, False)
    assert updated["secret_keys"] == ["bot_token", "signing_secret"]
    assert _config_rows(admin_conn, tenant)[0]["secrets"] == stored[0]["secrets"]

    user.call(
        "jobforge_set_connector_config",
        p_tenant_id=tenant,
        p_connector_type="pagerduty",
        p_secrets={"api_key": SECRET},
        p_enabled=True,
    )
    listed = user.call("jobforge_list_connector_configs", p_tenant_id=tenant)
    assert [(c["connector_type"], c["secret_keys"]) for c in listed] == [
        ("pagerduty", ["api_key"]),
        ("slack", ["bot_token", "signing_secret"]),
    ]

    # {} clears the secrets.
    cleared = user.call(
        "jobforge_set_connector_config",
        p_tenant_id=tenant,
        p_connector_type="pagerduty",
        p_secrets={},
        p_enabled=True,
    )
    assert cleared["secret_keys"] == []
    assert _config_rows(admin_conn, tenant)[0]["secrets"] == {}

    deleted = user.call(
        "jobforge_delete_connector_config", p_tenant_id=tenant, p_connector_type="slack"
    )
    assert deleted["id"] == made["id"]
    assert deleted["secret_keys"] == ["bot_token", "signing_secret"]
    assert [
        c["connector_type"]
        for c in user.call("jobforge_list_connector_configs", p_tenant_id=tenant)
    ] == ["pagerduty"]

    answers = json.dumps([made, updated, listed, cleared, deleted])
    assert SECRET not in answers
    audit = _audit(admin_conn, tenant)
    assert [(a["action"], a["target_type"], a["target_id"]) for a in audit] == [
        ("connector_config_set", "connector", "slack"),
        ("connector_config_set", "connector", "slack"),
        ("connector_config_set", "connector", "pagerduty"),
        ("connector_config_set", "connector", "pagerduty"),
        ("connector_config_delete", "connector", "slack"),
    ]
    assert {a["actor_id"] for a in audit} == {"user-conn"}
    assert audit[0]["details"] == {
        "connector_type": "slack",
        "inserted": True,
        "enabled": True,
        "previous_enabled": None,
        "config_keys": ["channel"],
        "secret_keys": ["bot_token", "signing_secret"],
        "secrets_replaced": True,
    }
    assert audit[1]["details"]["inserted"] is False
    assert audit[1]["details"]["previous_enabled"] is True
    assert audit[1]["details"]["secrets_replaced"] is False
    assert audit[4]["details"] == {
        "connector_type": "slack",
        "previous_enabled": False,
        "secret_keys": ["bot_token", "signing_secret"],
    }
    assert SECRET not in json.dumps(audit)
    # The audit list RPC answers the same rows: nothing secret there either.
    assert SECRET not in json.dumps(user.call("jobforge_list_audit_logs", p_tenant_id=tenant))


@pytest.mark.parametrize("role", ["authenticated", "service_role"])
def test_no_api_role_can_select_the_secrets_column(
    act_as: ActAs, svc: RoleSession, role: str
) -> None:
    tenant = uuid.uuid4()
    svc.call(
        "jobforge_set_connector_config",
        p_tenant_id=tenant,
        p_connector_type="slack",
        p_config={"channel": "#ops"},
        p_secrets={"token": SECRET},
    )
    session = act_as(role, tenant_claims(tenant) if role == "authenticated" else None)
    where = "where tenant_id = %s"
    for statement in (
        f"select secrets from public.jobforge_connector_configs {where}",
        f"select * from public.jobforge_connector_configs {where}",
        f"select to_jsonb(c) from public.jobforge_connector_configs c {where}",
        f"select count(*) from public.jobforge_connector_configs {where} and secrets ? 'token'",
    ):
        with sql_error("42501"):
            session.query(statement, (tenant,))
    # Every other column reads as before (through RLS for the user).
    assert session.query(
        f"select connector_type, config, enabled from public.jobforge_connector_configs {where}",
        (tenant,),
    ) == [("slack", {"channel": "#ops"}, False)]


def test_another_tenants_user_is_refused_and_nothing_changes(
    act_as: ActAs, svc: RoleSession, admin_conn: psycopg.Connection[Any]
) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    svc.call(
        "jobforge_set_connector_config",
        p_tenant_id=tenant,
        p_connector_type="slack",
        p_secrets={"token": SECRET},
        p_enabled=True,
    )
    before = _state(admin_conn, tenant)
    stranger = act_as("authenticated", tenant_claims(other))
    refused = f"tenant_id: caller may not act for tenant {tenant}"
    calls: list[tuple[str, dict[str, Any]]] = [
        (
            "jobforge_set_connector_config",
            {"p_connector_type": "slack", "p_secrets": {"token": "mine"}, "p_enabled": False},
        ),
        ("jobforge_list_connector_configs", {}),
        ("jobforge_delete_connector_config", {"p_connector_type": "slack"}),
    ]
    for fn, args in calls:
        with sql_error("PT403", refused):
            stranger.call(fn, p_tenant_id=tenant, **args)
    # Through RLS the stranger sees none of it, and cannot write the table directly.
    assert stranger.query(
        "select count(*) from public.jobforge_connector_configs where tenant_id = %s", (tenant,)
    ) == [(0,)]
    with sql_error("42501"):
        stranger.query(
            "update public.jobforge_connector_configs set enabled = false where tenant_id = %s",
            (tenant,),
        )
    # anon has no grant at all.
    with sql_error("42501"):
        act_as("anon").call("jobforge_list_connector_configs", p_tenant_id=tenant)
    assert _state(admin_conn, tenant) == before


BAD_INPUT: list[tuple[str, dict[str, Any], str]] = [
    ("connector_type", {"p_connector_type": None}, "connector_type: is required"),
    ("connector_type", {"p_connector_type": ""}, "connector_type: must be a lowercase identifier"),
    ("connector_type", {"p_connector_type": "Slack"}, "connector_type: must be a lowercase"),
    ("connector_type", {"p_connector_type": "1slack"}, "connector_type: must be a lowercase"),
    ("connector_type", {"p_connector_type": "slack-bot"}, "connector_type: must be a lowercase"),
    ("connector_type", {"p_connector_type": "s" * 64}, "connector_type: must be at most 63"),
    ("config", {"p_config": [1, 2]}, "config: must be a JSON object"),
    ("config", {"p_config": "text"}, "config: must be a JSON object"),
    ("config", {"p_config": {"x": "y" * 70000}}, "config: must be at most 64 KiB"),
    ("secrets", {"p_secrets": [SECRET]}, "secrets: must be a JSON object"),
    ("secrets", {"p_secrets": SECRET}, "secrets: must be a JSON object"),
    ("secrets", {"p_secrets": {"token": SECRET * 1000}}, "secrets: must be at most 16 KiB"),
    ("actor_id", {"p_actor_id": ""}, "actor_id: must not be empty"),
]


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("field", "args", "message"),
    [
        *BAD_INPUT,
        ("config", {"p_config": _nested(66)}, "config: must be nested at most 64 levels deep"),
        ("secrets", {"p_secrets": _nested(66)}, "secrets: must be nested at most 64 levels deep"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)
def test_bad_input_names_the_field_and_writes_nothing(
    act_as: ActAs,
    svc: RoleSession,
    admin_conn: psycopg.Connection[Any],
    field: str,
    args: dict[str, Any],
    message: str,
) -> None:
    tenant = uuid.uuid4()
    svc.call(
        "jobforge_set_connector_config",
        p_tenant_id=tenant,
        p_connector_type="slack",
        p_secrets={"token": "kept"},
        p_enabled=True,
    )
    before = _state(admin_conn, tenant)
    user = act_as("authenticated", tenant_claims(tenant))
    call = {"p_tenant_id": tenant, "p_connector_type": "slack", **args}
    with sql_error("PT400", message) as info:
        user.call("jobforge_set_connector_config", **call)
    assert str(info.value.diag.message_primary).startswith(f"{field}: ")
    assert SECRET not in str(info.value)
    if field in ("connector_type", "actor_id"):
        delete_args = {
            k: v for k, v in call.items() if k in ("p_tenant_id", "p_connector_type", "p_actor_id")
        }
        with sql_error("PT400", message):
            user.call("jobforge_delete_connector_config", **delete_args)
    assert _state(admin_conn, tenant) == before


def test_deleting_what_does_not_exist_is_not_found(act_as: ActAs) -> None:
    tenant = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant))
    with sql_error("PT404", "connector config slack not found"):
        user.call("jobforge_delete_connector_config", p_tenant_id=tenant, p_connector_type="slack")


# -- request_job and required_connectors -----------------------------------------------


@pytest.fixture
def connector_template(enabled_db_url: str) -> str:
    """An enabled template of this module's database that requires pager and slack."""
    key = f"autopilot.ops.needs_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(enabled_db_url, autocommit=True) as conn:
        conn.execute(
            "insert into public.jobforge_job_templates"
            " (template_key, name, category, required_scopes, required_connectors, enabled)"
            " values (%s, 'needs connectors', 'ops', '{}', '{pager,slack}', true)",
            (key,),
        )
    return key


def test_request_job_needs_an_enabled_config_of_every_required_connector(
    act_as: ActAs, enabled_db_url: str, connector_template: str
) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant), url=enabled_db_url)
    svc = act_as("service_role", url=enabled_db_url)
    key = connector_template

    def jobs() -> int:
        with psycopg.connect(enabled_db_url) as conn:
            return count(conn, "select count(*) from jobforge_jobs where tenant_id = %s", tenant)

    def audit_rows() -> int:
        with psycopg.connect(enabled_db_url) as conn:
            return count(
                conn,
                "select count(*) from jobforge_audit_logs where tenant_id = %s"
                " and action = 'job_request'",
                tenant,
            )

    def refused(connector: str, why: str) -> None:
        message = f"template {key} requires connector {connector}, which {why}"
        for dry_run in (False, True):
            with sql_error("PT409", message):
                user.call(
                    "jobforge_request_job",
                    p_tenant_id=tenant,
                    p_template_key=key,
                    p_dry_run=dry_run,
                )
        assert (jobs(), audit_rows()) == (0, 0)

    def set_config(connector: str, enabled: bool, for_tenant: uuid.UUID = tenant) -> None:
        svc.call(
            "jobforge_set_connector_config",
            p_tenant_id=for_tenant,
            p_connector_type=connector,
            p_enabled=enabled,
        )

    refused("pager", "has no config for this tenant")
    # Another tenant's configs are not this tenant's.
    set_config("pager", True, other)
    set_config("slack", True, other)
    refused("pager", "has no config for this tenant")
    set_config("pager", False)
    refused("pager", "is disabled for this tenant")
    set_config("pager", True)
    refused("slack", "has no config for this tenant")
    set_config("slack", True)

    dry = user.call("jobforge_request_job", p_tenant_id=tenant, p_template_key=key, p_dry_run=True)
    assert dry["dry_run"] is True
    real = user.call("jobforge_request_job", p_tenant_id=tenant, p_template_key=key)
    assert real["job"]["type"] == key
    assert jobs() == 1

    svc.call("jobforge_delete_connector_config", p_tenant_id=tenant, p_connector_type="slack")
    refused_after = f"template {key} requires connector slack, which has no config"
    with sql_error("PT409", refused_after):
        user.call("jobforge_request_job", p_tenant_id=tenant, p_template_key=key)
    assert jobs() == 1  # the job already queued stays

    # A template that requires nothing needs no config.
    scan = user.call(
        "jobforge_request_job", p_tenant_id=tenant, p_template_key=SCAN, p_inputs={"target": "x"}
    )
    assert scan["job"]["type"] == SCAN
