"""``supabase/schema/90_api.sql``: who may call which RPC.

The matrix test reads every ``public.jobforge_*`` function from ``pg_proc`` and calls each
one as every caller (``anon``; ``authenticated`` for the tenant passed; ``authenticated``
for another tenant; ``service_role``) with well-formed arguments built from its argument
types. It runs on ``fresh_db_url``: as the service role it claims every due job, reaps,
purges, and adds keys and triggers, which would disturb the shared database. The
audiences it reads from the catalog are pinned here, so a grant change in 90_api.sql
fails a test until this file agrees.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.integration.sql.helpers import (
    SCAN,
    SERVICE_ONLY,
    ActAs,
    enqueue,
    job_row,
    signatures,
    sql_error,
)
from tests.support.roles import RoleSession, tenant_claims


def test_authenticated_cannot_run_worker_rpcs_or_private_helpers(
    act_as: ActAs, svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype)
    user = act_as("authenticated", tenant_claims(tenant))
    calls: dict[str, dict[str, Any]] = {
        "jobforge_claim_jobs": {"p_worker_id": "w", "p_types": [jtype]},
        "jobforge_heartbeat_job": {"p_job_id": job["id"], "p_worker_id": "w"},
        "jobforge_complete_job": {"p_job_id": job["id"], "p_worker_id": "w", "p_status": "failed"},
        "jobforge_reap_stale_jobs": {"p_timeout": "1 second"},
    }
    for fn, args in calls.items():
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            user.call(fn, **args)
    private = signatures(
        admin_conn, "n.nspname = 'jobforge_private' and p.proname <> 'jwt_tenant_ids'"
    )
    assert private
    for _, call in private:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            user.query(call)
    assert job_row(admin_conn, job["id"]) == job


@pytest.mark.parametrize(("fn", "args"), SERVICE_ONLY, ids=[c[0] for c in SERVICE_ONLY])
def test_authenticated_cannot_call_service_role_rpcs(
    act_as: ActAs, fn: str, args: dict[str, Any]
) -> None:
    tenant = args.get("p_tenant_id", uuid.uuid4())
    with sql_error("42501"):
        act_as("authenticated", tenant_claims(tenant)).call(fn, **args)


# -- every RPC as every caller ----------------------------------------------------------

# The audiences of 90_api.sql, pinned: the matrix reads them from the catalog and requires
# them to be these, so a grant added or taken away fails here until this file agrees.
SERVICE_ROLE_ONLY_RPCS = frozenset(
    {
        # 10_audit
        "jobforge_purge_audit_logs",
        # 20_jobs
        "jobforge_purge_finished_jobs",
        # 25_workers
        "jobforge_claim_jobs",
        "jobforge_heartbeat_job",
        "jobforge_heartbeat_jobs",
        "jobforge_complete_job",
        "jobforge_complete_jobs",
        "jobforge_release_job",
        "jobforge_reap_stale_jobs",
        # 27_limits
        "jobforge_set_limit",
        "jobforge_list_limits",
        "jobforge_delete_limit",
        # 30_events
        "jobforge_purge_expired_events",
        # 40_templates
        "jobforge_set_template_enabled",
        # 45_policy
        "jobforge_add_policy_key",
        "jobforge_retire_policy_key",
        # 50_manifests
        "jobforge_create_manifest",
        "jobforge_purge_manifests",
        # 60_triggers
        "jobforge_fire_cron_trigger",
        "jobforge_list_cron_triggers",
        "jobforge_claim_daily_purge",
    }
)
# Tenant RPCs (authenticated may call them) that take no p_tenant_id: they read the
# template registry, which is the same for every tenant, so another tenant's user is
# served like any other.
TENANTLESS_TENANT_RPCS = frozenset({"jobforge_list_templates", "jobforge_get_template"})

CALLERS = ("anon", "authenticated", "authenticated_other_tenant", "service_role")

# Well-formed values, first by argument name, then by argument type.
VALUE_BY_NAME: dict[str, Callable[[], Any]] = {
    "p_type": lambda: "t.matrix",
    "p_jobs": lambda: [{"type": "t.matrix"}],
    "p_types": lambda: ["t.matrix"],
    "p_job_ids": lambda: [uuid.uuid4()],
    "p_worker_id": lambda: "matrix-worker",
    "p_status": lambda: "succeeded",
    "p_results": lambda: [{"job_id": str(uuid.uuid4()), "status": "succeeded"}],
    "p_event_type": lambda: "matrix.event",
    "p_events": lambda: [{"event_type": "matrix.event", "source_app": "keys"}],
    "p_source_app": lambda: "keys",
    "p_template_key": lambda: SCAN,
    "p_target_template_key": lambda: SCAN,
    "p_inputs": lambda: {"target": "matrix"},
    "p_target_inputs": lambda: {"target": "matrix"},
    "p_category": lambda: "ops",
    "p_policy_token": lambda: "not.a.token",
    "p_kid": lambda: f"kid-matrix-{uuid.uuid4().hex[:8]}",
    "p_secret": lambda: secrets.token_urlsafe(48),
    "p_name": lambda: f"matrix-{uuid.uuid4().hex[:8]}",
    "p_trigger_type": lambda: "event",
    "p_event_type_filter": lambda: "matrix.*",
    "p_retention_days": lambda: 365,
    "p_max_running": lambda: 5,
    "p_misfire_policy": lambda: "run_once",
}
VALUE_BY_TYPE: dict[str, Callable[[], Any]] = {
    "uuid": uuid.uuid4,
    "text": lambda: "matrix",
    "jsonb": dict,
    "integer": lambda: 1,
    "boolean": lambda: False,
    "timestamp with time zone": lambda: datetime(2030, 1, 1, tzinfo=UTC),
    "interval": lambda: timedelta(minutes=5),
    "text[]": lambda: ["matrix"],
}


@dataclass(frozen=True)
class Rpc:
    name: str
    args: tuple[tuple[str, str, bool], ...]  # (name, type, has a default), in order
    authenticated: bool
    service_role: bool

    @property
    def takes_tenant(self) -> bool:
        return any(name == "p_tenant_id" for name, _, _ in self.args)

    def well_formed_args(self, tenant: uuid.UUID) -> dict[str, Any]:
        """Every argument without a default, and those with one that a valid call needs
        (an event trigger's filter, a template's inputs): by name, else by type."""
        args: dict[str, Any] = {}
        for name, typ, has_default in self.args:
            if name == "p_tenant_id":
                args[name] = tenant
            elif name in VALUE_BY_NAME:
                args[name] = VALUE_BY_NAME[name]()
            elif not has_default:
                assert typ in VALUE_BY_TYPE, f"{self.name}: no well-formed {typ} for {name}"
                args[name] = VALUE_BY_TYPE[typ]()
        return args


def catalog_rpcs(conn: psycopg.Connection[Any]) -> list[Rpc]:
    """Every public.jobforge_* function, its arguments and its audience."""
    rows = conn.execute(
        """
        select p.proname,
          coalesce((
            select array_agg(
              array[a.name, format_type(a.type, null),
                    (a.n > p.pronargs - p.pronargdefaults)::text]
              order by a.n)
            from unnest(p.proargnames[1:p.pronargs], p.proargtypes::oid[])
              with ordinality as a(name, type, n)
          ), '{}'),
          has_function_privilege('authenticated', p.oid, 'EXECUTE'),
          has_function_privilege('service_role', p.oid, 'EXECUTE')
        from pg_proc p
        where p.pronamespace = 'public'::regnamespace and p.proname like 'jobforge\\_%'
        order by p.proname
        """
    ).fetchall()
    return [
        Rpc(
            name=str(name),
            args=tuple((str(arg), str(typ), default == "true") for arg, typ, default in args),
            authenticated=bool(authenticated),
            service_role=bool(service_role),
        )
        for name, args, authenticated, service_role in rows
    ]


def outcome(session: RoleSession, rpc: Rpc, args: dict[str, Any]) -> tuple[str, str]:
    """("ok", "") or (SQLSTATE, message) of one call."""
    try:
        session.call(rpc.name, **args)
    except psycopg.Error as exc:
        return str(exc.sqlstate), exc.diag.message_primary or ""
    return "ok", ""


@pytest.mark.parametrize("caller", CALLERS)
def test_every_rpc_as_every_caller(act_as: ActAs, fresh_db_url: str, caller: str) -> None:
    """anon: 42501 on every RPC, even with tenant claims. authenticated for the tenant it
    passes: 42501 on the service-role-only RPCs, past the tenant check on the others.
    authenticated for another tenant: 42501 on the service-role-only RPCs, PT403 on every
    tenant RPC that takes p_tenant_id, served on the tenantless ones. service_role:
    never 42501 nor PT403."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        rpcs = catalog_rpcs(conn)
    names = [rpc.name for rpc in rpcs]
    assert len(names) == len(set(names)), "an overloaded RPC: the matrix calls by name"
    assert {"jobforge_enqueue_job", "jobforge_list_job_attempts", "jobforge_claim_jobs"} <= set(
        names
    )
    # The audiences in the catalog are those of 90_api.sql, as pinned above.
    assert [rpc.name for rpc in rpcs if not rpc.service_role] == []
    assert {rpc.name for rpc in rpcs if not rpc.authenticated} == SERVICE_ROLE_ONLY_RPCS
    assert {
        rpc.name for rpc in rpcs if rpc.authenticated and not rpc.takes_tenant
    } == TENANTLESS_TENANT_RPCS

    tenant, other = uuid.uuid4(), uuid.uuid4()
    if caller == "service_role":
        session = act_as("service_role", url=fresh_db_url)
    else:
        role = "anon" if caller == "anon" else "authenticated"
        claims = tenant_claims(other if caller == "authenticated_other_tenant" else tenant)
        claims["role"] = role
        session = act_as(role, claims, url=fresh_db_url)

    refused = f"tenant_id: caller may not act for tenant {tenant}"
    wrong: list[str] = []
    for rpc in rpcs:
        state, message = outcome(session, rpc, rpc.well_formed_args(tenant))
        got = f"{state} {message}".strip()
        if caller == "anon" or (caller != "service_role" and not rpc.authenticated):
            if state != "42501":
                wrong.append(f"{rpc.name}: expected 42501, got {got}")
        elif caller == "authenticated_other_tenant" and rpc.takes_tenant:
            if (state, message) != ("PT403", refused):
                wrong.append(f"{rpc.name}: expected PT403 {refused}, got {got}")
        elif state in ("42501", "PT403"):
            wrong.append(f"{rpc.name}: expected to be let through, got {got}")
    assert wrong == [], "\n".join(wrong)


# The RPCs where a null p_tenant_id means something, for the service role only: the jobs of
# every tenant, a job whatever its tenant, the global audit rows, a limit of every tenant.
# Everywhere else a null tenant is refused for every caller.
NULL_TENANT_RPCS = frozenset(
    {
        "jobforge_list_jobs",
        "jobforge_get_job",
        "jobforge_list_audit_logs",
        "jobforge_set_limit",
        "jobforge_list_limits",
        "jobforge_delete_limit",
    }
)


@pytest.mark.parametrize("caller", ["authenticated", "service_role"])
def test_a_null_tenant_means_every_tenant_only_to_the_service_role(
    act_as: ActAs, fresh_db_url: str, caller: str
) -> None:
    """Every RPC that takes p_tenant_id, called with null: authenticated (a user of two
    tenants) is refused every time, never served (42501 where it has no grant, PT403 by
    the audit list, which asks for the service role, "tenant_id: is required" elsewhere);
    service_role is served by the RPCs of NULL_TENANT_RPCS only and refused ("tenant_id:
    is required") by the others."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        rpcs = [rpc for rpc in catalog_rpcs(conn) if rpc.takes_tenant]
    assert {rpc.name for rpc in rpcs} >= NULL_TENANT_RPCS
    if caller == "service_role":
        session = act_as("service_role", url=fresh_db_url)
    else:
        session = act_as(
            "authenticated", tenant_claims(uuid.uuid4(), uuid.uuid4()), url=fresh_db_url
        )

    wrong: list[str] = []
    for rpc in rpcs:
        args = rpc.well_formed_args(uuid.uuid4())
        args["p_tenant_id"] = None
        state, message = outcome(session, rpc, args)
        got = f"{state} {message}".strip()
        if caller == "service_role" and rpc.name in NULL_TENANT_RPCS:
            # Served: answered, or told the thing asked for does not exist (no limit of
            # that key to delete), never refused for the tenant.
            if state not in ("ok", "PT404"):
                wrong.append(f"{rpc.name}: expected to be served, got {got}")
        elif caller == "authenticated" and not rpc.authenticated:
            if state != "42501":
                wrong.append(f"{rpc.name}: expected 42501, got {got}")
        elif caller == "authenticated" and rpc.name == "jobforge_list_audit_logs":
            if (state, message) != ("PT403", "service_role required"):
                wrong.append(f"{rpc.name}: expected PT403 service_role required, got {got}")
        elif (state, message) != ("PT400", "tenant_id: is required"):
            wrong.append(f"{rpc.name}: expected PT400 tenant_id: is required, got {got}")
    assert wrong == [], "\n".join(wrong)
