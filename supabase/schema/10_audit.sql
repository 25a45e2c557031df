-- 10_audit: the append-only audit trail, the helpers every write RPC uses to add its
-- row, and the RPCs that read and purge it.
--
-- Every write RPC adds exactly one row in its own transaction (a trigger fire adds one
-- per trigger it evaluates). The actor recorded is p_actor_id when the caller is trusted
-- (service_role acts for its users), and the JWT subject otherwise: an authenticated
-- user cannot write another name into the trail. Comes before the other areas because
-- they all write to it.

create table public.jobforge_audit_logs (
  id uuid primary key default gen_random_uuid(),
  -- Null for global writes by an administrator (templates, policy keys).
  tenant_id uuid,
  project_id uuid,
  action text not null check (action in (
    'event_ingest', 'job_request', 'job_cancel', 'policy_check', 'trigger_fire',
    'trigger_create', 'trigger_update', 'trigger_delete', 'template_update',
    'manifest_write', 'policy_key_add', 'policy_key_retire'
  )),
  actor_id text,
  trace_id text,
  target_type text,
  target_id text,
  outcome text not null check (outcome in ('success', 'denied', 'skipped', 'dry_run')),
  reason text,
  details jsonb not null default '{}',
  -- clock_timestamp, not now(): the rows of one transaction keep their order.
  created_at timestamptz not null default clock_timestamp()
);

comment on table public.jobforge_audit_logs is
  'JobForge audit trail. Append-only: rows are written by the RPCs and removed only by jobforge_purge_audit_logs.';

create index jobforge_audit_logs_tenant_created
  on public.jobforge_audit_logs (tenant_id, created_at desc, id desc);

create index jobforge_audit_logs_created_brin
  on public.jobforge_audit_logs using brin (created_at);
alter table public.jobforge_audit_logs enable row level security;

-- Global rows (tenant_id null) never match: they are for service_role only.
create policy jobforge_audit_logs_tenant_select on public.jobforge_audit_logs
  for select to authenticated
  using (tenant_id = any ((select jobforge_private.jwt_tenant_ids())::uuid[]));

-- Supabase's default privileges grant everything on new tables to the API roles: take
-- it back; writes go through the RPCs only.
revoke all on table
  public.jobforge_audit_logs
  from public, anon, authenticated, service_role;

grant select on table
  public.jobforge_audit_logs
  to authenticated, service_role;


-- The audit trail is append-only for every role, superusers included: UPDATE, DELETE
-- and TRUNCATE raise. The one exception is a DELETE run by jobforge_purge_audit_logs,
-- which turns jobforge.audit_purge on around its DELETE and off again. The triggers are ENABLE ALWAYS, so
-- session_replication_role = replica does not switch them off either. (A superuser can
-- still drop a trigger: a database cannot defend against its owner, only make it
-- deliberate.)
create function jobforge_private.audit_logs_append_only()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'DELETE'
    and tg_level = 'ROW'
    and pg_catalog.current_setting('jobforge.audit_purge', true) = 'on' then
    return old;
  end if;
  raise exception using
    errcode = 'PT409', message = 'jobforge_audit_logs is append-only';
end
$$;

create trigger jobforge_audit_logs_no_change
  before update or delete on public.jobforge_audit_logs
  for each row execute function jobforge_private.audit_logs_append_only();

create trigger jobforge_audit_logs_no_truncate
  before truncate on public.jobforge_audit_logs
  for each statement execute function jobforge_private.audit_logs_append_only();

alter table public.jobforge_audit_logs enable always trigger jobforge_audit_logs_no_change;
alter table public.jobforge_audit_logs enable always trigger jobforge_audit_logs_no_truncate;

-- Write one audit row; returns its id.
create function jobforge_private.audit(
  p_tenant_id uuid,
  p_project_id uuid,
  p_action text,
  p_actor_id text,
  p_trace_id text,
  p_target_type text,
  p_target_id text,
  p_outcome text,
  p_reason text,
  p_details jsonb
)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid;
begin
  insert into public.jobforge_audit_logs as a
    (tenant_id, project_id, action, actor_id, trace_id, target_type, target_id, outcome, reason, details)
  values
    (
      p_tenant_id, p_project_id, p_action, p_actor_id, p_trace_id, p_target_type, p_target_id,
      p_outcome, p_reason, coalesce(p_details, '{}'::jsonb)
    )
  returning a.id into v_id;
  return v_id;
end
$$;

-- The actor to record: what the trusted caller says, else the subject of the JWT.
create function jobforge_private.audit_actor(p_claimed text)
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  if jobforge_private.caller_is_trusted() then
    return p_claimed;
  end if;
  return nullif(auth.jwt() ->> 'sub', '');
end
$$;

create function public.jobforge_list_audit_logs(p_tenant_id uuid, p_filters jsonb default '{}')
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_action text;
  v_actor_id text;
  v_trace_id text;
  v_target_type text;
  v_target_id text;
  v_outcome text;
  v_from timestamptz;
  v_to timestamptz;
  v_limit integer;
  v_offset integer;
  v_sql text;
  v_rows jsonb;
begin
  -- No tenant: the global rows (template and policy-key changes), for service_role only.
  if p_tenant_id is null then
    perform jobforge_private.assert_service_role();
  else
    perform jobforge_private.assert_tenant(p_tenant_id);
  end if;

  p_filters := jobforge_private.filters_object(
    p_filters,
    array['action', 'actor_id', 'trace_id', 'target_type', 'target_id', 'outcome', 'from', 'to',
      'limit', 'offset']
  );
  v_action := jobforge_private.filter_text(p_filters, 'action');
  v_actor_id := jobforge_private.filter_text(p_filters, 'actor_id');
  v_trace_id := jobforge_private.filter_text(p_filters, 'trace_id');
  v_target_type := jobforge_private.filter_text(p_filters, 'target_type');
  v_target_id := jobforge_private.filter_text(p_filters, 'target_id');
  v_outcome := jobforge_private.filter_text(p_filters, 'outcome');
  if v_outcome not in ('success', 'denied', 'skipped', 'dry_run') then
    perform jobforge_private.invalid('outcome', 'must be one of success, denied, skipped, dry_run');
  end if;
  v_from := jobforge_private.filter_timestamp(p_filters, 'from');
  v_to := jobforge_private.filter_timestamp(p_filters, 'to');
  v_limit := jobforge_private.filter_integer(p_filters, 'limit', 1, 1000, 100);
  v_offset := jobforge_private.filter_integer(p_filters, 'offset', 0, 2147483647, 0);

  v_sql := 'select coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(page)'
    || ' order by page.created_at desc, page.id desc), ''[]''::jsonb)'
    || ' from (select a.* from public.jobforge_audit_logs a where '
    || case when p_tenant_id is null then 'a.tenant_id is null' else 'a.tenant_id = $1' end
    || case when v_action is not null then ' and a.action = $2' else '' end
    || case when v_actor_id is not null then ' and a.actor_id = $3' else '' end
    || case when v_trace_id is not null then ' and a.trace_id = $4' else '' end
    || case when v_target_type is not null then ' and a.target_type = $5' else '' end
    || case when v_target_id is not null then ' and a.target_id = $6' else '' end
    || case when v_outcome is not null then ' and a.outcome = $7' else '' end
    || case when v_from is not null then ' and a.created_at >= $8' else '' end
    || case when v_to is not null then ' and a.created_at < $9' else '' end
    || ' order by a.created_at desc, a.id desc limit $10 offset $11) as page';

  execute v_sql into v_rows
  using p_tenant_id, v_action, v_actor_id, v_trace_id, v_target_type, v_target_id, v_outcome,
    v_from, v_to, v_limit, v_offset;
  return v_rows;
end
$$;

comment on function public.jobforge_list_audit_logs is
  'Audit rows of a tenant (or, for service_role with a null tenant, the global rows), newest first; filters action, actor_id, trace_id, target_type, target_id, outcome, from, to, limit, offset. authenticated (own tenants) and service_role.';

-- The only way audit rows are ever removed: the append-only trigger lets a DELETE pass
-- while jobforge.audit_purge is on, which this function does around its DELETE only.
create function public.jobforge_purge_audit_logs(p_retention_days integer default 365)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_deleted integer;
begin
  perform jobforge_private.assert_service_role();
  if p_retention_days is null or p_retention_days < 1 then
    perform jobforge_private.invalid('retention_days', 'must be at least 1');
  end if;

  -- Open the append-only trigger for this DELETE only. set_config rather than a SET
  -- clause on the function: a SET clause naming a custom setting needs a superuser on
  -- PostgreSQL 15+, and a hosted Supabase project's owner is not one.
  perform pg_catalog.set_config('jobforge.audit_purge', 'on', true);
  delete from public.jobforge_audit_logs a
  where a.created_at < now() - pg_catalog.make_interval(days => p_retention_days);
  get diagnostics v_deleted = row_count;
  perform pg_catalog.set_config('jobforge.audit_purge', 'off', true);
  return v_deleted;
end
$$;

comment on function public.jobforge_purge_audit_logs is
  'Delete audit rows older than p_retention_days (at least 1); the only way audit rows are removed. service_role only.';
