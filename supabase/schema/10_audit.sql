-- 10_audit: the append-only audit trail, the helpers every write RPC uses to add its
-- row, and the RPCs that read and purge it.
--
-- Every write RPC adds exactly one row in its own transaction (a trigger fire adds one
-- per trigger it evaluates). The actor recorded is p_actor_id when the caller is trusted
-- (service_role acts for its users), and the JWT subject otherwise: an authenticated
-- user cannot write another name into the trail. Comes before the other areas because
-- they all write to it.
--
-- An audit row says who did what to which object, never with what content. The trail is
-- append-only and outlives every other table (only jobforge_purge_audit_logs removes a
-- row, by age), so a payload value that reached it could never be erased on request: an
-- email sent without contains_pii would stay there verbatim for the whole retention.
-- Payloads, job inputs and hint values are therefore recorded as a sha256 digest and the
-- names of their top-level keys (and, for events, the names of the redacted fields), and
-- the table refuses a details object that could hold anything more (audit_details_error).

-- The names a details object may use. A key here names an identifier, a count, a flag, a
-- digest or a list of names; never a key for content (payload, inputs, would_enqueue's
-- payload, ...). A writer needing a new detail adds its name here, which is where a
-- reviewer sees it.
create function jobforge_private.audit_detail_keys()
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
begin
  return array[
    'batch_size', 'cutoff', 'more',
    'config_keys', 'connector_type', 'secret_keys', 'secrets_replaced',
    'contains_pii', 'cost_tier', 'count', 'cron_expression', 'deduplicated', 'default_priority',
    'dry_run', 'enabled',
    'event_id', 'event_ids', 'event_source_filter', 'event_type', 'event_type_filter',
    'event_types', 'fire_count', 'idempotency_key', 'input_keys', 'inputs_sha256', 'inserted',
    'job_id', 'job_ids', 'job_type', 'jti', 'kid', 'manifest_id', 'max_attempts', 'max_catch_up',
    'max_running', 'max_starts', 'misfire_policy', 'name', 'outputs', 'per_seconds',
    'payload_bytes', 'payload_keys', 'payload_sha256', 'policy', 'previous_enabled',
    'previous_default_priority', 'previous_max_catch_up', 'previous_misfire_policy', 'previous_status', 'redacted_fields',
    'retired_at', 'scheduled_for', 'scopes', 'source_app',
    'source_module', 'status', 'sub', 'subject_type', 'target_template_key', 'template_key',
    'trigger_name', 'trigger_type', 'type', 'would_enqueue',
    -- a template's encrypted inputs (names only: 40_templates.sql)
    'encrypt_fields', 'previous_encrypt_fields'
  ];
end
$$;

-- Why a details object is refused, or null when it is fine: an object whose keys are all
-- in audit_detail_keys() and whose values are scalars, lists of scalars, or (one level
-- down: policy, would_enqueue) objects obeying the same rules. A payload cannot pass: its
-- own keys are not detail names, and nesting stops at the second level. The CHECK on
-- jobforge_audit_logs.details calls it, so the rule holds for every writer, the direct
-- insert of the event hot path (30_events.sql) included.
create function jobforge_private.audit_details_error(p_details jsonb, p_depth integer default 0)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_key text;
  v_value jsonb;
  v_reason text;
begin
  if pg_catalog.jsonb_typeof(p_details) is distinct from 'object' then
    return 'must be a JSON object';
  end if;
  for v_key, v_value in select d.key, d.value from pg_catalog.jsonb_each(p_details) as d loop
    if v_key <> all (jobforge_private.audit_detail_keys()) then
      return pg_catalog.format('%s is not an audit detail', v_key);
    end if;
    if pg_catalog.jsonb_typeof(v_value) = 'object' then
      if p_depth > 0 then
        return pg_catalog.format('%s must not be an object at this depth', v_key);
      end if;
      v_reason := jobforge_private.audit_details_error(v_value, p_depth + 1);
      if v_reason is not null then
        return v_key || '.' || v_reason;
      end if;
    elsif pg_catalog.jsonb_typeof(v_value) = 'array'
      and pg_catalog.jsonb_path_exists(
        v_value, 'strict $[*] ? (@.type() == "object" || @.type() == "array")'
      ) then
      return pg_catalog.format('%s must be a list of scalars', v_key);
    end if;
  end loop;
  return null;
end
$$;

-- The digest recorded in place of a JSON value: sha256 of its jsonb text form (hex), which
-- is canonical (jsonb orders keys and drops whitespace and duplicates), so the same
-- payload always gives the same digest, and a stored event or job can be matched to its
-- audit row while it exists: encode(sha256(convert_to(payload::text, 'UTF8')), 'hex').
-- It proves identity, it does not hide a guessable value: the values themselves are what
-- the trail must not keep.
create function jobforge_private.audit_digest(p_value jsonb)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_value is null then
    return null;
  end if;
  return pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(p_value::text, 'UTF8')), 'hex');
end
$$;

-- The top-level key names of a JSON object, sorted, as a JSON list (the shape of a
-- payload or of job inputs without its values); [] for anything else.
create function jobforge_private.audit_key_names(p_value jsonb)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  if pg_catalog.jsonb_typeof(p_value) is distinct from 'object' then
    return '[]'::jsonb;
  end if;
  return (
    select coalesce(pg_catalog.jsonb_agg(k.key order by k.key), '[]'::jsonb)
    from pg_catalog.jsonb_object_keys(p_value) as k (key)
  );
end
$$;

create table public.jobforge_audit_logs (
  id uuid primary key default gen_random_uuid(),
  -- Null for global writes by an administrator (templates, policy keys).
  tenant_id uuid,
  project_id uuid,
  action text not null check (action in (
    'retention_purge',
    'event_ingest', 'job_request', 'job_cancel', 'job_retry', 'policy_check', 'trigger_fire',
    'trigger_create', 'trigger_update', 'trigger_delete', 'template_update',
    'manifest_write', 'policy_key_add', 'policy_key_retire',
    'connector_config_set', 'connector_config_delete', 'limit_set', 'limit_delete'
  )),
  actor_id text,
  trace_id text,
  target_type text,
  target_id text,
  outcome text not null check (outcome in ('success', 'denied', 'skipped', 'dry_run')),
  reason text,
  -- Identifiers, counts, flags, digests and names only: see audit_details_error.
  details jsonb not null default '{}'
    constraint jobforge_audit_logs_details_no_content
    check (jobforge_private.audit_details_error(details) is null),
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

-- Write one audit row; returns its id. p_details holds no content (the CHECK on details
-- refuses it): a caller with a payload or inputs records audit_digest and
-- audit_key_names of it.
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

-- The checks every retention purge makes of its arguments (jobforge_purge_finished_jobs,
-- jobforge_purge_manifests), and the cutoff they answer. Positive and at most 36,500 days
-- (the SDK's bound for retention_days): a zero interval would purge what finished a
-- moment ago, and a huge one overflows now() - interval into an error that names no
-- field. At most 10,000 rows per call: each call is one short transaction whose row
-- locks end with it, and a caller loops while the answer says more.
create function jobforge_private.retention_cutoff(p_older_than interval, p_batch_size integer)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
begin
  if p_older_than is null then
    perform jobforge_private.invalid('older_than', 'is required');
  end if;
  if p_older_than <= interval '0' then
    perform jobforge_private.invalid('older_than', 'must be positive');
  end if;
  if p_older_than > interval '36500 days' then
    perform jobforge_private.invalid('older_than', 'must be at most 36500 days');
  end if;
  if p_batch_size is null or p_batch_size < 1 or p_batch_size > 10000 then
    perform jobforge_private.invalid('batch_size', 'must be between 1 and 10000');
  end if;
  return now() - p_older_than;
end
$$;

-- Every purge writes one global audit row (tenant null: service_role reads it) saying
-- which table it cleared, how many rows and up to when, so the trail shows what retention
-- removed even once the rows are gone.
create function jobforge_private.audit_purge(p_table text, p_count integer, p_cutoff timestamptz, p_details jsonb default '{}')
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform jobforge_private.audit(
    null, null, 'retention_purge', null, null, 'table', p_table, 'success', null,
    pg_catalog.jsonb_build_object('count', p_count, 'cutoff', p_cutoff) || coalesce(p_details, '{}'::jsonb)
  );
end
$$;

-- The only way audit rows are ever removed: the append-only trigger lets a DELETE pass
-- while jobforge.audit_purge is on, which this function does around its DELETE only.
-- At most p_batch_size rows (1-10,000) per call, the oldest first, so each call is one
-- short transaction; one more row is read to say whether more remain, and the caller
-- loops while more is true. Each call writes one retention_purge row naming the count,
-- the cutoff and the batch: the trail keeps what retention removed from it.
create function public.jobforge_purge_audit_logs(
  p_retention_days integer default 365,
  p_batch_size integer default 10000
)
returns json
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cutoff timestamptz;
  v_ids uuid[];
  v_deleted integer;
  v_more boolean;
begin
  perform jobforge_private.assert_service_role();
  if p_retention_days is null or p_retention_days < 1 then
    perform jobforge_private.invalid('retention_days', 'must be at least 1');
  end if;
  -- The SDK's bound too; a larger one would overflow now() - interval into an error that
  -- names no field.
  if p_retention_days > 36500 then
    perform jobforge_private.invalid('retention_days', 'must be at most 36500');
  end if;
  v_cutoff := jobforge_private.retention_cutoff(
    pg_catalog.make_interval(days => p_retention_days), p_batch_size
  );

  -- The BRIN index on created_at finds the old end of the table; no row lock is taken
  -- (nothing else writes an audit row once written), so two purges at once only delete
  -- what the other has not.
  v_ids := array(
    select a.id
    from public.jobforge_audit_logs a
    where a.created_at < v_cutoff
    limit p_batch_size + 1
  );

  -- Open the append-only trigger for this DELETE only. set_config rather than a SET
  -- clause on the function: a SET clause naming a custom setting needs a superuser on
  -- PostgreSQL 15+, and a hosted Supabase project's owner is not one.
  perform pg_catalog.set_config('jobforge.audit_purge', 'on', true);
  delete from public.jobforge_audit_logs a where a.id = any (v_ids[1:p_batch_size]);
  get diagnostics v_deleted = row_count;
  perform pg_catalog.set_config('jobforge.audit_purge', 'off', true);
  v_more := pg_catalog.cardinality(v_ids) > p_batch_size;

  -- Written after the DELETE (and newer than any cutoff), so the purge's own row stays.
  perform jobforge_private.audit_purge(
    'jobforge_audit_logs', v_deleted, v_cutoff,
    pg_catalog.jsonb_build_object('batch_size', p_batch_size, 'more', v_more)
  );
  return pg_catalog.json_build_object('deleted', v_deleted, 'more', v_more);
end
$$;

comment on function public.jobforge_purge_audit_logs is
  'Delete up to p_batch_size (1-10000) audit rows older than p_retention_days (1-36500); answers {deleted, more} (call again while more). The only way audit rows are removed; each call writes a retention_purge audit row naming the count and cutoff. service_role only.';
