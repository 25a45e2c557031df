"""``60_triggers.sql``: a cron trigger's misfire policy (create, set, read), and the
scheduler's daily purge guard, called as each role. What a scheduler fires under each
policy is ``tests/integration/test_scheduler.py``."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.integration.sql.helpers import ActAs, audit_rows, count, make_trigger, sql_error
from tests.support.roles import tenant_claims

CRON = {"p_trigger_type": "cron", "p_event_type_filter": None, "p_cron_expression": "0 * * * *"}


def _state(admin: psycopg.Connection[Any], tenant: uuid.UUID) -> Any:
    return (
        admin.execute(
            "select coalesce(jsonb_agg(to_jsonb(t) order by t.id), '[]')"
            " from jobforge_triggers t where t.tenant_id = %s",
            (tenant,),
        ).fetchone(),
        len(audit_rows(admin, tenant)),
    )


def test_a_cron_trigger_has_a_misfire_policy_and_an_event_trigger_none(
    act_as: ActAs, admin_conn: Any
) -> None:
    tenant = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant))
    plain = make_trigger(user, tenant, **CRON)
    assert (plain["misfire_policy"], plain["max_catch_up"]) == ("skip", 10)
    assert plain["enabled_at"] is not None
    assert plain["last_scheduled_for"] is None
    catching = make_trigger(
        user, tenant, p_misfire_policy="catch_up", p_max_catch_up=1000, p_enabled=False, **CRON
    )
    assert (catching["misfire_policy"], catching["max_catch_up"]) == ("catch_up", 1000)
    assert catching["enabled_at"] is None  # created off: no period on yet
    once = make_trigger(user, tenant, p_misfire_policy="run_once", **CRON)
    assert once["misfire_policy"] == "run_once"
    event = make_trigger(user, tenant)
    assert (event["misfire_policy"], event["max_catch_up"]) == (None, None)

    listed = {t["id"]: t for t in user.call("jobforge_list_triggers", p_tenant_id=tenant)}
    assert listed[catching["id"]]["misfire_policy"] == "catch_up"
    assert listed[catching["id"]]["max_catch_up"] == 1000
    created = [r for r in audit_rows(admin_conn, tenant) if r["target_id"] == catching["id"]]
    assert created[0]["details"]["misfire_policy"] == "catch_up"
    assert created[0]["details"]["max_catch_up"] == 1000


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"p_misfire_policy": "later", **CRON},
            "misfire_policy: must be skip, run_once or catch_up",
        ),
        ({"p_misfire_policy": "SKIP", **CRON}, "misfire_policy: must be"),
        ({"p_misfire_policy": "", **CRON}, "misfire_policy: must be"),
        ({"p_max_catch_up": 0, **CRON}, "max_catch_up: must be between 1 and 1000"),
        ({"p_max_catch_up": -5, **CRON}, "max_catch_up: must be between 1 and 1000"),
        ({"p_max_catch_up": 1001, **CRON}, "max_catch_up: must be between 1 and 1000"),
        ({"p_max_catch_up": 2147483647, **CRON}, "max_catch_up: must be between 1 and 1000"),
        ({"p_misfire_policy": "skip"}, "misfire_policy: is only for cron triggers"),
        ({"p_max_catch_up": 5}, "max_catch_up: is only for cron triggers"),
    ],
)
def test_bad_misfire_settings_are_refused_naming_the_field_and_write_nothing(
    act_as: ActAs, admin_conn: Any, overrides: dict[str, Any], message: str
) -> None:
    tenant = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant))
    before = _state(admin_conn, tenant)
    with sql_error("PT400", message):
        make_trigger(user, tenant, **overrides)
    assert _state(admin_conn, tenant) == before


def test_set_trigger_misfire_policy(act_as: ActAs, admin_conn: Any) -> None:
    tenant = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant, sub="user-misfire"))
    trigger = make_trigger(user, tenant, **CRON)
    changed = user.call(
        "jobforge_set_trigger_misfire_policy",
        p_trigger_id=trigger["id"],
        p_tenant_id=tenant,
        p_misfire_policy="catch_up",
        p_max_catch_up=50,
    )
    assert (changed["misfire_policy"], changed["max_catch_up"]) == ("catch_up", 50)
    # max_catch_up left out keeps its value.
    kept = user.call(
        "jobforge_set_trigger_misfire_policy",
        p_trigger_id=trigger["id"],
        p_tenant_id=tenant,
        p_misfire_policy="run_once",
    )
    assert (kept["misfire_policy"], kept["max_catch_up"]) == ("run_once", 50)
    updates = [r for r in audit_rows(admin_conn, tenant) if r["action"] == "trigger_update"]
    assert [(u["actor_id"], u["details"]) for u in updates] == [
        (
            "user-misfire",
            {
                "name": trigger["name"],
                "misfire_policy": "catch_up",
                "max_catch_up": 50,
                "previous_misfire_policy": "skip",
                "previous_max_catch_up": 10,
            },
        ),
        (
            "user-misfire",
            {
                "name": trigger["name"],
                "misfire_policy": "run_once",
                "max_catch_up": 50,
                "previous_misfire_policy": "catch_up",
                "previous_max_catch_up": 50,
            },
        ),
    ]


def test_set_trigger_misfire_policy_refuses_bad_input_and_other_tenants(
    act_as: ActAs, admin_conn: Any
) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant))
    cron = make_trigger(user, tenant, **CRON)
    event = make_trigger(user, tenant)
    others = make_trigger(act_as("service_role"), other, **CRON)
    before = (_state(admin_conn, tenant), _state(admin_conn, other))

    def call(session: Any, **args: Any) -> Any:
        values = {"p_trigger_id": cron["id"], "p_tenant_id": tenant, "p_misfire_policy": "catch_up"}
        return session.call("jobforge_set_trigger_misfire_policy", **{**values, **args})

    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({"p_misfire_policy": "sometimes"}, "PT400", "misfire_policy: must be"),
        ({"p_misfire_policy": None}, "PT400", "misfire_policy: is required"),
        ({"p_max_catch_up": 0}, "PT400", "max_catch_up: must be between 1 and 1000"),
        ({"p_max_catch_up": 1001}, "PT400", "max_catch_up: must be between 1 and 1000"),
        ({"p_trigger_id": event["id"]}, "PT400", "misfire_policy: is only for cron triggers"),
        ({"p_trigger_id": None}, "PT400", "trigger_id: is required"),
        ({"p_trigger_id": uuid.uuid4()}, "PT404", "not found"),
        # Another tenant's trigger under one's own tenant: not found, not changed.
        ({"p_trigger_id": others["id"]}, "PT404", "not found"),
        # Another tenant named outright: refused before anything is read.
        ({"p_trigger_id": others["id"], "p_tenant_id": other}, "PT403", None),
        ({"p_actor_id": ""}, "PT400", "actor_id: must not be empty"),
    ]
    for args, state, message in cases:
        with sql_error(state, message):
            call(user, **args)
    with sql_error("42501"):
        call(act_as("anon"))
    assert (_state(admin_conn, tenant), _state(admin_conn, other)) == before


def test_the_daily_purge_is_taken_once_a_day(act_as: ActAs, fresh_db_url: str) -> None:
    sr = act_as("service_role", url=fresh_db_url)
    first = sr.call(
        "jobforge_claim_daily_purge", p_taken_by="scheduler-a", p_settings={"jobs_seconds": 60}
    )
    assert first["taken"] is True
    assert first["taken_by"] == "scheduler-a"
    second = sr.call("jobforge_claim_daily_purge", p_taken_by="scheduler-b")
    assert second["taken"] is False
    assert second["taken_by"] == "scheduler-a"
    assert second["day"] == first["day"]
    with psycopg.connect(fresh_db_url, autocommit=True) as admin:
        row = admin.execute(
            "select taken_by, settings from jobforge_private.daily_purges"
        ).fetchall()
        assert row == [("scheduler-a", {"jobs_seconds": 60})]
        # Yesterday's row does not hold today's purge.
        admin.execute("update jobforge_private.daily_purges set day = day - 1")
        assert sr.call("jobforge_claim_daily_purge", p_taken_by="scheduler-b")["taken"] is True
        assert count(admin, "select count(*) from jobforge_private.daily_purges") == 2

        bad: list[tuple[dict[str, Any], str]] = [
            ({"p_taken_by": ""}, "taken_by: must not be empty"),
            ({"p_taken_by": "x" * 256}, "taken_by: must be at most 255 characters"),
            ({"p_settings": [1]}, "settings: must be a JSON object"),
            ({"p_settings": {"x": "y" * 5000}}, "settings: must be at most 4 KiB"),
        ]
        for args, message in bad:
            with sql_error("PT400", message):
                sr.call("jobforge_claim_daily_purge", **args)
        assert count(admin, "select count(*) from jobforge_private.daily_purges") == 2
    with sql_error("42501"):
        act_as("authenticated", tenant_claims(uuid.uuid4()), url=fresh_db_url).call(
            "jobforge_claim_daily_purge"
        )
