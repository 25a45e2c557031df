-- 20_jobs: the core queue as tenants see it: job tables, input rules, and the
-- tenant-facing RPCs (enqueue, cancel, retry, reschedule, list, get). The worker side of the
-- same tables is 25_workers.sql.

-- Input rules of a job, one value each: the reason a value is refused, or null when it is
-- fine. The single enqueue (and the single checks of other RPCs) call these;
-- job_specs_error below applies the same rules to every element of a batch. plpgsql, like
-- every helper: a call costs a few microseconds (00_private.sql).

create function jobforge_private.type_error(p_type text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_type is null then 'is required'
    when p_type = '' then 'must not be empty'
    when pg_catalog.char_length(p_type) > 255 then 'must be at most 255 characters'
  end;
end
$$;

-- autopilot.* is the namespace of template jobs. They may only enter the queue through
-- jobforge_request_job (40_templates.sql), which checks that the template is enabled,
-- validates the inputs, verifies the policy token of action jobs and writes the audit
-- row; a direct enqueue of such a type would skip all of that, so the public enqueue RPCs
-- refuse it.
create function jobforge_private.reserved_type_error(p_type text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_type like 'autopilot.%' then
      'autopilot.* jobs are requested from their template (jobforge_request_job)'
  end;
end
$$;

-- The size of a payload is the size of its text form, as jsonb prints it.
create function jobforge_private.payload_error(p_payload jsonb)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when pg_catalog.octet_length(p_payload::text) > 1048576 then 'must be at most 1 MiB'
  end;
end
$$;

-- An empty key is refused rather than treated as a key: it is almost always an unset
-- value, and it would silently merge every job of the type into the first one.
create function jobforge_private.idempotency_key_error(p_key text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_key = '' then 'must not be empty'
    when pg_catalog.char_length(p_key) > 255 then 'must be at most 255 characters'
  end;
end
$$;

create function jobforge_private.max_attempts_error(p_max_attempts numeric)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_max_attempts <> pg_catalog.trunc(p_max_attempts) then 'must be an integer'
    when p_max_attempts < 1 or p_max_attempts > 100 then 'must be between 1 and 100'
  end;
end
$$;

-- Priority is stored as a smallint; the argument is an integer (numeric for the batch's
-- JSON numbers) so that an out-of-range value gets this reason, not a cast error.
create function jobforge_private.priority_error(p_priority numeric)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_priority <> pg_catalog.trunc(p_priority) then 'must be an integer'
    when p_priority < -32768 or p_priority > 32767 then 'must be between -32768 and 32767'
  end;
end
$$;

-- How long one attempt may run, in milliseconds (null: no limit); at most a day, which
-- also keeps started_at + timeout_ms far from any overflow.
create function jobforge_private.timeout_ms_error(p_timeout_ms numeric)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_timeout_ms <> pg_catalog.trunc(p_timeout_ms) then 'must be an integer'
    when p_timeout_ms < 1 or p_timeout_ms > 86400000 then
      'must be between 1 and 86400000 (24 hours)'
  end;
end
$$;

create function jobforge_private.worker_id_error(p_worker_id text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_worker_id is null then 'is required'
    when p_worker_id = '' then 'must not be empty'
    when pg_catalog.char_length(p_worker_id) > 255 then 'must be at most 255 characters'
  end;
end
$$;

-- What is wrong with the first element of a jobforge_enqueue_jobs batch (a JSON array)
-- that breaks a rule, as {index from 0, field path relative to the element, reason}, or
-- null when none does. One call checks the whole batch.
--
-- The rules of the helpers above are written out here, not called: a function call per
-- element cannot be inlined (00_private.sql), and calling them for 1,000 jobs takes some
-- 7 ms more, a fifth of the batch enqueue. So a change to one of those rules is made in
-- both places, and the tests of both the single and the batch enqueue cover it. (The
-- single enqueue does not call this instead: checking one element this way costs some
-- 50 us more than the helpers, a quarter of a single enqueue.)
--
-- run_at is only checked to be a string here: whether it parses as a timestamp is found
-- out by casting it (see jobforge_enqueue_jobs).
create function jobforge_private.job_specs_error(p_jobs jsonb)
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (
    select array[(c.ord - 1)::text, c.error[1], c.error[2]]
    from (
      select e.ord, case
        when pg_catalog.jsonb_typeof(e.job) is distinct from 'object' then
          array['', 'must be a JSON object']
        when e.job - '{type,payload,idempotency_key,run_at,max_attempts,priority,timeout_ms}'::text[] <> '{}'::jsonb then
          array[
            '.' || (
              pg_catalog.jsonb_path_query_first(
                e.job - '{type,payload,idempotency_key,run_at,max_attempts,priority,timeout_ms}'::text[],
                '$.keyvalue().key'
              ) #>> '{}'
            ),
            'is not a known field'
          ]
        when coalesce(pg_catalog.jsonb_typeof(e.job -> 'type'), 'null') = 'null' then
          array['.type', 'is required']
        when pg_catalog.jsonb_typeof(e.job -> 'type') <> 'string' then
          array['.type', 'must be a string']
        -- type_error
        when e.job ->> 'type' = '' then
          array['.type', 'must not be empty']
        when pg_catalog.char_length(e.job ->> 'type') > 255 then
          array['.type', 'must be at most 255 characters']
        -- reserved_type_error
        when e.job ->> 'type' like 'autopilot.%' then
          array['.type', 'autopilot.* jobs are requested from their template (jobforge_request_job)']
        -- payload_error
        when pg_catalog.octet_length((e.job -> 'payload')::text) > 1048576 then
          array['.payload', 'must be at most 1 MiB']
        -- json_depth_error (00_private.sql), walked only when the value is big enough to be
        -- that deep (see json_depth_error): most payloads skip the walk
        when pg_catalog.pg_column_size(e.job -> 'payload') > 256
          and pg_catalog.jsonb_path_exists(
            e.job -> 'payload', 'strict $.**{64} ? (@.type() == "object" || @.type() == "array")'
          ) then
          array['.payload', 'must be nested at most 64 levels deep']
        when pg_catalog.jsonb_typeof(e.job -> 'idempotency_key') not in ('string', 'null') then
          array['.idempotency_key', 'must be a string']
        -- idempotency_key_error
        when e.job ->> 'idempotency_key' = '' then
          array['.idempotency_key', 'must not be empty']
        when pg_catalog.char_length(e.job ->> 'idempotency_key') > 255 then
          array['.idempotency_key', 'must be at most 255 characters']
        when pg_catalog.jsonb_typeof(e.job -> 'run_at') not in ('string', 'null') then
          array['.run_at', 'must be an ISO 8601 timestamp']
        when pg_catalog.jsonb_typeof(e.job -> 'max_attempts') not in ('number', 'null') then
          array['.max_attempts', 'must be an integer']
        -- max_attempts_error, on numbers only (a JSON null does not cast)
        when pg_catalog.jsonb_typeof(e.job -> 'max_attempts') = 'number'
          and (e.job -> 'max_attempts')::numeric <> pg_catalog.trunc((e.job -> 'max_attempts')::numeric) then
          array['.max_attempts', 'must be an integer']
        when pg_catalog.jsonb_typeof(e.job -> 'max_attempts') = 'number'
          and ((e.job -> 'max_attempts')::numeric < 1 or (e.job -> 'max_attempts')::numeric > 100) then
          array['.max_attempts', 'must be between 1 and 100']
        -- priority_error and timeout_ms_error, on numbers only (a JSON null does not
        -- cast). Most jobs carry neither field: one ?| test per element stands for the
        -- six below. These are the last rules, so a null from the inner CASE is the
        -- element's verdict.
        when e.job ?| '{priority,timeout_ms}'::text[] then case
          when pg_catalog.jsonb_typeof(e.job -> 'priority') not in ('number', 'null') then
            array['.priority', 'must be an integer']
          when pg_catalog.jsonb_typeof(e.job -> 'priority') = 'number'
            and (e.job -> 'priority')::numeric <> pg_catalog.trunc((e.job -> 'priority')::numeric) then
            array['.priority', 'must be an integer']
          when pg_catalog.jsonb_typeof(e.job -> 'priority') = 'number'
            and ((e.job -> 'priority')::numeric < -32768 or (e.job -> 'priority')::numeric > 32767) then
            array['.priority', 'must be between -32768 and 32767']
          when pg_catalog.jsonb_typeof(e.job -> 'timeout_ms') not in ('number', 'null') then
            array['.timeout_ms', 'must be an integer']
          when pg_catalog.jsonb_typeof(e.job -> 'timeout_ms') = 'number'
            and (e.job -> 'timeout_ms')::numeric <> pg_catalog.trunc((e.job -> 'timeout_ms')::numeric) then
            array['.timeout_ms', 'must be an integer']
          when pg_catalog.jsonb_typeof(e.job -> 'timeout_ms') = 'number'
            and ((e.job -> 'timeout_ms')::numeric < 1 or (e.job -> 'timeout_ms')::numeric > 86400000) then
            array['.timeout_ms', 'must be between 1 and 86400000 (24 hours)']
        end
      end
      from pg_catalog.jsonb_array_elements(p_jobs) with ordinality as e (job, ord)
    ) as c (ord, error)
    where c.error is not null
    order by c.ord
    limit 1
  );
end
$$;

create table public.jobforge_jobs (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  type text not null,
  payload jsonb not null default '{}',
  -- A failed attempt either goes back to queued (attempts left) or to dead; "failed" is
  -- kept in the check for compatibility, no RPC leaves a job in it.
  status text not null default 'queued'
    check (status = any (jobforge_private.job_statuses())),
  attempts integer not null default 0,
  max_attempts integer not null default 5 check (max_attempts between 1 and 100),
  -- Claim order is priority (higher first), then run_at.
  priority smallint not null default 0,
  -- How long one attempt may run, in milliseconds; null is no limit of its own. The
  -- worker cancels a handler that runs past it, and the reaper takes back a job past it
  -- even while its worker still heartbeats.
  timeout_ms integer check (timeout_ms between 1 and 86400000),
  run_at timestamptz not null default now(),
  locked_by text,
  locked_at timestamptz,
  heartbeat_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  idempotency_key text,
  error jsonb,
  -- A success is kept on the job row: the handler's result, its artifact reference and
  -- the worker that ran it. Completing a job is then one row written, not three (a
  -- results row, a succeeded attempt row, and their two foreign-key checks); failed and
  -- lost attempts still get rows in jobforge_job_attempts, and jobforge_list_job_attempts
  -- adds the succeeded one from here.
  result jsonb,
  artifact_ref text check (pg_catalog.char_length(artifact_ref) <= 2048),
  finished_by text,
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

-- Claiming: the queued jobs of each (type, tenant) queue in claim order (priority, then
-- run_at), read from the front, so a worker of a rare type does not walk past a backlog of
-- other types, and one tenant's backlog does not hide another tenant's jobs. Only queued
-- rows are in it, so it stays as small as the backlog. jobforge_claim_jobs also finds the
-- types, and the tenants of a type, in it (skip scans): one index instead of three, since
-- every index of this table gets an entry for each enqueue, claim and completion (status
-- is in the predicate, so those updates are never HOT).
create index jobforge_jobs_claim_by_type
  on public.jobforge_jobs (type, tenant_id, priority desc, run_at, id)
  where status = 'queued';

-- The running jobs: counted per type, tenant, or both when a claim checks a concurrency
-- limit (jobforge_limits), and read whole by the reaper (the running set is as small as
-- the workers' slots). Heartbeats change no column of it, so they can be HOT updates.
create index jobforge_jobs_running
  on public.jobforge_jobs (type, tenant_id)
  where status = 'running';

-- Listing the jobs of a tenant, newest first; id breaks ties in created_at (a batch shares
-- one), so the index gives the exact order of jobforge_list_jobs.
create index jobforge_jobs_tenant_created
  on public.jobforge_jobs (tenant_id, created_at desc, id desc);

create table public.jobforge_job_attempts (
  id uuid primary key default gen_random_uuid(),
  job_id uuid not null references public.jobforge_jobs (id) on delete cascade,
  tenant_id uuid not null,
  attempt integer not null,
  worker_id text,
  -- failed: the worker reported the failure (a handler it stopped at the job's timeout
  -- too: error type JobTimeout). lost: the worker stopped heartbeating and the reaper
  -- took the job back. timed_out: the attempt ran past started_at + timeout_ms and the
  -- reaper took the job back, heartbeats or not (error type JobTimeout).
  status text not null check (status in ('succeeded', 'failed', 'lost', 'timed_out')),
  error jsonb,
  started_at timestamptz,
  finished_at timestamptz not null default now()
);

comment on table public.jobforge_job_attempts is
  'JobForge attempt history: one row per failed or lost attempt (a success is kept on the job row).';

create index jobforge_job_attempts_job on public.jobforge_job_attempts (job_id, attempt);

create table public.jobforge_connector_configs (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  -- A lowercase identifier: jobforge_private.connector_type_error (47_connectors.sql)
  -- says the same with a message.
  connector_type text not null check (connector_type ~ '^[a-z][a-z0-9_]{0,62}$'),
  -- Readable by the tenant users through RLS: no secrets here.
  config jsonb not null default '{}',
  -- Write-only: no API role may select this column (the column grants below), and no RPC
  -- answers it; the RPCs answer the names of its keys only (47_connectors.sql).
  secrets jsonb not null default '{}',
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
alter table public.jobforge_job_attempts enable row level security;
alter table public.jobforge_connector_configs enable row level security;

create policy jobforge_jobs_tenant_select on public.jobforge_jobs
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
  public.jobforge_job_attempts,
  public.jobforge_connector_configs
  from public, anon, authenticated, service_role;

grant select on table
  public.jobforge_jobs,
  public.jobforge_job_attempts
  to authenticated, service_role;

-- Every column but secrets (RLS filters rows, never columns). A select naming secrets,
-- or select *, is refused (42501) for both roles, service_role included.
grant select (id, tenant_id, connector_type, config, enabled, created_at, updated_at)
  on table public.jobforge_connector_configs
  to authenticated, service_role;

-- Why a job cannot be heartbeated or completed by this worker: PT404 when the job does
-- not exist, else PT409 naming its current state. (A helper like those above; it reads
-- jobforge_jobs, so it comes after the tables.)
create function jobforge_private.raise_not_held(p_job_id uuid, p_worker_id text)
returns void
language plpgsql
stable
set search_path = ''
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

-- The insert behind jobforge_enqueue_job, without the caller checks: for RPCs of this
-- schema that have already checked the caller (jobforge_request_job and the triggers
-- enqueue template jobs through it). Runs with the privileges of its definer caller.
-- priority and timeout_ms come last, with defaults, so a caller that predates them
-- still makes a job of priority 0 without a limit.
create function jobforge_private.enqueue_job(
  p_tenant_id uuid,
  p_type text,
  p_payload jsonb default '{}',
  p_idempotency_key text default null,
  p_run_at timestamptz default null,
  p_max_attempts integer default 5,
  p_priority integer default 0,
  p_timeout_ms integer default null
)
returns public.jobforge_jobs
language plpgsql
set search_path = ''
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
  p_priority := coalesce(p_priority, 0);
  v_reason := jobforge_private.priority_error(p_priority);
  if v_reason is not null then
    perform jobforge_private.invalid('priority', v_reason);
  end if;
  v_reason := jobforge_private.timeout_ms_error(p_timeout_ms);
  if v_reason is not null then
    perform jobforge_private.invalid('timeout_ms', v_reason);
  end if;

  if p_idempotency_key is null then
    -- Without a key nothing can conflict: a plain insert spares the speculative insertion
    -- of ON CONFLICT (a tenth of the cost of this function).
    insert into public.jobforge_jobs as j
      (tenant_id, type, payload, run_at, max_attempts, priority, timeout_ms)
    values
      (p_tenant_id, p_type, p_payload, coalesce(p_run_at, now()), p_max_attempts, p_priority, p_timeout_ms)
    returning j.* into v_job;
  else
    loop
      insert into public.jobforge_jobs as j
        (tenant_id, type, payload, idempotency_key, run_at, max_attempts, priority, timeout_ms)
      values
        (p_tenant_id, p_type, p_payload, p_idempotency_key, coalesce(p_run_at, now()), p_max_attempts,
         p_priority, p_timeout_ms)
      on conflict (tenant_id, type, idempotency_key) where idempotency_key is not null
        do nothing
      returning j.* into v_job;
      exit when found;

      -- The key is taken: return that job as it is. ON CONFLICT waited for the transaction
      -- that inserted it, and this statement has a new snapshot, so it sees the row.
      -- (Under REPEATABLE READ the insert fails with a serialization error instead: retry.)
      select j.* into v_job
      from public.jobforge_jobs j
      where j.tenant_id = p_tenant_id
        and j.type = p_type
        and j.idempotency_key = p_idempotency_key;

      if found then
        return v_job;
      end if;
      -- The row was deleted between the two statements: insert again.
    end loop;
  end if;

  perform pg_catalog.pg_notify('jobforge_jobs', p_type);
  return v_job;
end
$$;

create function public.jobforge_enqueue_job(
  p_tenant_id uuid,
  p_type text,
  p_payload jsonb default '{}',
  p_idempotency_key text default null,
  p_run_at timestamptz default null,
  p_max_attempts integer default 5,
  p_priority integer default 0,
  p_timeout_ms integer default null
)
returns json
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
  -- The depth cap is the argument's (00_private.sql); the size cap is the stored
  -- payload's, checked by the insert helper (a template job's payload wraps its inputs).
  v_reason := jobforge_private.json_depth_error(p_payload);
  if v_reason is not null then
    perform jobforge_private.invalid('payload', v_reason);
  end if;
  -- json, not jsonb: the answer is only sent (see jobforge_enqueue_jobs).
  return pg_catalog.row_to_json(jobforge_private.enqueue_job(
    p_tenant_id, p_type, p_payload, p_idempotency_key, p_run_at, p_max_attempts,
    p_priority, p_timeout_ms
  ));
end
$$;

comment on function public.jobforge_enqueue_job is
  'Queue one job (idempotent per tenant, type and idempotency_key); p_priority -32768..32767 (higher is claimed first), p_timeout_ms 1..86400000 per attempt (null: no limit). authenticated (own tenants) and service_role.';

create function public.jobforge_enqueue_jobs(
  p_tenant_id uuid,
  p_jobs jsonb,
  p_returning text default 'rows'
)
returns json
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
  v_error text[];
  v_rows json;
  v_ids uuid[];
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
  if p_returning is null or p_returning not in ('rows', 'ids') then
    perform jobforge_private.invalid('returning', 'must be rows or ids');
  end if;

  -- The first element that breaks a rule, in input order (jobs[0] is the first).
  v_error := jobforge_private.job_specs_error(p_jobs);
  if v_error is not null then
    perform jobforge_private.invalid(pg_catalog.format('jobs[%s]%s', v_error[1], v_error[2]), v_error[3]);
  end if;

  begin
    if not pg_catalog.jsonb_path_exists(p_jobs, '$[*].idempotency_key ? (@ != null)') then
      -- No element has a key, so nothing can conflict and every element inserts: a plain
      -- insert, with no ON CONFLICT arbiter and no sort into lock order. Each element gets
      -- its id up front, which is all the "ids" answer needs; the "rows" answer joins the
      -- inserted rows back to their positions.
      with input as (
        select
          e.ord,
          gen_random_uuid() as id,
          e.elem ->> 'type' as type,
          coalesce(nullif(e.elem -> 'payload', 'null'::jsonb), '{}'::jsonb) as payload,
          coalesce((e.elem ->> 'run_at')::timestamptz, now()) as run_at,
          case
            when pg_catalog.jsonb_typeof(e.elem -> 'max_attempts') = 'number'
              then (e.elem -> 'max_attempts')::numeric::integer
            else 5
          end as max_attempts,
          -- Checked by job_specs_error: a number here is an integer in range.
          case
            when pg_catalog.jsonb_typeof(e.elem -> 'priority') = 'number'
              then (e.elem -> 'priority')::numeric::smallint
            else 0
          end as priority,
          case
            when pg_catalog.jsonb_typeof(e.elem -> 'timeout_ms') = 'number'
              then (e.elem -> 'timeout_ms')::numeric::integer
          end as timeout_ms
        from pg_catalog.jsonb_array_elements(p_jobs) with ordinality as e (elem, ord)
      ),
      inserted as (
        insert into public.jobforge_jobs as j
          (id, tenant_id, type, payload, run_at, max_attempts, priority, timeout_ms)
        select i.id, p_tenant_id, i.type, i.payload, i.run_at, i.max_attempts, i.priority, i.timeout_ms
        from input i
        returning j.*
      )
      select case
        when p_returning = 'ids' then
          (select pg_catalog.json_agg(i.id order by i.ord) from input i)
        else
          (
            select pg_catalog.json_agg(x order by i.ord)
            from input i
            join inserted x on x.id = i.id
          )
      end
      into v_rows;
      v_inserted := v_count;
    else
      -- One statement for the whole batch. Elements that hit an existing key (or an
      -- earlier element of the same batch) insert nothing; their id stays null here and
      -- is looked up below.
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
          end as max_attempts,
          -- Checked by job_specs_error: a number here is an integer in range.
          case
            when pg_catalog.jsonb_typeof(e.elem -> 'priority') = 'number'
              then (e.elem -> 'priority')::numeric::smallint
            else 0
          end as priority,
          case
            when pg_catalog.jsonb_typeof(e.elem -> 'timeout_ms') = 'number'
              then (e.elem -> 'timeout_ms')::numeric::integer
          end as timeout_ms
        from pg_catalog.jsonb_array_elements(p_jobs) with ordinality as e (elem, ord)
      ),
      inserted as (
        insert into public.jobforge_jobs as j
          (id, tenant_id, type, payload, idempotency_key, run_at, max_attempts, priority, timeout_ms)
        select i.id, p_tenant_id, i.type, i.payload, i.idempotency_key, i.run_at, i.max_attempts,
          i.priority, i.timeout_ms
        from input i
        -- Keys in one global order, so two batches that share keys wait for each other
        -- instead of deadlocking; within a key, the first element wins.
        order by i.type, i.idempotency_key, i.ord
        on conflict (tenant_id, type, idempotency_key) where idempotency_key is not null
          do nothing
        returning j.id
      )
      select pg_catalog.array_agg(x.id order by i.ord), pg_catalog.count(x.id)
      into v_ids, v_inserted
      from input i
      left join inserted x on x.id = i.id;

      -- The answer, in input order: the job each element made, or for a duplicate the job
      -- that holds its key, as it is now. A new statement has a new snapshot, so this also
      -- sees keys that a concurrent batch committed meanwhile.
      select pg_catalog.json_agg(
        case when p_returning = 'ids' then pg_catalog.to_json(j.id) else pg_catalog.row_to_json(j) end
        order by u.ord
      )
      into v_rows
      from pg_catalog.unnest(v_ids) with ordinality as u (id, ord)
      join public.jobforge_jobs j on j.id = coalesce(
        u.id,
        (
          select k.id
          from public.jobforge_jobs k
          where k.tenant_id = p_tenant_id
            and k.type = p_jobs -> (u.ord::integer - 1) ->> 'type'
            and k.idempotency_key = p_jobs -> (u.ord::integer - 1) ->> 'idempotency_key'
        )
      );
    end if;
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

  if v_inserted > 0 then
    perform pg_catalog.pg_notify('jobforge_jobs', '');
  end if;

  return v_rows;
end
$$;

comment on function public.jobforge_enqueue_jobs is
  'Queue up to 1,000 jobs in one statement (each {type, payload, idempotency_key, run_at, max_attempts, priority, timeout_ms}); returns the rows (or with p_returning ''ids'', the ids) in input order. authenticated (own tenants) and service_role.';

-- Move a queued job to another run_at, change its priority, or both; what is left null
-- stays as it is (one of the two is required).
create function public.jobforge_reschedule_job(
  p_job_id uuid,
  p_tenant_id uuid,
  p_run_at timestamptz default null,
  p_priority integer default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_job public.jobforge_jobs;
  v_status text;
  v_reason text;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_job_id is null then
    perform jobforge_private.invalid('job_id', 'is required');
  end if;
  if p_run_at is null and p_priority is null then
    perform jobforge_private.invalid('run_at', 'is required (unless priority is given)');
  end if;
  v_reason := jobforge_private.priority_error(p_priority);
  if v_reason is not null then
    perform jobforge_private.invalid('priority', v_reason);
  end if;

  update public.jobforge_jobs j
  set
    run_at = coalesce(p_run_at, j.run_at),
    priority = coalesce(p_priority, j.priority),
    updated_at = now()
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

comment on function public.jobforge_reschedule_job is
  'Move a queued job to another run_at and/or priority (-32768..32767). authenticated (own tenants) and service_role.';

create function public.jobforge_list_jobs(p_tenant_id uuid, p_filters jsonb default '{}')
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_status text;
  v_type text;
  v_limit integer;
  v_offset integer;
  v_reason text;
  v_rows jsonb;
begin
  -- No tenant: the jobs of every tenant, for a trusted caller (service_role) only, as
  -- jobforge_list_audit_logs does with its global rows. Anyone else is refused exactly as
  -- before (assert_tenant: PT400 "tenant_id: is required"); a null never means "all" for
  -- a user.
  if p_tenant_id is not null or not jobforge_private.caller_is_trusted() then
    perform jobforge_private.assert_tenant(p_tenant_id);
  end if;

  p_filters := jobforge_private.filters_object(p_filters, array['status', 'type', 'limit', 'offset']);
  v_status := jobforge_private.filter_choice(p_filters, 'status', jobforge_private.job_statuses());
  v_type := jobforge_private.filter_text(p_filters, 'type');
  v_reason := jobforge_private.type_error(v_type);
  if v_type is not null and v_reason is not null then
    perform jobforge_private.invalid('type', v_reason);
  end if;
  v_limit := jobforge_private.filter_integer(p_filters, 'limit', 1, 1000, 100);
  v_offset := jobforge_private.filter_integer(p_filters, 'offset', 0, 2147483647, 0);

  -- Two statements rather than one "tenant_id = p_tenant_id or p_tenant_id is null", so
  -- the tenant's keeps its plan on jobforge_jobs_tenant_created whatever plan PL/pgSQL
  -- caches. Every tenant's jobs (an operator's command, not a hot path) have no index in
  -- this order: the page is a top-N sort over the whole table.
  -- An index for it would cost an entry on every enqueue, claim and completion.
  if p_tenant_id is null then
    select coalesce(
      pg_catalog.to_jsonb(pg_catalog.array_agg(page order by page.created_at desc, page.id desc)),
      '[]'::jsonb
    )
    into v_rows
    from (
      select j.*
      from public.jobforge_jobs j
      where (v_status is null or j.status = v_status)
        and (v_type is null or j.type = v_type)
      order by j.created_at desc, j.id desc
      limit v_limit
      offset v_offset
    ) as page;
  else
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
  end if;

  return v_rows;
end
$$;

comment on function public.jobforge_list_jobs is
  'Jobs of a tenant (or, for service_role with a null tenant, of every tenant), newest first; filters status, type, limit, offset. authenticated (own tenants) and service_role.';

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
  -- A null tenant: the job whatever its tenant, for a trusted caller only (as in
  -- jobforge_list_jobs); anyone else is refused by assert_tenant as before.
  if p_tenant_id is not null or not jobforge_private.caller_is_trusted() then
    perform jobforge_private.assert_tenant(p_tenant_id);
  end if;
  if p_job_id is null then
    perform jobforge_private.invalid('job_id', 'is required');
  end if;

  select pg_catalog.to_jsonb(j) into v_job
  from public.jobforge_jobs j
  where j.id = p_job_id and (p_tenant_id is null or j.tenant_id = p_tenant_id);

  return v_job;
end
$$;

comment on function public.jobforge_get_job is
  'One job of a tenant (service_role: of any tenant when the tenant is null), or null. authenticated (own tenants) and service_role.';

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

  -- The result of a succeeded job, shaped as the results row it once was: its id is
  -- the job's, and created_at is when the job finished.
  select pg_catalog.jsonb_build_object(
    'id', j.id,
    'job_id', j.id,
    'tenant_id', j.tenant_id,
    'result', j.result,
    'artifact_ref', j.artifact_ref,
    'created_at', j.finished_at
  )
  into v_result
  from public.jobforge_jobs j
  where j.id = p_job_id and j.tenant_id = p_tenant_id and j.status = 'succeeded';

  return v_result;
end
$$;

comment on function public.jobforge_get_result is
  'The result of a succeeded job of a tenant, or null. authenticated (own tenants) and service_role.';

-- The finished attempts of a job, oldest first: what each worker reported (or the
-- reaper, for a lost attempt). A job the tenant does not have is PT404, so an empty list
-- always means "no attempt has finished yet".
create function public.jobforge_list_job_attempts(p_job_id uuid, p_tenant_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_rows jsonb;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_job_id is null then
    perform jobforge_private.invalid('job_id', 'is required');
  end if;
  if not exists (
    select 1 from public.jobforge_jobs j where j.id = p_job_id and j.tenant_id = p_tenant_id
  ) then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('job %s not found', p_job_id);
  end if;

  -- The failed and lost attempts have rows; the succeeded one is the job row itself
  -- (its id is the job's).
  select coalesce(
    pg_catalog.jsonb_agg(pg_catalog.to_jsonb(a) order by a.attempt, a.finished_at),
    '[]'::jsonb
  )
  into v_rows
  from (
    select x.id, x.job_id, x.tenant_id, x.attempt, x.worker_id, x.status, x.error,
      x.started_at, x.finished_at
    from public.jobforge_job_attempts x
    where x.job_id = p_job_id and x.tenant_id = p_tenant_id
    union all
    select j.id, j.id, j.tenant_id, j.attempts, j.finished_by, 'succeeded', null,
      j.started_at, j.finished_at
    from public.jobforge_jobs j
    where j.id = p_job_id and j.tenant_id = p_tenant_id and j.status = 'succeeded'
  ) as a;

  return v_rows;
end
$$;

comment on function public.jobforge_list_job_attempts is
  'Finished attempts of a job of a tenant, oldest first (PT404 when the tenant has no such job). authenticated (own tenants) and service_role.';

-- A tenant's job locked for a change of status that only p_allowed statuses admit:
-- PT404 when the tenant has no such job, PT409 naming the status it is in otherwise
-- ("job ... is dead; only queued or running jobs can be canceled"). Answers the status,
-- read under the lock, so the audit row records the state the job left.
create function jobforge_private.lock_job_in(
  p_tenant_id uuid,
  p_job_id uuid,
  p_allowed text[],
  p_verb text
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_status text;
begin
  select j.status into v_status
  from public.jobforge_jobs j
  where j.id = p_job_id and j.tenant_id = p_tenant_id
  for no key update;

  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('job %s not found', p_job_id);
  end if;
  if v_status <> all (p_allowed) then
    raise exception using
      errcode = 'PT409',
      message = pg_catalog.format(
        'job %s is %s; only %s jobs can be %s',
        p_job_id, v_status, pg_catalog.array_to_string(p_allowed, ' or '), p_verb
      );
  end if;
  return v_status;
end
$$;

-- The audit row of an operator's change to one job: project and trace are read from its
-- payload, where the request that made the job put them.
create function jobforge_private.audit_job(
  p_job public.jobforge_jobs,
  p_action text,
  p_actor_id text,
  p_details jsonb
)
returns uuid
language plpgsql
set search_path = ''
as $$
begin
  return jobforge_private.audit(
    p_job.tenant_id,
    case when jobforge_private.is_uuid_text(p_job.payload ->> 'project_id')
      then (p_job.payload ->> 'project_id')::uuid end,
    p_action,
    p_actor_id,
    case when pg_catalog.jsonb_typeof(p_job.payload -> 'trace_id') = 'string'
      then pg_catalog.left(p_job.payload ->> 'trace_id', 255) end,
    'job', p_job.id::text, 'success', null,
    p_details
  );
end
$$;

-- Cancel a queued or running job of the tenant, and write one job_cancel audit row in
-- the same transaction.
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

  v_status := jobforge_private.lock_job_in(
    p_tenant_id, p_job_id, array['queued', 'running'], 'canceled'
  );

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
  returning j.* into v_job;

  perform jobforge_private.audit_job(
    v_job, 'job_cancel', jobforge_private.audit_actor(null),
    pg_catalog.jsonb_build_object('type', v_job.type, 'previous_status', v_status)
  );
  return pg_catalog.to_jsonb(v_job);
end
$$;

comment on function public.jobforge_cancel_job is
  'Cancel a queued or running job; writes a job_cancel audit row. authenticated (own tenants) and service_role.';

-- Dead letter: put a job that ran out of attempts (dead, or the legacy failed) back in
-- the queue as if it were new (attempts 0, no error, due now), keeping its id, payload
-- and attempt history, so an operator who fixed the cause re-runs the very job instead of
-- a copy under a new id. Only dead and failed jobs: a queued or running job is still in
-- play, and a succeeded or canceled one was settled on purpose. One job_retry audit row
-- per call, in the same transaction; a refusal raises, so it rolls back with nothing
-- changed.
create function public.jobforge_retry_job(
  p_tenant_id uuid,
  p_job_id uuid,
  p_actor_id text default null
)
returns json
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_job public.jobforge_jobs;
  v_status text;
  v_reason text;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_job_id is null then
    perform jobforge_private.invalid('job_id', 'is required');
  end if;
  v_reason := jobforge_private.label_error(p_actor_id);
  if v_reason is not null then
    perform jobforge_private.invalid('actor_id', v_reason);
  end if;

  v_status := jobforge_private.lock_job_in(
    p_tenant_id, p_job_id, array['dead', 'failed'], 'retried'
  );

  update public.jobforge_jobs j
  set
    status = 'queued',
    attempts = 0,
    error = null,
    run_at = now(),
    locked_by = null,
    locked_at = null,
    heartbeat_at = null,
    started_at = null,
    finished_at = null,
    finished_by = null,
    result = null,
    artifact_ref = null,
    updated_at = now()
  where j.id = p_job_id
  returning j.* into v_job;

  perform jobforge_private.audit_job(
    v_job, 'job_retry', jobforge_private.audit_actor(p_actor_id),
    pg_catalog.jsonb_build_object('type', v_job.type, 'previous_status', v_status)
  );
  -- Wake idle workers of the type, as an enqueue does.
  perform pg_catalog.pg_notify('jobforge_jobs', v_job.type);
  return pg_catalog.row_to_json(v_job);
end
$$;

comment on function public.jobforge_retry_job is
  'Put a dead or failed job back in the queue (attempts 0, due now, same id); writes a job_retry audit row. authenticated (own tenants) and service_role.';

-- The bulk form of jobforge_retry_job (same reset, same statuses): up to p_limit of the
-- tenant's dead or failed jobs, of one type or of all, oldest failure first, in one
-- UPDATE, with one job_retry audit row naming every id (so a retry of a thousand jobs is
-- one row to read, and each job is still findable in it). Answers the ids. Jobs locked by
-- a concurrent retry are skipped rather than waited for: that retry takes them.
create function public.jobforge_retry_dead_jobs(
  p_tenant_id uuid,
  p_type text default null,
  p_limit integer default 1000,
  p_actor_id text default null
)
returns json
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_reason text;
  v_ids uuid[];
  v_details jsonb;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_type is not null then
    v_reason := jobforge_private.type_error(p_type);
    if v_reason is not null then
      perform jobforge_private.invalid('type', v_reason);
    end if;
  end if;
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    perform jobforge_private.invalid('limit', 'must be between 1 and 1000');
  end if;
  v_reason := jobforge_private.label_error(p_actor_id);
  if v_reason is not null then
    perform jobforge_private.invalid('actor_id', v_reason);
  end if;

  with picked as (
    select j.id
    from public.jobforge_jobs j
    where j.tenant_id = p_tenant_id
      and j.status in ('dead', 'failed')
      and (p_type is null or j.type = p_type)
    order by j.finished_at nulls first, j.id
    limit p_limit
    for no key update skip locked
  ), retried as (
    update public.jobforge_jobs j
    set
      status = 'queued',
      attempts = 0,
      error = null,
      run_at = now(),
      locked_by = null,
      locked_at = null,
      heartbeat_at = null,
      started_at = null,
      finished_at = null,
      finished_by = null,
      result = null,
      artifact_ref = null,
      updated_at = now()
    from picked
    where j.id = picked.id and j.status in ('dead', 'failed')
    returning j.id
  )
  select coalesce(pg_catalog.array_agg(r.id order by r.id), '{}') into v_ids
  from retried r;

  if pg_catalog.cardinality(v_ids) = 0 then
    return '[]'::json;
  end if;

  v_details := pg_catalog.jsonb_build_object(
    'job_ids', pg_catalog.to_jsonb(v_ids), 'count', pg_catalog.cardinality(v_ids)
  );
  if p_type is not null then
    v_details := v_details || pg_catalog.jsonb_build_object('type', p_type);
  end if;
  perform jobforge_private.audit(
    p_tenant_id, null, 'job_retry', jobforge_private.audit_actor(p_actor_id), null,
    'job', null, 'success', null, v_details
  );
  perform pg_catalog.pg_notify('jobforge_jobs', coalesce(p_type, ''));
  return pg_catalog.to_json(v_ids);
end
$$;

comment on function public.jobforge_retry_dead_jobs is
  'Put up to p_limit (1-1000) dead or failed jobs of a tenant, of one type or all, back in the queue; answers their ids; one job_retry audit row naming them. authenticated (own tenants) and service_role.';

-- Retention: finished jobs (succeeded, dead, canceled) whose finish is older than
-- p_older_than, with their attempts and manifest (both reference the job ON DELETE
-- CASCADE), at most p_batch_size jobs per call. queued and running are never touched, nor
-- is failed: no RPC leaves a job in it (a failed attempt goes back to queued or to dead),
-- and a job still in it is one jobforge_retry_job may put back in the queue, so it is not
-- known to be finished. SKIP LOCKED: a job being retried or canceled right now is left for
-- the next call. One more row than the batch is read to say whether more remain, so the
-- caller loops while more is true, each call a short transaction. There is no index on
-- finished_at (every index costs each completion): a call walks the table until it has
-- found its batch, which the daily purge can afford and the hot path need not pay for.
create function public.jobforge_purge_finished_jobs(
  p_older_than interval,
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
  v_cutoff := jobforge_private.retention_cutoff(p_older_than, p_batch_size);

  v_ids := array(
    select j.id
    from public.jobforge_jobs j
    where j.status in ('succeeded', 'dead', 'canceled') and j.finished_at < v_cutoff
    limit p_batch_size + 1
    for update skip locked
  );
  delete from public.jobforge_jobs j where j.id = any (v_ids[1:p_batch_size]);
  get diagnostics v_deleted = row_count;
  v_more := pg_catalog.cardinality(v_ids) > p_batch_size;

  perform jobforge_private.audit_purge(
    'jobforge_jobs', v_deleted, v_cutoff,
    pg_catalog.jsonb_build_object('batch_size', p_batch_size, 'more', v_more)
  );
  return pg_catalog.json_build_object('deleted', v_deleted, 'more', v_more);
end
$$;

comment on function public.jobforge_purge_finished_jobs is
  'Delete up to p_batch_size (1-10000) succeeded, dead or canceled jobs finished more than p_older_than ago, with their attempts and manifests; answers {deleted, more} (call again while more); one retention_purge audit row. service_role only.';
