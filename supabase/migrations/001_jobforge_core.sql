-- JobForge core queue: tables, row-level security, and the RPCs that are the only way to
-- write them.
--
-- Contract (see docs/DESIGN.md section 3):
--   * every RPC is SECURITY DEFINER with an empty search_path, names every object with
--     its schema, and checks the right of the caller to the tenant before anything else;
--   * EXECUTE is revoked from PUBLIC and anon and granted explicitly. Supabase grants
--     EXECUTE on new functions in public to anon, authenticated and service_role by
--     default privileges, so worker RPCs revoke it from authenticated as well;
--   * errors: PT400 invalid input ("field: reason"), PT403 not allowed, PT404 no such
--     job for this tenant (never revealing jobs of other tenants), PT409 state conflict.
--
-- Callers:
--   service_role (and any superuser or BYPASSRLS role) acts for any tenant;
--   authenticated acts for the tenants named by app_metadata.tenant_id / tenant_ids of
--   its JWT, and reads their rows through RLS;
--   anon can do nothing.

-- ---------------------------------------------------------------------------------------
-- Private schema: helpers that are not part of the API
-- ---------------------------------------------------------------------------------------

create schema jobforge_private;

comment on schema jobforge_private is
  'JobForge internals: helpers used by the RPCs and RLS policies. Not an API.';

revoke all on schema jobforge_private from public;
-- RLS policies call jobforge_private.jwt_tenant_ids() as the querying role, which needs
-- USAGE on the schema. Every function in it is revoked from everyone else anyway.
grant usage on schema jobforge_private to authenticated, service_role;

-- Helpers are SECURITY INVOKER and, except jwt_tenant_ids(), executable by no API role:
-- they run only inside the RPCs, under the empty search_path of the RPC, and name every
-- object with its schema. So they carry no SET search_path of their own, which would cost
-- every RPC call a save and restore of the setting per helper (about a tenth of a
-- single enqueue). jwt_tenant_ids() keeps its SET: RLS runs it as the querying role.

-- Raise an input error. The message always starts with the field name and a colon:
-- the SDK reads the field from it.
create function jobforge_private.invalid(p_field text, p_reason text)
returns void
language plpgsql
as $$
begin
  raise exception using errcode = 'PT400', message = p_field || ': ' || p_reason;
end
$$;

revoke all on function jobforge_private.invalid(text, text)
  from public, anon, authenticated, service_role;

-- Is the effective caller trusted to act for any tenant?
--
-- The effective caller is the role named by the "role" setting, which is what PostgREST
-- (and SET ROLE) changes, and which SECURITY DEFINER does not change: inside a definer
-- function current_user is the owner, but this setting still names the caller. Without a
-- SET ROLE the caller is the session user. Trusted means superuser or BYPASSRLS
-- (service_role has BYPASSRLS, as has the postgres role of Supabase): such a role can
-- read every row anyway.
create function jobforge_private.caller_is_trusted()
returns boolean
language plpgsql
stable
as $$
declare
  v_role text := pg_catalog.current_setting('role', true);
begin
  -- Every RPC asks this first, so the common callers are answered without a catalog
  -- lookup: the roles PostgREST switches to, and a superuser session (is_superuser, like
  -- "role", describes the session's role, not the definer's).
  if v_role = 'service_role' then
    return true;
  elsif v_role in ('authenticated', 'anon') then
    return false;
  elsif coalesce(v_role, 'none') = 'none' and pg_catalog.current_setting('is_superuser') = 'on' then
    return true;
  end if;
  v_role := coalesce(nullif(v_role, 'none'), session_user);
  return coalesce(
    (select r.rolsuper or r.rolbypassrls from pg_catalog.pg_roles r where r.rolname = v_role),
    false
  );
end
$$;

revoke all on function jobforge_private.caller_is_trusted()
  from public, anon, authenticated, service_role;

-- The tenants named by the JWT of the current request: app_metadata.tenant_id plus the
-- elements of app_metadata.tenant_ids. Values that are not UUIDs are ignored; no claims
-- at all give an empty array, never "all tenants".
--
-- Called by the RLS policies as the querying role, hence granted to authenticated. It is
-- SECURITY INVOKER: it reads nothing but the claims of the caller.
create function jobforge_private.jwt_tenant_ids()
returns uuid[]
language plpgsql
stable
set search_path = ''
as $$
declare
  v_meta jsonb := auth.jwt() -> 'app_metadata';
  v_ids uuid[];
begin
  if v_meta is null or pg_catalog.jsonb_typeof(v_meta) <> 'object' then
    return '{}';
  end if;

  select coalesce(pg_catalog.array_agg(distinct c.value::uuid), '{}')
  into v_ids
  from (
    select v_meta ->> 'tenant_id'
    union all
    select pg_catalog.jsonb_array_elements_text(
      case
        when pg_catalog.jsonb_typeof(v_meta -> 'tenant_ids') = 'array' then v_meta -> 'tenant_ids'
        else '[]'::jsonb
      end
    )
  ) as c (value)
  -- Only what the uuid type is sure to accept (32 hex digits, hyphens optional), so a
  -- malformed claim is skipped instead of failing every query of the request.
  where c.value ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$';

  return v_ids;
end
$$;

revoke all on function jobforge_private.jwt_tenant_ids()
  from public, anon, authenticated, service_role;
grant execute on function jobforge_private.jwt_tenant_ids() to authenticated, service_role;

-- Refuse unless the caller may act for the tenant (PT403), or no tenant is given (PT400).
create function jobforge_private.assert_tenant(p_tenant_id uuid)
returns void
language plpgsql
stable
as $$
begin
  if p_tenant_id is null then
    perform jobforge_private.invalid('tenant_id', 'is required');
  end if;
  if jobforge_private.caller_is_trusted()
    or p_tenant_id = any (jobforge_private.jwt_tenant_ids()) then
    return;
  end if;
  raise exception using
    errcode = 'PT403',
    message = pg_catalog.format('tenant_id: caller may not act for tenant %s', p_tenant_id);
end
$$;

revoke all on function jobforge_private.assert_tenant(uuid)
  from public, anon, authenticated, service_role;

-- Refuse unless the caller is trusted. Worker RPCs are granted to service_role only; this
-- is the second lock on the same door.
create function jobforge_private.assert_service_role()
returns void
language plpgsql
stable
as $$
begin
  if not jobforge_private.caller_is_trusted() then
    raise exception using errcode = 'PT403', message = 'service_role required';
  end if;
end
$$;

revoke all on function jobforge_private.assert_service_role()
  from public, anon, authenticated, service_role;

-- Input rules shared by the single and the batch enqueue, so both give the same message.
-- Each returns the reason a value is refused, or null when it is fine.
--
-- These use a SQL-standard body (RETURN expr): it is parsed when the function is created,
-- so the search_path of a caller cannot change what it refers to, and the planner inlines
-- it, so the batch enqueue checks 1,000 jobs without 1,000 function calls. (A SET clause
-- would prevent the inlining, which is why these have none.)

create function jobforge_private.type_error(p_type text)
returns text
language sql
immutable
return case
  when p_type is null then 'is required'
  when p_type = '' then 'must not be empty'
  when pg_catalog.char_length(p_type) > 255 then 'must be at most 255 characters'
end;

revoke all on function jobforge_private.type_error(text)
  from public, anon, authenticated, service_role;

-- autopilot.* is the namespace of template jobs. They may only enter the queue through
-- jobforge_request_job (002), which checks that the template is enabled, validates the
-- inputs, verifies the policy token of action jobs and writes the audit row; a direct
-- enqueue of such a type would skip all of that, so the public enqueue RPCs refuse it.
create function jobforge_private.reserved_type_error(p_type text)
returns text
language sql
immutable
return case
  when p_type like 'autopilot.%' then
    'autopilot.* jobs are requested from their template (jobforge_request_job)'
end;

revoke all on function jobforge_private.reserved_type_error(text)
  from public, anon, authenticated, service_role;

-- The size of a payload is the size of its text form, as jsonb prints it.
create function jobforge_private.payload_error(p_payload jsonb)
returns text
language sql
immutable
return case
  when pg_catalog.octet_length(p_payload::text) > 1048576 then 'must be at most 1 MiB'
end;

revoke all on function jobforge_private.payload_error(jsonb)
  from public, anon, authenticated, service_role;

-- An empty key is refused rather than treated as a key: it is almost always an unset
-- value, and it would silently merge every job of the type into the first one.
create function jobforge_private.idempotency_key_error(p_key text)
returns text
language sql
immutable
return case
  when p_key = '' then 'must not be empty'
  when pg_catalog.char_length(p_key) > 255 then 'must be at most 255 characters'
end;

revoke all on function jobforge_private.idempotency_key_error(text)
  from public, anon, authenticated, service_role;

create function jobforge_private.max_attempts_error(p_max_attempts numeric)
returns text
language sql
immutable
return case
  when p_max_attempts <> pg_catalog.trunc(p_max_attempts) then 'must be an integer'
  when p_max_attempts < 1 or p_max_attempts > 100 then 'must be between 1 and 100'
end;

revoke all on function jobforge_private.max_attempts_error(numeric)
  from public, anon, authenticated, service_role;

create function jobforge_private.worker_id_error(p_worker_id text)
returns text
language sql
immutable
return case
  when p_worker_id is null then 'is required'
  when p_worker_id = '' then 'must not be empty'
  when pg_catalog.char_length(p_worker_id) > 255 then 'must be at most 255 characters'
end;

revoke all on function jobforge_private.worker_id_error(text)
  from public, anon, authenticated, service_role;

-- What is wrong with one element of a batch, as {field path relative to the element,
-- reason}, or null when nothing is. The run_at text is only checked to be a string here:
-- whether it parses as a timestamp is found out by casting it (see jobforge_enqueue_jobs).
create function jobforge_private.job_spec_error(p_job jsonb)
returns text[]
language sql
immutable
return case
  when pg_catalog.jsonb_typeof(p_job) is distinct from 'object' then
    array['', 'must be a JSON object']
  when p_job - '{type,payload,idempotency_key,run_at,max_attempts}'::text[] <> '{}'::jsonb then
    array[
      '.' || (
        pg_catalog.jsonb_path_query_first(
          p_job - '{type,payload,idempotency_key,run_at,max_attempts}'::text[],
          '$.keyvalue().key'
        ) #>> '{}'
      ),
      'is not a known field'
    ]
  when coalesce(pg_catalog.jsonb_typeof(p_job -> 'type'), 'null') = 'null' then
    array['.type', 'is required']
  when pg_catalog.jsonb_typeof(p_job -> 'type') <> 'string' then
    array['.type', 'must be a string']
  when jobforge_private.type_error(p_job ->> 'type') is not null then
    array['.type', jobforge_private.type_error(p_job ->> 'type')]
  when jobforge_private.reserved_type_error(p_job ->> 'type') is not null then
    array['.type', jobforge_private.reserved_type_error(p_job ->> 'type')]
  when jobforge_private.payload_error(p_job -> 'payload') is not null then
    array['.payload', jobforge_private.payload_error(p_job -> 'payload')]
  when pg_catalog.jsonb_typeof(p_job -> 'idempotency_key') not in ('string', 'null') then
    array['.idempotency_key', 'must be a string']
  when jobforge_private.idempotency_key_error(p_job ->> 'idempotency_key') is not null then
    array['.idempotency_key', jobforge_private.idempotency_key_error(p_job ->> 'idempotency_key')]
  when pg_catalog.jsonb_typeof(p_job -> 'run_at') not in ('string', 'null') then
    array['.run_at', 'must be an ISO 8601 timestamp']
  when pg_catalog.jsonb_typeof(p_job -> 'max_attempts') not in ('number', 'null') then
    array['.max_attempts', 'must be an integer']
  when pg_catalog.jsonb_typeof(p_job -> 'max_attempts') = 'number'
    and jobforge_private.max_attempts_error((p_job -> 'max_attempts')::numeric) is not null then
    array['.max_attempts', jobforge_private.max_attempts_error((p_job -> 'max_attempts')::numeric)]
end;

revoke all on function jobforge_private.job_spec_error(jsonb)
  from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------

create table public.jobforge_jobs (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  type text not null,
  payload jsonb not null default '{}',
  -- A failed attempt either goes back to queued (attempts left) or to dead; "failed" is
  -- kept in the check for compatibility, no RPC leaves a job in it.
  status text not null default 'queued'
    check (status in ('queued', 'running', 'succeeded', 'failed', 'dead', 'canceled')),
  attempts integer not null default 0,
  max_attempts integer not null default 5 check (max_attempts between 1 and 100),
  run_at timestamptz not null default now(),
  locked_by text,
  locked_at timestamptz,
  heartbeat_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  idempotency_key text,
  error jsonb,
  -- The jobforge_job_results row of a succeeded job. No foreign key: results already
  -- reference jobs (on delete cascade), and a cycle would only cost every completion a
  -- lookup.
  result_id uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.jobforge_jobs is
  'JobForge jobs, one row per job. Written only through the jobforge_* RPCs.';

-- Idempotent enqueue: one job per (tenant, type, key). The enqueue RPCs name this index
-- in ON CONFLICT, so its columns and predicate are part of their contract.
create unique index jobforge_jobs_idempotency_key
  on public.jobforge_jobs (tenant_id, type, idempotency_key)
  where idempotency_key is not null;

-- Claiming, any type: the due queued jobs in (run_at, id) order, read from the front.
-- Only queued rows are in it, so it stays as small as the backlog.
create index jobforge_jobs_claim
  on public.jobforge_jobs (run_at, id)
  where status = 'queued';

-- Claiming for one type: the same order within the type, so a worker of a rare type does
-- not walk past a backlog of other types.
create index jobforge_jobs_claim_by_type
  on public.jobforge_jobs (type, run_at, id)
  where status = 'queued';

-- Reaping: running jobs by last sign of life.
create index jobforge_jobs_reap
  on public.jobforge_jobs (heartbeat_at)
  where status = 'running';

-- Listing the jobs of a tenant, newest first; id breaks ties in created_at (a batch shares
-- one), so the index gives the exact order of jobforge_list_jobs.
create index jobforge_jobs_tenant_created
  on public.jobforge_jobs (tenant_id, created_at desc, id desc);

create table public.jobforge_job_results (
  id uuid primary key default gen_random_uuid(),
  job_id uuid not null references public.jobforge_jobs (id) on delete cascade,
  tenant_id uuid not null,
  result jsonb,
  artifact_ref text,
  created_at timestamptz not null default now(),
  constraint jobforge_job_results_job_id_key unique (job_id)
);

comment on table public.jobforge_job_results is
  'JobForge results: one row per succeeded job, written by jobforge_complete_job.';

create table public.jobforge_job_attempts (
  id uuid primary key default gen_random_uuid(),
  job_id uuid not null references public.jobforge_jobs (id) on delete cascade,
  tenant_id uuid not null,
  attempt integer not null,
  worker_id text,
  -- lost: the worker stopped heartbeating and the reaper took the job back.
  status text not null check (status in ('succeeded', 'failed', 'lost')),
  error jsonb,
  started_at timestamptz,
  finished_at timestamptz not null default now()
);

comment on table public.jobforge_job_attempts is
  'JobForge attempt history: one row per finished attempt (succeeded, failed or lost).';

create index jobforge_job_attempts_job on public.jobforge_job_attempts (job_id, attempt);

create table public.jobforge_connector_configs (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  connector_type text not null,
  -- Readable by the tenant users through RLS: no secrets here.
  config jsonb not null default '{}',
  enabled boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint jobforge_connector_configs_tenant_type_key unique (tenant_id, connector_type)
);

comment on table public.jobforge_connector_configs is
  'JobForge connector settings per tenant and connector type.';

-- Row-level security: a user reads the rows of the tenants of its JWT, and nothing else;
-- no write policy, writes go through the RPCs. The (select ...) makes the helper run once
-- per query, not once per row; the ::uuid[] cast makes ANY take it as one array rather
-- than as a subquery of rows. service_role has BYPASSRLS.
alter table public.jobforge_jobs enable row level security;
alter table public.jobforge_job_results enable row level security;
alter table public.jobforge_job_attempts enable row level security;
alter table public.jobforge_connector_configs enable row level security;

create policy jobforge_jobs_tenant_select on public.jobforge_jobs
  for select to authenticated
  using (tenant_id = any ((select jobforge_private.jwt_tenant_ids())::uuid[]));

create policy jobforge_job_results_tenant_select on public.jobforge_job_results
  for select to authenticated
  using (tenant_id = any ((select jobforge_private.jwt_tenant_ids())::uuid[]));

create policy jobforge_job_attempts_tenant_select on public.jobforge_job_attempts
  for select to authenticated
  using (tenant_id = any ((select jobforge_private.jwt_tenant_ids())::uuid[]));

create policy jobforge_connector_configs_tenant_select on public.jobforge_connector_configs
  for select to authenticated
  using (tenant_id = any ((select jobforge_private.jwt_tenant_ids())::uuid[]));

-- Supabase default privileges grant everything on new tables to the API roles: take it
-- back, then give read access only.
revoke all on table
  public.jobforge_jobs,
  public.jobforge_job_results,
  public.jobforge_job_attempts,
  public.jobforge_connector_configs
  from public, anon, authenticated, service_role;

grant select on table
  public.jobforge_jobs,
  public.jobforge_job_results,
  public.jobforge_job_attempts,
  public.jobforge_connector_configs
  to authenticated, service_role;

-- Why a job cannot be heartbeated or completed by this worker: PT404 when the job does
-- not exist, else PT409 naming its current state. (A helper like those above; it reads
-- jobforge_jobs, so it comes after the tables.)
create function jobforge_private.raise_not_held(p_job_id uuid, p_worker_id text)
returns void
language plpgsql
stable
as $$
declare
  v_status text;
begin
  select j.status into v_status
  from public.jobforge_jobs j
  where j.id = p_job_id;

  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('job %s not found', p_job_id);
  end if;
  raise exception using
    errcode = 'PT409',
    message = pg_catalog.format(
      'job %s is not held by worker %s; it is %s',
      p_job_id,
      p_worker_id,
      case when v_status = 'running' then 'running under another worker' else v_status end
    );
end
$$;

revoke all on function jobforge_private.raise_not_held(uuid, text)
  from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Tenant-facing RPCs
-- ---------------------------------------------------------------------------------------

-- The insert behind jobforge_enqueue_job, without the caller checks: for RPCs of this
-- schema that have already checked the caller (jobforge_request_job and the triggers
-- enqueue template jobs through it). Runs with the privileges of its definer caller.
create function jobforge_private.enqueue_job(
  p_tenant_id uuid,
  p_type text,
  p_payload jsonb default '{}',
  p_idempotency_key text default null,
  p_run_at timestamptz default null,
  p_max_attempts integer default 5
)
returns jsonb
language plpgsql
as $$
declare
  v_job public.jobforge_jobs;
  v_reason text;
begin
  v_reason := jobforge_private.type_error(p_type);
  if v_reason is not null then
    perform jobforge_private.invalid('type', v_reason);
  end if;
  -- SQL NULL and JSON null both mean "no payload".
  p_payload := coalesce(nullif(p_payload, 'null'::jsonb), '{}'::jsonb);
  v_reason := jobforge_private.payload_error(p_payload);
  if v_reason is not null then
    perform jobforge_private.invalid('payload', v_reason);
  end if;
  v_reason := jobforge_private.idempotency_key_error(p_idempotency_key);
  if v_reason is not null then
    perform jobforge_private.invalid('idempotency_key', v_reason);
  end if;
  p_max_attempts := coalesce(p_max_attempts, 5);
  v_reason := jobforge_private.max_attempts_error(p_max_attempts);
  if v_reason is not null then
    perform jobforge_private.invalid('max_attempts', v_reason);
  end if;

  -- Without a key nothing can conflict: a plain insert spares the speculative insertion
  -- of ON CONFLICT (a tenth of the cost of this function).
  if p_idempotency_key is null then
    insert into public.jobforge_jobs as j (tenant_id, type, payload, run_at, max_attempts)
    values (p_tenant_id, p_type, p_payload, coalesce(p_run_at, now()), p_max_attempts)
    returning j.* into v_job;

    perform pg_catalog.pg_notify('jobforge_jobs', p_type);
    return pg_catalog.to_jsonb(v_job);
  end if;

  loop
    insert into public.jobforge_jobs as j
      (tenant_id, type, payload, idempotency_key, run_at, max_attempts)
    values
      (p_tenant_id, p_type, p_payload, p_idempotency_key, coalesce(p_run_at, now()), p_max_attempts)
    on conflict (tenant_id, type, idempotency_key) where idempotency_key is not null
      do nothing
    returning j.* into v_job;

    if found then
      perform pg_catalog.pg_notify('jobforge_jobs', p_type);
      return pg_catalog.to_jsonb(v_job);
    end if;

    -- The key is taken: return that job as it is. ON CONFLICT waited for the transaction
    -- that inserted it, and this statement has a new snapshot, so it sees the row. (Under
    -- REPEATABLE READ the insert fails with a serialization error instead: retry.)
    select j.* into v_job
    from public.jobforge_jobs j
    where j.tenant_id = p_tenant_id
      and j.type = p_type
      and j.idempotency_key = p_idempotency_key;

    if found then
      return pg_catalog.to_jsonb(v_job);
    end if;
    -- The row was deleted between the two statements: insert again.
  end loop;
end
$$;

revoke all on function
  jobforge_private.enqueue_job(uuid, text, jsonb, text, timestamptz, integer)
  from public, anon, authenticated, service_role;

create function public.jobforge_enqueue_job(
  p_tenant_id uuid,
  p_type text,
  p_payload jsonb default '{}',
  p_idempotency_key text default null,
  p_run_at timestamptz default null,
  p_max_attempts integer default 5
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_reason text;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  v_reason := jobforge_private.reserved_type_error(p_type);
  if v_reason is not null then
    perform jobforge_private.invalid('type', v_reason);
  end if;
  return jobforge_private.enqueue_job(
    p_tenant_id, p_type, p_payload, p_idempotency_key, p_run_at, p_max_attempts
  );
end
$$;

comment on function public.jobforge_enqueue_job(uuid, text, jsonb, text, timestamptz, integer) is
  'Queue one job (idempotent per tenant, type and idempotency_key). authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_enqueue_job(uuid, text, jsonb, text, timestamptz, integer)
  from public, anon;
grant execute on function public.jobforge_enqueue_job(uuid, text, jsonb, text, timestamptz, integer)
  to authenticated, service_role;

create function public.jobforge_enqueue_jobs(p_tenant_id uuid, p_jobs jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
  v_error text[];
  v_index bigint;
  v_rows jsonb;
  v_inserted integer;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);

  if p_jobs is null
    or pg_catalog.jsonb_typeof(p_jobs) <> 'array'
    or pg_catalog.jsonb_array_length(p_jobs) = 0 then
    perform jobforge_private.invalid('jobs', 'must be a non-empty JSON array');
  end if;
  v_count := pg_catalog.jsonb_array_length(p_jobs);
  if v_count > 1000 then
    perform jobforge_private.invalid('jobs', 'at most 1000 jobs per batch');
  end if;

  -- The first element that breaks a rule, in input order (jobs[0] is the first).
  select e.ord - 1, jobforge_private.job_spec_error(e.elem)
  into v_index, v_error
  from pg_catalog.jsonb_array_elements(p_jobs) with ordinality as e (elem, ord)
  where jobforge_private.job_spec_error(e.elem) is not null
  order by e.ord
  limit 1;

  if v_error is not null then
    perform jobforge_private.invalid(pg_catalog.format('jobs[%s]%s', v_index, v_error[1]), v_error[2]);
  end if;

  begin
    -- One statement for the whole batch. Each element gets its id up front, so the
    -- inserted rows can be matched to their position; elements that hit an existing key
    -- (or an earlier element of the same batch) insert nothing and are filled in below.
    with input as materialized (
      select
        e.ord,
        gen_random_uuid() as id,
        e.elem ->> 'type' as type,
        coalesce(nullif(e.elem -> 'payload', 'null'::jsonb), '{}'::jsonb) as payload,
        e.elem ->> 'idempotency_key' as idempotency_key,
        coalesce((e.elem ->> 'run_at')::timestamptz, now()) as run_at,
        case
          when pg_catalog.jsonb_typeof(e.elem -> 'max_attempts') = 'number'
            then (e.elem -> 'max_attempts')::numeric::integer
          else 5
        end as max_attempts
      from pg_catalog.jsonb_array_elements(p_jobs) with ordinality as e (elem, ord)
    ),
    inserted as (
      insert into public.jobforge_jobs as j
        (id, tenant_id, type, payload, idempotency_key, run_at, max_attempts)
      select i.id, p_tenant_id, i.type, i.payload, i.idempotency_key, i.run_at, i.max_attempts
      from input i
      -- Keys in one global order, so two batches that share keys wait for each other
      -- instead of deadlocking; within a key, the first element wins.
      order by i.type, i.idempotency_key, i.ord
      on conflict (tenant_id, type, idempotency_key) where idempotency_key is not null
        do nothing
      returning j.*
    )
    -- to_jsonb(array_agg(row)) builds the array about a third faster than
    -- jsonb_agg(to_jsonb(row)). Elements with nothing inserted are null.
    select pg_catalog.to_jsonb(pg_catalog.array_agg(x order by i.ord)), pg_catalog.count(x.id)
    into v_rows, v_inserted
    from input i
    left join inserted x on x.id = i.id;
  exception
    when data_exception then
      -- Every field but run_at was checked above, so a run_at that does not parse as a
      -- timestamp is what failed: name the first one.
      for v_index in 0 .. v_count - 1 loop
        begin
          perform (p_jobs -> v_index::integer ->> 'run_at')::timestamptz;
        exception
          when data_exception then
            perform jobforge_private.invalid(
              pg_catalog.format('jobs[%s].run_at', v_index), 'must be an ISO 8601 timestamp'
            );
        end;
      end loop;
      raise;
  end;

  if v_inserted < v_count then
    -- Duplicates: return the job that holds the key, as it is now. A new statement has a
    -- new snapshot, so this also sees keys that a concurrent batch committed meanwhile.
    select pg_catalog.jsonb_agg(
      coalesce(
        nullif(r.job, 'null'::jsonb),
        (
          select pg_catalog.to_jsonb(j)
          from public.jobforge_jobs j
          where j.tenant_id = p_tenant_id
            and j.type = p_jobs -> (r.ord::integer - 1) ->> 'type'
            and j.idempotency_key = p_jobs -> (r.ord::integer - 1) ->> 'idempotency_key'
        )
      )
      order by r.ord
    )
    into v_rows
    from pg_catalog.jsonb_array_elements(v_rows) with ordinality as r (job, ord);
  end if;

  if v_inserted > 0 then
    perform pg_catalog.pg_notify('jobforge_jobs', '');
  end if;

  return v_rows;
end
$$;

comment on function public.jobforge_enqueue_jobs(uuid, jsonb) is
  'Queue up to 1,000 jobs in one statement; returns the rows in input order. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_enqueue_jobs(uuid, jsonb) from public, anon;
grant execute on function public.jobforge_enqueue_jobs(uuid, jsonb) to authenticated, service_role;

create function public.jobforge_cancel_job(p_job_id uuid, p_tenant_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_job public.jobforge_jobs;
  v_status text;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_job_id is null then
    perform jobforge_private.invalid('job_id', 'is required');
  end if;

  -- A running job is canceled too: its worker loses the lock, and its complete or
  -- heartbeat then fails with PT409.
  update public.jobforge_jobs j
  set
    status = 'canceled',
    finished_at = now(),
    locked_by = null,
    locked_at = null,
    heartbeat_at = null,
    updated_at = now()
  where j.id = p_job_id
    and j.tenant_id = p_tenant_id
    and j.status in ('queued', 'running')
  returning j.* into v_job;

  if found then
    return pg_catalog.to_jsonb(v_job);
  end if;

  select j.status into v_status
  from public.jobforge_jobs j
  where j.id = p_job_id and j.tenant_id = p_tenant_id;

  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('job %s not found', p_job_id);
  end if;
  raise exception using
    errcode = 'PT409',
    message = pg_catalog.format(
      'job %s is %s; only queued or running jobs can be canceled', p_job_id, v_status
    );
end
$$;

comment on function public.jobforge_cancel_job(uuid, uuid) is
  'Cancel a queued or running job. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_cancel_job(uuid, uuid) from public, anon;
grant execute on function public.jobforge_cancel_job(uuid, uuid) to authenticated, service_role;

create function public.jobforge_reschedule_job(p_job_id uuid, p_tenant_id uuid, p_run_at timestamptz)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_job public.jobforge_jobs;
  v_status text;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_job_id is null then
    perform jobforge_private.invalid('job_id', 'is required');
  end if;
  if p_run_at is null then
    perform jobforge_private.invalid('run_at', 'is required');
  end if;

  update public.jobforge_jobs j
  set run_at = p_run_at, updated_at = now()
  where j.id = p_job_id
    and j.tenant_id = p_tenant_id
    and j.status = 'queued'
  returning j.* into v_job;

  if found then
    return pg_catalog.to_jsonb(v_job);
  end if;

  select j.status into v_status
  from public.jobforge_jobs j
  where j.id = p_job_id and j.tenant_id = p_tenant_id;

  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('job %s not found', p_job_id);
  end if;
  raise exception using
    errcode = 'PT409',
    message = pg_catalog.format(
      'job %s is %s; only queued jobs can be rescheduled', p_job_id, v_status
    );
end
$$;

comment on function public.jobforge_reschedule_job(uuid, uuid, timestamptz) is
  'Move a queued job to another run_at. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_reschedule_job(uuid, uuid, timestamptz) from public, anon;
grant execute on function public.jobforge_reschedule_job(uuid, uuid, timestamptz)
  to authenticated, service_role;

create function public.jobforge_list_jobs(p_tenant_id uuid, p_filters jsonb default '{}')
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_key text;
  v_status text;
  v_type text;
  v_limit integer := 100;
  v_offset integer := 0;
  v_value jsonb;
  v_reason text;
  v_rows jsonb;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);

  p_filters := coalesce(nullif(p_filters, 'null'::jsonb), '{}'::jsonb);
  if pg_catalog.jsonb_typeof(p_filters) <> 'object' then
    perform jobforge_private.invalid('filters', 'must be a JSON object');
  end if;

  select k.key into v_key
  from pg_catalog.jsonb_object_keys(p_filters) as k (key)
  where k.key not in ('status', 'type', 'limit', 'offset')
  order by k.key
  limit 1;
  if v_key is not null then
    perform jobforge_private.invalid(v_key, 'is not a known filter (status, type, limit, offset)');
  end if;

  -- A JSON null filter is the same as no filter.
  v_value := nullif(p_filters -> 'status', 'null'::jsonb);
  if v_value is not null then
    if pg_catalog.jsonb_typeof(v_value) <> 'string'
      or v_value #>> '{}' not in ('queued', 'running', 'succeeded', 'failed', 'dead', 'canceled') then
      perform jobforge_private.invalid(
        'status', 'must be one of queued, running, succeeded, failed, dead, canceled'
      );
    end if;
    v_status := v_value #>> '{}';
  end if;

  v_value := nullif(p_filters -> 'type', 'null'::jsonb);
  if v_value is not null then
    if pg_catalog.jsonb_typeof(v_value) <> 'string' then
      perform jobforge_private.invalid('type', 'must be a string');
    end if;
    v_type := v_value #>> '{}';
    v_reason := jobforge_private.type_error(v_type);
    if v_reason is not null then
      perform jobforge_private.invalid('type', v_reason);
    end if;
  end if;

  v_value := nullif(p_filters -> 'limit', 'null'::jsonb);
  if v_value is not null then
    if pg_catalog.jsonb_typeof(v_value) <> 'number'
      or v_value::numeric <> pg_catalog.trunc(v_value::numeric) then
      perform jobforge_private.invalid('limit', 'must be an integer');
    end if;
    if v_value::numeric < 1 or v_value::numeric > 1000 then
      perform jobforge_private.invalid('limit', 'must be between 1 and 1000');
    end if;
    v_limit := v_value::numeric::integer;
  end if;

  v_value := nullif(p_filters -> 'offset', 'null'::jsonb);
  if v_value is not null then
    if pg_catalog.jsonb_typeof(v_value) <> 'number'
      or v_value::numeric <> pg_catalog.trunc(v_value::numeric) then
      perform jobforge_private.invalid('offset', 'must be an integer');
    end if;
    if v_value::numeric < 0 or v_value::numeric > 2147483647 then
      perform jobforge_private.invalid('offset', 'must be between 0 and 2147483647');
    end if;
    v_offset := v_value::numeric::integer;
  end if;

  select coalesce(
    pg_catalog.to_jsonb(pg_catalog.array_agg(page order by page.created_at desc, page.id desc)),
    '[]'::jsonb
  )
  into v_rows
  from (
    select j.*
    from public.jobforge_jobs j
    where j.tenant_id = p_tenant_id
      and (v_status is null or j.status = v_status)
      and (v_type is null or j.type = v_type)
    order by j.created_at desc, j.id desc
    limit v_limit
    offset v_offset
  ) as page;

  return v_rows;
end
$$;

comment on function public.jobforge_list_jobs(uuid, jsonb) is
  'Jobs of a tenant, newest first; filters status, type, limit, offset. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_list_jobs(uuid, jsonb) from public, anon;
grant execute on function public.jobforge_list_jobs(uuid, jsonb) to authenticated, service_role;

create function public.jobforge_get_job(p_job_id uuid, p_tenant_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_job jsonb;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_job_id is null then
    perform jobforge_private.invalid('job_id', 'is required');
  end if;

  select pg_catalog.to_jsonb(j) into v_job
  from public.jobforge_jobs j
  where j.id = p_job_id and j.tenant_id = p_tenant_id;

  return v_job;
end
$$;

comment on function public.jobforge_get_job(uuid, uuid) is
  'One job of a tenant, or null. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_get_job(uuid, uuid) from public, anon;
grant execute on function public.jobforge_get_job(uuid, uuid) to authenticated, service_role;

create function public.jobforge_get_result(p_job_id uuid, p_tenant_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_result jsonb;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_job_id is null then
    perform jobforge_private.invalid('job_id', 'is required');
  end if;

  select pg_catalog.to_jsonb(r) into v_result
  from public.jobforge_job_results r
  where r.job_id = p_job_id and r.tenant_id = p_tenant_id;

  return v_result;
end
$$;

comment on function public.jobforge_get_result(uuid, uuid) is
  'The result row of a succeeded job of a tenant, or null. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_get_result(uuid, uuid) from public, anon;
grant execute on function public.jobforge_get_result(uuid, uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Worker RPCs: service_role only
-- ---------------------------------------------------------------------------------------

create function public.jobforge_claim_jobs(
  p_worker_id text,
  p_limit integer default 10,
  p_types text[] default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_reason text;
  v_rows jsonb;
begin
  perform jobforge_private.assert_service_role();

  v_reason := jobforge_private.worker_id_error(p_worker_id);
  if v_reason is not null then
    perform jobforge_private.invalid('worker_id', v_reason);
  end if;
  p_limit := coalesce(p_limit, 10);
  if p_limit < 1 or p_limit > 1000 then
    perform jobforge_private.invalid('limit', 'must be between 1 and 1000');
  end if;
  if p_types is not null then
    if pg_catalog.cardinality(p_types) = 0 then
      perform jobforge_private.invalid('types', 'must not be empty (pass null for every type)');
    end if;
    if pg_catalog.array_ndims(p_types) > 1 then
      perform jobforge_private.invalid('types', 'must be a one-dimensional array');
    end if;
  end if;

  -- Lock the due jobs with id = any(array(select ... for update skip locked)): the array
  -- is computed once, then the update fetches each row by primary key. (The id in
  -- (select ...) form is planned as a join, and the generic plan that a function ends up
  -- with scans the table.)
  --
  -- The CASE picks one of three lock queries, each planned for its own index; only the
  -- chosen one runs (the others show as "never executed" in EXPLAIN ANALYZE):
  --   * no type filter: jobforge_jobs_claim, read from the front;
  --   * one type: jobforge_jobs_claim_by_type, read from the front of that type;
  --   * several types: the first p_limit of each type from jobforge_jobs_claim_by_type,
  --     merged, and the first p_limit of those kept. Filtering jobforge_jobs_claim on
  --     type instead would walk past the whole backlog of other types on every claim.
  --     The price: up to (types - 1) * p_limit rows are locked and not claimed, until
  --     this transaction ends a moment later; other workers skip them meanwhile.
  with claimed as (
    update public.jobforge_jobs j
    set
      status = 'running',
      attempts = j.attempts + 1,
      locked_by = p_worker_id,
      locked_at = now(),
      heartbeat_at = now(),
      started_at = now(),
      updated_at = now()
    where j.id = any (
      case
        when p_types is null then array(
          select q.id
          from public.jobforge_jobs q
          where q.status = 'queued' and q.run_at <= now()
          order by q.run_at, q.id
          limit p_limit
          for update skip locked
        )
        when pg_catalog.cardinality(p_types) = 1 then array(
          select q.id
          from public.jobforge_jobs q
          where q.status = 'queued'
            and q.run_at <= now()
            and q.type = p_types[pg_catalog.array_lower(p_types, 1)]
          order by q.run_at, q.id
          limit p_limit
          for update skip locked
        )
        else array(
          select c.id
          from (select distinct t.type from pg_catalog.unnest(p_types) as t (type)) as t
          cross join lateral (
            select q.id, q.run_at
            from public.jobforge_jobs q
            where q.status = 'queued' and q.run_at <= now() and q.type = t.type
            order by q.run_at, q.id
            limit p_limit
            for update skip locked
          ) as c
          order by c.run_at, c.id
          limit p_limit
        )
      end
    )
    returning j.*
  )
  select coalesce(pg_catalog.to_jsonb(pg_catalog.array_agg(c order by c.run_at, c.id)), '[]'::jsonb)
  into v_rows
  from claimed c;

  return v_rows;
end
$$;

comment on function public.jobforge_claim_jobs(text, integer, text[]) is
  'Claim up to p_limit due queued jobs (optionally of p_types) for a worker. service_role only.';

revoke all on function public.jobforge_claim_jobs(text, integer, text[])
  from public, anon, authenticated;
grant execute on function public.jobforge_claim_jobs(text, integer, text[]) to service_role;

-- The opening checks of every RPC a worker makes about a job it holds (heartbeat,
-- complete, release): the caller is trusted, and names a job and itself.
create function jobforge_private.assert_worker_call(p_job_id uuid, p_worker_id text)
returns void
language plpgsql
stable
as $$
declare
  v_reason text;
begin
  perform jobforge_private.assert_service_role();
  if p_job_id is null then
    perform jobforge_private.invalid('job_id', 'is required');
  end if;
  v_reason := jobforge_private.worker_id_error(p_worker_id);
  if v_reason is not null then
    perform jobforge_private.invalid('worker_id', v_reason);
  end if;
end
$$;

revoke all on function jobforge_private.assert_worker_call(uuid, text)
  from public, anon, authenticated, service_role;

create function public.jobforge_heartbeat_job(p_job_id uuid, p_worker_id text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_job public.jobforge_jobs;
begin
  perform jobforge_private.assert_worker_call(p_job_id, p_worker_id);

  update public.jobforge_jobs j
  set heartbeat_at = now()
  where j.id = p_job_id
    and j.status = 'running'
    and j.locked_by = p_worker_id
  returning j.* into v_job;

  if not found then
    perform jobforge_private.raise_not_held(p_job_id, p_worker_id);
  end if;
  return pg_catalog.to_jsonb(v_job);
end
$$;

comment on function public.jobforge_heartbeat_job(uuid, text) is
  'Record that the worker holding a running job is alive. service_role only.';

revoke all on function public.jobforge_heartbeat_job(uuid, text) from public, anon, authenticated;
grant execute on function public.jobforge_heartbeat_job(uuid, text) to service_role;

-- The retry policy, in one place: after attempt n fails, wait 2^(n-1) seconds, at most
-- an hour. A plain SQL function, so the planner inlines it.
create function jobforge_private.retry_delay(p_attempts integer)
returns interval
language sql
immutable
return pg_catalog.make_interval(
  secs => least(pg_catalog.power(2::double precision, p_attempts - 1), 3600)
);

revoke all on function jobforge_private.retry_delay(integer)
  from public, anon, authenticated, service_role;

create function public.jobforge_complete_job(
  p_job_id uuid,
  p_worker_id text,
  p_status text,
  p_error jsonb default null,
  p_result jsonb default null,
  p_artifact_ref text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_job public.jobforge_jobs;
  v_reason text;
  v_result_id uuid;
  v_succeeded boolean;
begin
  perform jobforge_private.assert_worker_call(p_job_id, p_worker_id);
  if p_status is null or p_status not in ('succeeded', 'failed') then
    perform jobforge_private.invalid('status', 'must be succeeded or failed');
  end if;
  if pg_catalog.char_length(p_artifact_ref) > 2048 then
    perform jobforge_private.invalid('artifact_ref', 'must be at most 2048 characters');
  end if;

  v_succeeded := p_status = 'succeeded';
  if v_succeeded then
    v_result_id := gen_random_uuid();
  end if;

  -- Only the holder may finish the job. A failure with attempts left goes back to the
  -- queue after 1, 2, 4, ... seconds (at most an hour); the last failure makes it dead.
  update public.jobforge_jobs j
  set
    status = case
      when v_succeeded then 'succeeded'
      when j.attempts < j.max_attempts then 'queued'
      else 'dead'
    end,
    run_at = case
      when not v_succeeded and j.attempts < j.max_attempts then
        now() + jobforge_private.retry_delay(j.attempts)
      else j.run_at
    end,
    finished_at = case
      when not v_succeeded and j.attempts < j.max_attempts then null
      else now()
    end,
    -- The error of the last failed attempt; the history is in jobforge_job_attempts.
    error = case when v_succeeded then null else p_error end,
    result_id = coalesce(v_result_id, j.result_id),
    locked_by = null,
    locked_at = null,
    heartbeat_at = null,
    updated_at = now()
  where j.id = p_job_id
    and j.status = 'running'
    and j.locked_by = p_worker_id
  returning j.* into v_job;

  if not found then
    perform jobforge_private.raise_not_held(p_job_id, p_worker_id);
  end if;

  insert into public.jobforge_job_attempts
    (job_id, tenant_id, attempt, worker_id, status, error, started_at)
  values
    (
      v_job.id,
      v_job.tenant_id,
      v_job.attempts,
      p_worker_id,
      p_status,
      case when v_succeeded then null else p_error end,
      v_job.started_at
    );

  if v_succeeded then
    insert into public.jobforge_job_results (id, job_id, tenant_id, result, artifact_ref)
    values (v_result_id, v_job.id, v_job.tenant_id, p_result, p_artifact_ref);
  end if;

  return pg_catalog.to_jsonb(v_job);
end
$$;

comment on function public.jobforge_complete_job(uuid, text, text, jsonb, jsonb, text) is
  'Finish a held job: succeeded stores the result; failed retries with backoff or makes it dead. service_role only.';

revoke all on function public.jobforge_complete_job(uuid, text, text, jsonb, jsonb, text)
  from public, anon, authenticated;
grant execute on function public.jobforge_complete_job(uuid, text, text, jsonb, jsonb, text)
  to service_role;

create function public.jobforge_reap_stale_jobs(p_timeout interval default interval '5 minutes')
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cutoff timestamptz;
  v_reaped integer;
  v_requeued integer;
begin
  perform jobforge_private.assert_service_role();
  if p_timeout is null or p_timeout <= interval '0' then
    perform jobforge_private.invalid('timeout', 'must be positive');
  end if;
  v_cutoff := now() - p_timeout;

  -- SKIP LOCKED: a job whose worker is completing or heartbeating it right now is left
  -- alone (and is no longer stale once that commits). The condition is
  -- coalesce(heartbeat_at, locked_at) < cutoff, written so that jobforge_jobs_reap serves it.
  with stale as (
    select j.id, j.locked_by
    from public.jobforge_jobs j
    where j.status = 'running'
      and (j.heartbeat_at < v_cutoff or (j.heartbeat_at is null and j.locked_at < v_cutoff))
    for update skip locked
  ),
  reaped as (
    update public.jobforge_jobs j
    set
      status = case when j.attempts >= j.max_attempts then 'dead' else 'queued' end,
      run_at = case when j.attempts >= j.max_attempts then j.run_at else now() end,
      finished_at = case when j.attempts >= j.max_attempts then now() end,
      error = pg_catalog.jsonb_build_object(
        'type', 'WorkerLost',
        'message', pg_catalog.format('worker %s stopped heartbeating', s.locked_by)
      ),
      locked_by = null,
      locked_at = null,
      heartbeat_at = null,
      updated_at = now()
    from stale s
    where j.id = s.id
    returning j.id, j.tenant_id, j.attempts, j.started_at, j.status, j.error, s.locked_by
  ),
  recorded as (
    insert into public.jobforge_job_attempts
      (job_id, tenant_id, attempt, worker_id, status, error, started_at)
    select r.id, r.tenant_id, r.attempts, r.locked_by, 'lost', r.error, r.started_at
    from reaped r
  )
  select pg_catalog.count(*), pg_catalog.count(*) filter (where r.status = 'queued')
  into v_reaped, v_requeued
  from reaped r;

  -- Requeued jobs are due at once: wake idle workers as an enqueue would.
  if v_requeued > 0 then
    perform pg_catalog.pg_notify('jobforge_jobs', '');
  end if;

  return v_reaped;
end
$$;

comment on function public.jobforge_reap_stale_jobs(interval) is
  'Requeue (or make dead) running jobs without a heartbeat for p_timeout; returns how many. service_role only.';

revoke all on function public.jobforge_reap_stale_jobs(interval) from public, anon, authenticated;
grant execute on function public.jobforge_reap_stale_jobs(interval) to service_role;
