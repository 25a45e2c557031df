-- 27_limits: concurrency and rate limits that jobforge_claim_jobs (25_workers.sql) keeps,
-- and the service-role RPCs that manage them.
--
-- A limit counts the jobs of a type, of a tenant, or of a type within a tenant, or, with
-- cost_tier, each template type of that tier on its own (the default cap of an expensive
-- template, unless a limit of its type exists). It caps how many of those jobs run at
-- once (max_running), how many may start per fixed window of per_seconds (max_starts), or
-- both. The claim keeps them however many workers claim at once: it locks the rows of the
-- limits that apply before it counts, so two claims under one limit take turns.

create table public.jobforge_limits (
  id uuid primary key default gen_random_uuid(),
  type text check (type is null or jobforge_private.type_error(type) is null),
  tenant_id uuid,
  cost_tier text check (cost_tier in ('low', 'medium', 'high')),
  -- 0 pauses the jobs it counts: none starts until it is raised or deleted.
  max_running integer check (max_running between 0 and 1000000),
  max_starts integer check (max_starts between 1 and 1000000),
  per_seconds integer check (per_seconds between 1 and 86400),
  -- The rate window the claims are counting in: windows are aligned to the Unix epoch
  -- (floor(epoch / per_seconds)), so every claimer agrees where one starts.
  window_start timestamptz,
  window_starts integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint jobforge_limits_key check (
    case
      when cost_tier is null then type is not null or tenant_id is not null
      else type is null and tenant_id is null
    end
  ),
  constraint jobforge_limits_something check (max_running is not null or max_starts is not null),
  constraint jobforge_limits_rate check ((max_starts is null) = (per_seconds is null)),
  -- A tier's cap is per template type; a shared rate per tier would be a different thing.
  constraint jobforge_limits_tier check (cost_tier is null or max_starts is null),
  constraint jobforge_limits_one_per_key unique nulls not distinct (type, tenant_id, cost_tier)
);

comment on table public.jobforge_limits is
  'JobForge concurrency and rate limits, kept by jobforge_claim_jobs. Written only through jobforge_set_limit / jobforge_delete_limit.';

alter table public.jobforge_limits enable row level security;

-- Limits are operator settings, read and written through the service-role RPCs only.
revoke all on table public.jobforge_limits from public, anon, authenticated, service_role;

-- The default caps of the cost tiers: a high-tier template (an LLM-heavy report, a broad
-- scan) runs at most 4 jobs at once, a medium one 16; low has none. Change them with
-- jobforge_set_limit(p_cost_tier => ...), remove one with jobforge_delete_limit.
insert into public.jobforge_limits (cost_tier, max_running)
values ('medium', 16), ('high', 4);

-- Why a limit's key is refused, as {field, reason}, or null when it is fine: a type, a
-- tenant, both, or a cost tier alone.
create function jobforge_private.limit_key_error(p_type text, p_tenant_id uuid, p_cost_tier text)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_cost_tier is not null then
    if p_cost_tier not in ('low', 'medium', 'high') then
      return '{"field": "cost_tier", "reason": "must be low, medium or high"}'::jsonb;
    elsif p_type is not null or p_tenant_id is not null then
      return '{"field": "cost_tier", "reason": "cannot be combined with type or tenant_id"}'::jsonb;
    end if;
  elsif p_type is null and p_tenant_id is null then
    return '{"field": "type", "reason": "type, tenant_id or cost_tier is required"}'::jsonb;
  end if;
  if p_type is not null and jobforge_private.type_error(p_type) is not null then
    return pg_catalog.jsonb_build_object('field', 'type', 'reason', jobforge_private.type_error(p_type));
  end if;
  return null;
end
$$;

-- Why a limit's key or caps are refused, as {field, reason}, or null when they are fine.
create function jobforge_private.limit_error(
  p_type text,
  p_tenant_id uuid,
  p_cost_tier text,
  p_max_running integer,
  p_max_starts integer,
  p_per_seconds integer
)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_key_error jsonb := jobforge_private.limit_key_error(p_type, p_tenant_id, p_cost_tier);
begin
  if v_key_error is not null then
    return v_key_error;
  end if;
  if p_cost_tier is not null and (p_max_starts is not null or p_per_seconds is not null) then
    return '{"field": "max_starts", "reason": "a cost tier limits running jobs only"}'::jsonb;
  end if;
  if p_max_running not between 0 and 1000000 then
    return '{"field": "max_running", "reason": "must be between 0 and 1000000"}'::jsonb;
  end if;
  if (p_max_starts is null) <> (p_per_seconds is null) then
    return case
      when p_max_starts is null then '{"field": "max_starts", "reason": "is required with per_seconds"}'::jsonb
      else '{"field": "per_seconds", "reason": "is required with max_starts"}'::jsonb
    end;
  end if;
  if p_max_running is null and p_max_starts is null then
    return '{"field": "max_running", "reason": "max_running or max_starts is required"}'::jsonb;
  end if;
  if p_max_starts not between 1 and 1000000 then
    return '{"field": "max_starts", "reason": "must be between 1 and 1000000"}'::jsonb;
  end if;
  if p_per_seconds not between 1 and 86400 then
    return '{"field": "per_seconds", "reason": "must be between 1 and 86400"}'::jsonb;
  end if;
  return null;
end
$$;

-- A limit as the RPCs answer it, with how many of the jobs it counts are running now.
create function jobforge_private.limit_json(p_limit public.jobforge_limits)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
  return pg_catalog.jsonb_build_object(
    'id', p_limit.id,
    'type', p_limit.type,
    'tenant_id', p_limit.tenant_id,
    'cost_tier', p_limit.cost_tier,
    'max_running', p_limit.max_running,
    'max_starts', p_limit.max_starts,
    'per_seconds', p_limit.per_seconds,
    'running', (
      select pg_catalog.count(*)
      from public.jobforge_jobs j
      where j.status = 'running'
        and (p_limit.type is null or j.type = p_limit.type)
        and (p_limit.tenant_id is null or j.tenant_id = p_limit.tenant_id)
        and (
          p_limit.cost_tier is null
          or j.type in (
            select t.template_key
            from public.jobforge_job_templates t
            where t.estimated_cost_tier = p_limit.cost_tier
          )
        )
    ),
    'created_at', p_limit.created_at,
    'updated_at', p_limit.updated_at
  );
end
$$;

-- Measure the limits a claim of these (type, tenant) queues must keep: per limit, its id,
-- key, and how many more of its jobs may start now (never below 0), as parallel arrays
-- (null when none applies), which is how the claim carries them between statements. With p_lock the rows are
-- locked first and stay locked until the claim's transaction ends, so a concurrent claim
-- under the same limit waits here and then counts what this one started; without it the
-- answer is an estimate, which the claim uses to choose jobs before it locks (see
-- jobforge_claim_jobs). Explicit limits of a pair's type, tenant or both apply; a cost
-- tier applies to each template type of its tier that has no type limit of its own, and
-- then counts that type's jobs only.
create function jobforge_private.claim_limits(
  p_types text[],
  p_tenants uuid[],
  p_lock boolean,
  out limit_ids uuid[],
  out types text[],
  out tenants uuid[],
  out available integer[]
)
language plpgsql
set search_path = ''
as $$
declare
  v_ids uuid[];
begin
  select pg_catalog.array_agg(a.id order by a.id)
  into v_ids
  from (
    select l.id
    from public.jobforge_limits l
    where l.cost_tier is null
      and (l.type is null or l.type = any (p_types))
      and (l.tenant_id is null or l.tenant_id = any (p_tenants))
    union
    select l.id
    from public.jobforge_limits l
    join public.jobforge_job_templates t on t.estimated_cost_tier = l.cost_tier
    where t.template_key = any (p_types)
  ) as a;
  if v_ids is null then
    return;
  end if;

  -- In id order, so two claims that need the same rows cannot deadlock.
  if p_lock then
    perform 1
    from public.jobforge_limits l
    where l.id = any (v_ids)
    order by l.id
    for update;
  end if;

  with keyed (limit_id, type, tenant_id, max_running, max_starts, per_seconds, window_start, window_starts) as (
    select l.id, l.type, l.tenant_id, l.max_running, l.max_starts, l.per_seconds, l.window_start, l.window_starts
    from public.jobforge_limits l
    where l.id = any (v_ids) and l.cost_tier is null
    union all
    select l.id, t.template_key, null::uuid, l.max_running, null::integer, null::integer, null::timestamptz, 0
    from public.jobforge_limits l
    join public.jobforge_job_templates t on t.estimated_cost_tier = l.cost_tier
    where l.id = any (v_ids)
      and t.template_key = any (p_types)
      and not exists (
        select 1
        from public.jobforge_limits o
        where o.type = t.template_key and o.tenant_id is null and o.cost_tier is null
      )
  )
  select
    pg_catalog.array_agg(k.limit_id),
    pg_catalog.array_agg(k.type),
    pg_catalog.array_agg(k.tenant_id),
    pg_catalog.array_agg(greatest(
      0,
      least(
        k.max_running - (
          select pg_catalog.count(*)::integer
          from public.jobforge_jobs j
          where j.status = 'running'
            and (k.type is null or j.type = k.type)
            and (k.tenant_id is null or j.tenant_id = k.tenant_id)
        ),
        k.max_starts - case
          when k.window_start = jobforge_private.rate_window(k.per_seconds) then k.window_starts
          else 0
        end
      )
    ))
  into limit_ids, types, tenants, available
  from keyed k;
end
$$;

-- The start of the rate window that now() falls in, for windows of p_seconds aligned to
-- the Unix epoch.
create function jobforge_private.rate_window(p_seconds integer)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
begin
  return pg_catalog.to_timestamp(
    pg_catalog.floor(extract(epoch from now()) / p_seconds) * p_seconds
  );
end
$$;

-- Create or change the limit of one key (type, tenant, type within a tenant, or cost
-- tier); a limit that changes per_seconds starts a new rate window. One limit_set audit
-- row, under the limit's tenant (none for a global one).
create function public.jobforge_set_limit(
  p_type text default null,
  p_tenant_id uuid default null,
  p_cost_tier text default null,
  p_max_running integer default null,
  p_max_starts integer default null,
  p_per_seconds integer default null,
  p_actor_id text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_error jsonb;
  v_limit public.jobforge_limits;
begin
  perform jobforge_private.assert_service_role();
  v_error := jobforge_private.limit_error(
    p_type, p_tenant_id, p_cost_tier, p_max_running, p_max_starts, p_per_seconds
  );
  if v_error is not null then
    perform jobforge_private.invalid(v_error ->> 'field', v_error ->> 'reason');
  end if;
  if jobforge_private.label_error(p_actor_id) is not null then
    perform jobforge_private.invalid('actor_id', jobforge_private.label_error(p_actor_id));
  end if;

  insert into public.jobforge_limits as l
    (type, tenant_id, cost_tier, max_running, max_starts, per_seconds)
  values (p_type, p_tenant_id, p_cost_tier, p_max_running, p_max_starts, p_per_seconds)
  on conflict on constraint jobforge_limits_one_per_key do update
  set
    max_running = excluded.max_running,
    max_starts = excluded.max_starts,
    per_seconds = excluded.per_seconds,
    window_start = case when l.per_seconds = excluded.per_seconds then l.window_start end,
    window_starts = case when l.per_seconds = excluded.per_seconds then l.window_starts else 0 end,
    updated_at = now()
  returning l.* into v_limit;

  perform jobforge_private.audit(
    p_tenant_id, null, 'limit_set', jobforge_private.audit_actor(p_actor_id), null, 'limit',
    v_limit.id::text, 'success', null,
    pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
      'type', p_type, 'cost_tier', p_cost_tier, 'max_running', p_max_running,
      'max_starts', p_max_starts, 'per_seconds', p_per_seconds
    ))
  );
  return jobforge_private.limit_json(v_limit);
end
$$;

comment on function public.jobforge_set_limit is
  'Create or change a concurrency/rate limit of a type, a tenant, a type within a tenant, or a template cost tier. service_role only.';

-- The limits, those of a type and/or a tenant when given (a tenant's own limits and its
-- limits per type; the global ones of a type), ordered by key.
create function public.jobforge_list_limits(
  p_type text default null,
  p_tenant_id uuid default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform jobforge_private.assert_service_role();
  if p_type is not null and jobforge_private.type_error(p_type) is not null then
    perform jobforge_private.invalid('type', jobforge_private.type_error(p_type));
  end if;
  return coalesce(
    (
      select pg_catalog.jsonb_agg(
        jobforge_private.limit_json(l)
        order by l.cost_tier nulls first, l.type nulls first, l.tenant_id nulls first
      )
      from public.jobforge_limits l
      where (p_type is null or l.type = p_type)
        and (p_tenant_id is null or l.tenant_id = p_tenant_id)
    ),
    '[]'::jsonb
  );
end
$$;

comment on function public.jobforge_list_limits is
  'List the concurrency/rate limits (optionally of a type and/or tenant), each with its running count. service_role only.';

-- Remove the limit of one key: PT404 when there is none. One limit_delete audit row.
create function public.jobforge_delete_limit(
  p_type text default null,
  p_tenant_id uuid default null,
  p_cost_tier text default null,
  p_actor_id text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_error jsonb;
  v_limit public.jobforge_limits;
begin
  perform jobforge_private.assert_service_role();
  v_error := jobforge_private.limit_key_error(p_type, p_tenant_id, p_cost_tier);
  if v_error is not null then
    perform jobforge_private.invalid(v_error ->> 'field', v_error ->> 'reason');
  end if;
  if jobforge_private.label_error(p_actor_id) is not null then
    perform jobforge_private.invalid('actor_id', jobforge_private.label_error(p_actor_id));
  end if;

  delete from public.jobforge_limits l
  where l.type is not distinct from p_type
    and l.tenant_id is not distinct from p_tenant_id
    and l.cost_tier is not distinct from p_cost_tier
  returning l.* into v_limit;
  if not found then
    raise exception using
      errcode = 'PT404',
      message = pg_catalog.format(
        'no limit for %s',
        pg_catalog.concat_ws(
          ', ', 'type ' || p_type, 'tenant ' || p_tenant_id, 'cost tier ' || p_cost_tier
        )
      );
  end if;

  perform jobforge_private.audit(
    p_tenant_id, null, 'limit_delete', jobforge_private.audit_actor(p_actor_id), null, 'limit',
    v_limit.id::text, 'success', null,
    pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
      'type', p_type, 'cost_tier', p_cost_tier, 'max_running', v_limit.max_running,
      'max_starts', v_limit.max_starts, 'per_seconds', v_limit.per_seconds
    ))
  );
  return jobforge_private.limit_json(v_limit);
end
$$;

comment on function public.jobforge_delete_limit is
  'Delete the concurrency/rate limit of a type, a tenant, a type within a tenant, or a cost tier. service_role only.';
