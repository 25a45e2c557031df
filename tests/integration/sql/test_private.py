"""``supabase/schema/00_private.sql``: the tenancy checks every RPC relies on, RLS, anon.

``jwt_tenant_ids()`` (no claims means no tenant, never every tenant), ``assert_tenant``
as the first check of the tenant RPCs of every area, row-level security and table
privileges of the public tables, the private tables, what ``anon`` can do (nothing), and
the catalog rules of every function (SECURITY DEFINER, empty search_path, no PUBLIC).

Every RPC is called the way PostgREST calls it (``act_as``: role and JWT claims set in the
call's transaction). Tests share one database (``migrated_db_url``) and isolate
themselves with fresh tenant ids and job types.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.integration.sql.helpers import (
    ACTION,
    SCAN,
    SERVICE_ONLY,
    TABLES,
    TENANT_RPCS,
    WORKER_RPCS,
    ActAs,
    audit_rows,
    claim,
    complete,
    count_jobs,
    enqueue,
    expect_error,
    job_row,
    make_trigger,
    new_tenant,
    new_type,
    signatures,
    sql_error,
    submit,
    tenant_facing_calls,
)
from tests.support.roles import RoleSession, tenant_claims

# -- tenancy: jwt_tenant_ids and assert_tenant ------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"role": "authenticated", "sub": "u1"},
        {"role": "authenticated", "app_metadata": {}},
        {"role": "authenticated", "app_metadata": {"tenant_ids": []}},
        {"role": "authenticated", "app_metadata": "not an object"},
        {"role": "authenticated", "app_metadata": {"tenant_ids": "not an array"}},
        {"role": "authenticated", "app_metadata": {"tenant_ids": ["nope", 7, None, {"a": 1}]}},
        {"role": "authenticated", "user_metadata": {"tenant_ids": ["IGNORED"]}},
    ],
)
def test_user_without_tenant_claims_sees_and_does_nothing(
    act_as: ActAs,
    svc: RoleSession,
    admin_conn: psycopg.Connection[Any],
    claims: dict[str, Any],
) -> None:
    enqueue(svc, new_tenant(), new_type())  # there is something to see
    user = act_as("authenticated", claims)
    assert user.query("select jobforge_private.jwt_tenant_ids()") == [([],)]
    for table in TABLES:
        assert user.query(f"select count(*) from public.{table}") == [(0,)], table
    tenant = new_tenant()
    for fn, args in tenant_facing_calls(tenant, str(uuid.uuid4()), new_type()).items():
        expect_error("PT403", "tenant_id: ", user, fn, **args)
    assert count_jobs(admin_conn, tenant) == 0


def test_jwt_tenant_ids_reads_tenant_id_and_tenant_ids(act_as: ActAs) -> None:
    one, two, three = (new_tenant() for _ in range(3))
    claims = {
        "role": "authenticated",
        "app_metadata": {"tenant_id": one.upper(), "tenant_ids": [two, "junk", three, two]},
    }
    user = act_as("authenticated", claims)
    ((ids,),) = user.query("select jobforge_private.jwt_tenant_ids()")
    assert sorted(str(i) for i in ids) == sorted([one, two, three])
    singular = act_as(
        "authenticated", {"role": "authenticated", "app_metadata": {"tenant_id": one}}
    )
    job = enqueue(singular, one, new_type())
    assert job["tenant_id"] == one


def test_tenant_matrix(act_as: ActAs, admin_conn: Any) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    sr = act_as("service_role")
    # Tenant B's world.
    b_event = submit(sr, b, p_payload={"b-secret": "B-ONLY"})
    b_trigger = make_trigger(sr, b)
    b_job = sr.call("jobforge_enqueue_job", p_tenant_id=b, p_type="test.matrix")
    sr.call("jobforge_create_manifest", p_run_id=b_job["id"], p_tenant_id=b, p_manifest={})
    b_audits = len(audit_rows(admin_conn, b))

    user_a = act_as("authenticated", tenant_claims(a))
    calls: list[tuple[str, dict[str, Any]]] = [
        (
            "jobforge_submit_event",
            {"p_tenant_id": b, "p_event_type": "a.b", "p_source_app": "keys"},
        ),
        (
            "jobforge_submit_events",
            {"p_tenant_id": b, "p_events": [{"event_type": "a.b", "source_app": "keys"}]},
        ),
        ("jobforge_list_events", {"p_tenant_id": b}),
        (
            "jobforge_request_job",
            {"p_tenant_id": b, "p_template_key": SCAN, "p_inputs": {"target": "x"}},
        ),
        (
            "jobforge_verify_policy_token",
            {"p_tenant_id": b, "p_template_key": ACTION, "p_policy_token": "x"},
        ),
        ("jobforge_get_manifest", {"p_run_id": b_job["id"], "p_tenant_id": b}),
        (
            "jobforge_create_trigger",
            {
                "p_tenant_id": b,
                "p_name": "x",
                "p_trigger_type": "event",
                "p_target_template_key": SCAN,
                "p_event_type_filter": "a.b",
            },
        ),
        ("jobforge_list_triggers", {"p_tenant_id": b}),
        (
            "jobforge_set_trigger_enabled",
            {"p_trigger_id": b_trigger["id"], "p_tenant_id": b, "p_enabled": False},
        ),
        ("jobforge_delete_trigger", {"p_trigger_id": b_trigger["id"], "p_tenant_id": b}),
        ("jobforge_list_audit_logs", {"p_tenant_id": b}),
        ("jobforge_cancel_job", {"p_job_id": b_job["id"], "p_tenant_id": b}),
    ]
    for fn, args in calls:
        with sql_error("PT403", "tenant_id: caller may not act for tenant"):
            user_a.call(fn, **args)
    # A's own tenant with B's object ids: not found, never B's data.
    with sql_error("PT404"):
        user_a.call(
            "jobforge_set_trigger_enabled",
            p_trigger_id=b_trigger["id"],
            p_tenant_id=a,
            p_enabled=False,
        )
    with sql_error("PT404"):
        user_a.call("jobforge_delete_trigger", p_trigger_id=b_trigger["id"], p_tenant_id=a)
    with sql_error("PT404"):
        user_a.call("jobforge_cancel_job", p_job_id=b_job["id"], p_tenant_id=a)
    assert user_a.call("jobforge_get_manifest", p_run_id=b_job["id"], p_tenant_id=a) is None
    assert user_a.call("jobforge_list_events", p_tenant_id=a) == []
    assert user_a.call("jobforge_list_triggers", p_tenant_id=a) == []
    assert user_a.call("jobforge_list_audit_logs", p_tenant_id=a) == []

    for table in (
        "jobforge_events",
        "jobforge_triggers",
        "jobforge_artifact_manifests",
        "jobforge_audit_logs",
    ):
        assert user_a.query(f"select count(*) from public.{table} where tenant_id = %s", (b,)) == [
            (0,)
        ], table
        assert sr.query(f"select count(*) > 0 from public.{table} where tenant_id = %s", (b,)) == [
            (True,)
        ], table
        with sql_error("42501"):
            user_a.query(f"delete from public.{table} where tenant_id = %s", (b,))
    # Global audit rows (templates, keys) are not shown to tenant users.
    assert user_a.query(
        "select count(*) from public.jobforge_audit_logs where tenant_id is null"
    ) == [(0,)]
    assert user_a.query("select count(*) from public.jobforge_job_templates") == [(13,)]
    with sql_error("42501"):
        user_a.query("update public.jobforge_job_templates set enabled = true")
    with sql_error("42501"):
        user_a.query(
            "insert into public.jobforge_events"
            " (tenant_id, event_type, occurred_at, trace_id, source_app)"
            " values (%s, 'a.b', now(), 't', 'keys')",
            (a,),
        )

    # Nothing of B changed.
    assert len(audit_rows(admin_conn, b)) == b_audits
    assert admin_conn.execute(
        "select enabled from jobforge_triggers where id = %s", (b_trigger["id"],)
    ).fetchone() == (True,)
    assert admin_conn.execute(
        "select status from jobforge_jobs where id = %s", (b_job["id"],)
    ).fetchone() == ("queued",)
    assert b_event["tenant_id"] == str(b)

    # No claims at all means no tenant, never every tenant.
    nobody = act_as("authenticated", {"role": "authenticated"})
    with sql_error("PT403"):
        nobody.call("jobforge_list_events", p_tenant_id=b)
    assert nobody.query("select count(*) from public.jobforge_events") == [(0,)]


# -- RLS and table privileges -----------------------------------------------------------


def test_rls_shows_each_user_only_its_tenants_rows(
    act_as: ActAs,
    svc: RoleSession,
    admin_conn: psycopg.Connection[Any],
    tenant_b: dict[str, Any],
) -> None:
    tenant_a, jtype = new_tenant(), new_type()
    job = enqueue(svc, tenant_a, jtype)
    claim(svc, "w", [jtype])
    complete(svc, job["id"], "w", "failed", p_error={"try": 1})  # an attempt row
    admin_conn.execute("update public.jobforge_jobs set run_at = now() where id = %s", (job["id"],))
    claim(svc, "w", [jtype])
    complete(svc, job["id"], "w", "succeeded", p_result={"mine": True})
    for tenant in (tenant_a, tenant_b["tenant"]):
        admin_conn.execute(
            "insert into public.jobforge_connector_configs (tenant_id, connector_type, config)"
            " values (%s, 'slack', '{\"channel\": \"#ops\"}')",
            (tenant,),
        )

    user_a = act_as("authenticated", tenant_claims(tenant_a))
    for table in TABLES:
        seen = user_a.query(f"select distinct tenant_id::text from public.{table}")
        assert seen == [(tenant_a,)], table
        of_b = user_a.query(
            f"select count(*) from public.{table} where tenant_id = %s", (tenant_b["tenant"],)
        )
        assert of_b == [(0,)], table

    # A user of both tenants sees both; service_role sees everything.
    both = act_as("authenticated", tenant_claims(tenant_a, tenant_b["tenant"]))
    seen = both.query("select distinct tenant_id::text from public.jobforge_jobs")
    assert set(seen) == {(tenant_a,), (tenant_b["tenant"],)}
    service_sees = svc.query(
        "select count(distinct tenant_id) from public.jobforge_jobs where tenant_id = any(%s)",
        ([tenant_a, tenant_b["tenant"]],),
    )
    assert service_sees == [(2,)]


@pytest.mark.parametrize("role", ["authenticated", "service_role"])
def test_api_roles_cannot_write_tables_directly(
    act_as: ActAs, svc: RoleSession, admin_conn: psycopg.Connection[Any], role: str
) -> None:
    tenant = new_tenant()
    job = enqueue(svc, tenant, new_type())
    session = act_as(role, tenant_claims(tenant) if role == "authenticated" else None)
    statements = [
        (
            "insert into public.jobforge_jobs (tenant_id, type) values (%s, 'x')",
            (tenant,),
        ),
        ("update public.jobforge_jobs set status = 'succeeded' where id = %s", (job["id"],)),
        ("delete from public.jobforge_jobs where id = %s", (job["id"],)),
        (
            "insert into public.jobforge_connector_configs (tenant_id, connector_type)"
            " values (%s, 'x')",
            (tenant,),
        ),
        ("delete from public.jobforge_job_attempts where tenant_id = %s", (tenant,)),
    ]
    for statement, params in statements:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            session.query(statement, params)
    assert job_row(admin_conn, job["id"]) == job


@pytest.mark.parametrize("table", ["policy_keys", "policy_token_uses", "trigger_fires"])
def test_private_tables_are_unreadable(act_as: ActAs, table: str) -> None:
    for role, claims in (
        ("authenticated", tenant_claims(uuid.uuid4())),
        ("service_role", None),
        ("anon", None),
    ):
        with sql_error("42501"):
            act_as(role, claims).query(f"select * from jobforge_private.{table}")


# -- anon -------------------------------------------------------------------------------


def test_anon_can_execute_no_jobforge_function_nor_read_any_table(
    act_as: ActAs, admin_conn: psycopg.Connection[Any]
) -> None:
    anon = act_as("anon", {"role": "anon", "app_metadata": {"tenant_ids": [new_tenant()]}})
    functions = signatures(
        admin_conn,
        "(n.nspname = 'public' and p.proname like 'jobforge\\_%')"
        " or n.nspname = 'jobforge_private'",
    )
    assert set(TENANT_RPCS + WORKER_RPCS) <= {sig.split("(")[0] for sig, _ in functions}
    executable = []
    for signature, call in functions:
        try:
            anon.query(call)
        except psycopg.Error as exc:
            if exc.sqlstate == "42501":
                continue
        executable.append(signature)
    assert executable == []
    for table in TABLES:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            anon.query(f"select * from public.{table}")


def test_anon_executes_nothing(act_as: ActAs, admin_conn: Any) -> None:
    anon = act_as("anon")
    for fn, args in [
        *SERVICE_ONLY,
        ("jobforge_list_templates", {}),
        ("jobforge_get_template", {"p_template_key": SCAN}),
        (
            "jobforge_submit_event",
            {"p_tenant_id": uuid.uuid4(), "p_event_type": "a.b", "p_source_app": "keys"},
        ),
        ("jobforge_list_audit_logs", {"p_tenant_id": uuid.uuid4()}),
    ]:
        with sql_error("42501"):
            anon.call(fn, **args)
    for table in (
        "jobforge_events",
        "jobforge_job_templates",
        "jobforge_triggers",
        "jobforge_audit_logs",
        "jobforge_artifact_manifests",
    ):
        with sql_error("42501"):
            anon.query(f"select 1 from public.{table}")


# -- catalog ----------------------------------------------------------------------------


def test_catalog_grants_definer_and_rls(admin_conn: psycopg.Connection[Any]) -> None:
    rows = admin_conn.execute(
        """
        select p.oid::regprocedure::text, n.nspname, p.proname, p.prosecdef,
          coalesce(p.proconfig, '{}'),
          has_function_privilege('anon', p.oid, 'EXECUTE'),
          has_function_privilege('authenticated', p.oid, 'EXECUTE'),
          has_function_privilege('service_role', p.oid, 'EXECUTE'),
          exists (
            select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
            where a.grantee = 0 and a.privilege_type = 'EXECUTE'
          )
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where (n.nspname = 'public' and p.proname like 'jobforge\\_%')
           or n.nspname = 'jobforge_private'
        """
    ).fetchall()
    seen = {name for _, schema, name, *_ in rows if schema == "public"}
    assert set(TENANT_RPCS + WORKER_RPCS) <= seen
    for signature, schema, name, definer, config, anon, authd, service, public in rows:
        assert not public, f"{signature} is executable by PUBLIC"
        assert not anon, f"{signature} is executable by anon"
        if schema == "public":
            assert definer, f"{signature} is not SECURITY DEFINER"
            assert 'search_path=""' in config, f"{signature} has no empty search_path: {config}"
        if name in TENANT_RPCS:
            assert (authd, service) == (True, True), signature
        if name in WORKER_RPCS:
            assert (authd, service) == (False, True), signature
        if schema == "jobforge_private":
            assert authd == service == (name == "jwt_tenant_ids"), signature

    tables = admin_conn.execute(
        "select c.relname, c.relrowsecurity,"
        " has_table_privilege('anon', c.oid, 'SELECT,INSERT,UPDATE,DELETE'),"
        " has_table_privilege('authenticated', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE'),"
        " has_table_privilege('service_role', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE')"
        " from pg_class c where c.relnamespace = 'public'::regnamespace"
        " and c.relkind in ('r', 'p') and c.relname like 'jobforge\\_%'"
    ).fetchall()
    assert set(TABLES) <= {name for name, *_ in tables}
    for name, rls, anon, authd_writes, service_writes in tables:
        assert rls, f"RLS is off on {name}"
        assert not anon, f"anon has privileges on {name}"
        if name in TABLES:
            assert (authd_writes, service_writes) == (False, False), name

    policies = admin_conn.execute(
        "select tablename, cmd, roles::text[] from pg_policies"
        " where schemaname = 'public' and tablename = any(%s)",
        (list(TABLES),),
    ).fetchall()
    assert sorted(policies) == sorted((t, "SELECT", ["authenticated"]) for t in TABLES)


def test_catalog_every_rpc_is_definer_with_empty_search_path(admin_conn: Any) -> None:
    rows = admin_conn.execute(
        """
        select p.oid::regprocedure::text, p.prosecdef, coalesce(p.proconfig, '{}'),
               has_function_privilege('anon', p.oid, 'execute'),
               exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                       where a.grantee = 0 and a.privilege_type = 'EXECUTE'),
               obj_description(p.oid, 'pg_proc') is not null,
               pg_get_function_result(p.oid)
        from pg_proc p
        where p.pronamespace = 'public'::regnamespace and p.proname like 'jobforge\\_%'
        """
    ).fetchall()
    names = {r[0].split("(")[0] for r in rows}
    expected = {
        "jobforge_submit_event",
        "jobforge_submit_events",
        "jobforge_list_events",
        "jobforge_list_templates",
        "jobforge_get_template",
        "jobforge_set_template_enabled",
        "jobforge_request_job",
        "jobforge_verify_policy_token",
        "jobforge_add_policy_key",
        "jobforge_retire_policy_key",
        "jobforge_create_manifest",
        "jobforge_get_manifest",
        "jobforge_create_trigger",
        "jobforge_list_triggers",
        "jobforge_set_trigger_enabled",
        "jobforge_delete_trigger",
        "jobforge_fire_cron_trigger",
        "jobforge_list_audit_logs",
        "jobforge_purge_expired_events",
        "jobforge_purge_audit_logs",
        "jobforge_purge_finished_jobs",
        "jobforge_purge_manifests",
        "jobforge_cancel_job",
        "jobforge_retry_job",
        "jobforge_retry_dead_jobs",
    }
    assert expected <= names
    for name, definer, config, anon_exec, public_exec, commented, result in rows:
        assert definer, name
        assert 'search_path=""' in config, (name, config)
        assert not anon_exec, name
        assert not public_exec, name
        assert commented, name
        if name.split("(")[0] in expected - {
            "jobforge_purge_expired_events",
            "jobforge_purge_audit_logs",
        }:
            # One JSON document per call; json where the answer is only ever sent.
            assert result in ("json", "jsonb"), name
    for name in (
        "jobforge_set_template_enabled",
        "jobforge_add_policy_key",
        "jobforge_retire_policy_key",
        "jobforge_create_manifest",
        "jobforge_fire_cron_trigger",
        "jobforge_purge_expired_events",
        "jobforge_purge_audit_logs",
        "jobforge_purge_finished_jobs",
        "jobforge_purge_manifests",
    ):
        granted = admin_conn.execute(
            "select bool_or(has_function_privilege('authenticated', p.oid, 'execute')),"
            " bool_and(has_function_privilege('service_role', p.oid, 'execute'))"
            " from pg_proc p where p.pronamespace = 'public'::regnamespace and p.proname = %s",
            (name,),
        ).fetchone()
        assert granted == (False, True), name

    tables = admin_conn.execute(
        """
        select c.oid::regclass::text, c.relrowsecurity,
               has_table_privilege('anon', c.oid, 'select'),
               has_table_privilege('authenticated', c.oid, 'insert,update,delete,truncate'),
               has_table_privilege('service_role', c.oid, 'insert,update,delete,truncate')
        from pg_class c
        where c.relkind = 'r'
          and (c.relnamespace = 'jobforge_private'::regnamespace
               or (c.relnamespace = 'public'::regnamespace and c.relname like 'jobforge\\_%'))
        """
    ).fetchall()
    assert len(tables) >= 10
    for name, rls, anon_select, auth_write, service_write in tables:
        assert rls, name
        assert not anon_select, name
        assert not auth_write, name
        assert not service_write, name
    private = admin_conn.execute(
        "select bool_or(has_table_privilege(r, c.oid, 'select'))"
        " from pg_class c, unnest(array['authenticated', 'service_role', 'anon']) r"
        " where c.relnamespace = 'jobforge_private'::regnamespace and c.relkind = 'r'"
    ).fetchone()
    assert private == (False,)
