-- 25_workers: the RPCs only workers call (service_role): claim, heartbeat, complete
-- (one or a batch), release, and the reaper of jobs whose worker stopped heartbeating.

-- A random uuid between p_low and p_high (inclusive), for the random start of the claim's
-- tenant walk. uuids order bytewise, so this draws the first 60 bits between theirs (a
-- bigint holds them without a sign) and zeroes the rest; with p_high's first 60 bits not
-- above p_low's, p_low.
create function jobforge_private.uuid_between(p_low uuid, p_high uuid)
returns uuid
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_low bigint := ('x' || pg_catalog.left(pg_catalog.replace(p_low::text, '-', ''), 15))::bit(60)::bigint;
  v_high bigint := ('x' || pg_catalog.left(pg_catalog.replace(p_high::text, '-', ''), 15))::bit(60)::bigint;
  v_hex text;
begin
  if p_low is null or p_high is null or v_high <= v_low then
    return p_low;
  end if;
  v_hex := pg_catalog.lpad(
    -- least(): a double's rounding could land one past p_high.
    pg_catalog.to_hex(
      least(v_high, v_low + pg_catalog.floor(pg_catalog.random() * (v_high - v_low + 1))::bigint)
    ),
    15,
    '0'
  );
  return (v_hex || '00000000000000000')::uuid;
end
$$;

-- Claiming is fair and keeps the limits of 27_limits.sql. The due queued jobs form one
-- queue per (type, tenant), each in priority order (higher first), then run_at. A claim of
-- N jobs:
--   1. finds the queues of the types asked for (skip scans of jobforge_jobs_claim_by_type:
--      one probe per type and per tenant of a type, never a walk past a backlog), at most
--      N of them, walking the tenants of each type from a random point between its lowest
--      and highest tenant so that, with more tenants than N, each claim serves a
--      different slice of them;
--   2. estimates, without locks, what the limits that apply to those queues still admit
--      (claim_limits);
--   3. takes jobs tenant by tenant in rounds: each tenant with due jobs gets an equal
--      share of what is left (ceil(left / tenants)), from its own queues in priority order;
--      a tenant that could not fill its share drops out, and the others share the rest in
--      the next round. So a tenant with 100,000 queued jobs gets no more of a claim than
--      a tenant with 10 until the small one runs out, and priority orders each tenant's
--      own jobs (one tenant's high priority never starves another tenant);
--   4. locks those limits, counts again, and keeps of what the rounds locked only what
--      every limit admits now: per limit, in the order the rounds took them, up to what
--      it has available.
-- A claim with one type of one tenant's jobs and no limit that applies (a worker of one
-- queue) skips the rounds: it takes the first N of that queue, as a plain claim would.
-- Rows are locked with FOR UPDATE SKIP LOCKED, so concurrent claims take different jobs.
-- A round locks up to a share per queue and keeps a share per tenant, so a claim locks
-- at most N plus one share per extra queue of a tenant, and releases the surplus when it
-- commits a moment later.
create function public.jobforge_claim_jobs(
  p_worker_id text,
  p_limit integer default 10,
  p_types text[] default null
)
returns json
language plpgsql
security definer
set search_path = ''
-- Plan each statement once per session. Left to choose, PostgreSQL keeps re-planning
-- the queue walk and the rounds on every call (their generic plans look dearer than the
-- custom ones, though they are the same plans), and planning them costs more than
-- running them: 5.1 instead of 6.0 ms per claim of 100 over 4 tenants, measured.
set plan_cache_mode = force_generic_plan
as $$
declare
  v_reason text;
  v_rows json;
  -- The queues found in step 1, as parallel arrays (plpgsql has no table variables).
  v_queue_types text[];
  v_queue_tenants uuid[];
  -- The limits of step 2: id, key and how many more jobs each admits.
  v_limit_ids uuid[];
  v_limit_types text[];
  v_limit_tenants uuid[];
  v_limit_available integer[];
  -- What the rounds of step 3 took, in the order they took it.
  v_ids uuid[] := '{}'::uuid[];
  v_types text[] := '{}'::text[];
  v_tenants uuid[] := '{}'::uuid[];
  v_round_ids uuid[];
  v_round_types text[];
  v_round_tenants uuid[];
  -- The tenants still in the running, and the share each gets this round.
  v_open uuid[];
  v_share integer;
  v_left integer;
  v_round integer := 0;
  v_first uuid;
  v_last uuid;
  v_first_type text;
  v_last_type text;
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

  -- 1. The queues. Every type means the types that have queued jobs, found by a skip scan
  -- of the index's first column. The tenants of each type are walked in two halves, from
  -- a random start up and then from the lowest tenant up to the start, each a skip scan
  -- that stops after p_limit tenants. The queues are then taken round-robin over the types (the
  -- first tenant of every type, then the second, ...), at most p_limit of them. Each probe
  -- orders by the whole key of jobforge_jobs_claim_by_type, which only that index reads
  -- in order: with a shorter ORDER BY the planner may take the tenant index
  -- (jobforge_jobs_tenant_created) instead, and walk past every finished job of the
  -- tenants in between.
  --
  -- One type whose queued jobs are all one tenant's (a worker of one queue, the common
  -- case), or a claim of every type while the queued jobs are all one type of one
  -- tenant's, is one queue: the first and last entries of the index agree, two probes
  -- instead of the walk below.
  if pg_catalog.cardinality(p_types) = 1 then
    select q.tenant_id into v_first
    from public.jobforge_jobs q
    where q.status = 'queued' and q.type = p_types[pg_catalog.array_lower(p_types, 1)]
    order by q.type, q.tenant_id, q.priority desc, q.run_at, q.id
    limit 1;
    if v_first is null then
      return '[]'::json;
    end if;
    select q.tenant_id into v_last
    from public.jobforge_jobs q
    where q.status = 'queued' and q.type = p_types[pg_catalog.array_lower(p_types, 1)]
    order by q.type desc, q.tenant_id desc, q.priority, q.run_at desc, q.id desc
    limit 1;
    if v_first = v_last then
      v_queue_types := array[p_types[pg_catalog.array_lower(p_types, 1)]];
      v_queue_tenants := array[v_first];
    end if;
  elsif p_types is null then
    -- Every type: the same two probes over the whole index.
    select q.type, q.tenant_id into v_first_type, v_first
    from public.jobforge_jobs q
    where q.status = 'queued'
    order by q.type, q.tenant_id, q.priority desc, q.run_at, q.id
    limit 1;
    if v_first is null then
      return '[]'::json;
    end if;
    select q.type, q.tenant_id into v_last_type, v_last
    from public.jobforge_jobs q
    where q.status = 'queued'
    order by q.type desc, q.tenant_id desc, q.priority, q.run_at desc, q.id desc
    limit 1;
    if v_first_type = v_last_type and v_first = v_last then
      v_queue_types := array[v_first_type];
      v_queue_tenants := array[v_first];
    end if;
  end if;

  if v_queue_types is null then
    select
      pg_catalog.array_agg(q.type order by q.n, q.type),
      pg_catalog.array_agg(q.tenant_id order by q.n, q.type)
    into v_queue_types, v_queue_tenants
    from (
      select w.type, w.tenant_id, w.n
      from (
        select distinct t.type
        from pg_catalog.unnest(p_types) as t (type)
        where t.type is not null
        union all
        (
          with recursive queued (type) as (
            (
              select q.type
              from public.jobforge_jobs q
              where q.status = 'queued' and p_types is null
              order by q.type, q.tenant_id, q.priority desc, q.run_at, q.id
              limit 1
            )
            union all
            select (
              select q.type
              from public.jobforge_jobs q
              where q.status = 'queued' and q.type > queued.type
              order by q.type, q.tenant_id, q.priority desc, q.run_at, q.id
              limit 1
            )
            from queued
            where queued.type is not null
          )
          select queued.type from queued where queued.type is not null
        )
      ) as t
      -- Where the walk of the type's tenants starts: a random point between its lowest
      -- and highest queued tenant, so that tenant ids clustered in one corner of the
      -- uuid space (time-ordered ids) are rotated through as random ones are.
      cross join lateral (
        select jobforge_private.uuid_between(
          (
            select q.tenant_id
            from public.jobforge_jobs q
            where q.status = 'queued' and q.type = t.type
            order by q.type, q.tenant_id, q.priority desc, q.run_at, q.id
            limit 1
          ),
          (
            select q.tenant_id
            from public.jobforge_jobs q
            where q.status = 'queued' and q.type = t.type
            order by q.type desc, q.tenant_id desc, q.priority, q.run_at desc, q.id desc
            limit 1
          )
        ) as start
      ) as s
      cross join lateral (
        with recursive upper_half (tenant_id, n) as (
          (
            select q.tenant_id, 1
            from public.jobforge_jobs q
            where q.status = 'queued' and q.type = t.type and q.tenant_id >= s.start
            order by q.type, q.tenant_id, q.priority desc, q.run_at, q.id
            limit 1
          )
          union all
          select nx.tenant_id, u.n + 1
          from upper_half u
          cross join lateral (
            select q.tenant_id
            from public.jobforge_jobs q
            where q.status = 'queued' and q.type = t.type and q.tenant_id > u.tenant_id
            order by q.type, q.tenant_id, q.priority desc, q.run_at, q.id
            limit 1
          ) as nx
          where u.n < p_limit
        ),
        lower_half (tenant_id, n) as (
          (
            select q.tenant_id, 1
            from public.jobforge_jobs q
            where q.status = 'queued' and q.type = t.type and q.tenant_id < s.start
            order by q.type, q.tenant_id, q.priority desc, q.run_at, q.id
            limit 1
          )
          union all
          select nx.tenant_id, d.n + 1
          from lower_half d
          cross join lateral (
            select q.tenant_id
            from public.jobforge_jobs q
            where q.status = 'queued' and q.type = t.type
              and q.tenant_id > d.tenant_id and q.tenant_id < s.start
            order by q.type, q.tenant_id, q.priority desc, q.run_at, q.id
            limit 1
          ) as nx
          where d.n < p_limit
        )
        select t.type, h.tenant_id, h.n
        from (
          select u.tenant_id, u.n from upper_half u
          union all
          select d.tenant_id, d.n + (select pg_catalog.count(*) from upper_half)::integer
          from lower_half d
        ) as h
        where h.n <= p_limit
      ) as w
      order by w.n, w.type
      limit p_limit
    ) as q;

  end if;

  if v_queue_types is null then
    return '[]'::json;
  end if;

  -- 2. The limits, estimated without locks (step 4 counts again under them). One probe
  -- answers the common case of none that could apply: no limit
  -- of a type or tenant, and (cost tiers count template jobs only, whose types are in the
  -- reserved autopilot.* namespace) no template type among the queues.
  if exists (
    select 1
    from public.jobforge_limits l
    where l.cost_tier is null
      or exists (
        select 1 from pg_catalog.unnest(v_queue_types) as q (type) where q.type like 'autopilot.%'
      )
  ) then
    select l.limit_ids, l.types, l.tenants, l.available
    into v_limit_ids, v_limit_types, v_limit_tenants, v_limit_available
    from jobforge_private.claim_limits(v_queue_types, v_queue_tenants, false) as l;
  end if;

  -- 3. The rounds. A round locks, from each queue of an open tenant, up to the share
  -- (less when a limit has less available than that, counting what earlier rounds took),
  -- and keeps the first share of each tenant in priority order. A tenant that kept a full
  -- share stays open. The jobs taken earlier are excluded by id: SKIP LOCKED skips the
  -- locks of other transactions only. Each round closes at least one tenant or fills the
  -- claim, so few are needed; eight bound the work when concurrent claims keep taking
  -- the rows a round counted on.
  -- One queue and no limit: nothing to share, so the plain claim of its first p_limit.
  if pg_catalog.cardinality(v_queue_types) = 1 and v_limit_ids is null then
    v_ids := array(
      select j.id
      from public.jobforge_jobs j
      where j.status = 'queued'
        and j.type = v_queue_types[1]
        and j.tenant_id = v_queue_tenants[1]
        and j.run_at <= now()
      order by j.priority desc, j.run_at, j.id
      limit p_limit
      for update skip locked
    );
    v_open := '{}'::uuid[];
  else
    select pg_catalog.array_agg(distinct t) into v_open from pg_catalog.unnest(v_queue_tenants) as t;
  end if;
  v_left := p_limit - pg_catalog.cardinality(v_ids);
  while v_left > 0 and pg_catalog.cardinality(v_open) > 0 and v_round < 8 loop
    v_round := v_round + 1;
    v_share := (v_left + pg_catalog.cardinality(v_open) - 1) / pg_catalog.cardinality(v_open);

    select
      coalesce(pg_catalog.array_agg(k.id order by k.rank, k.tenant_id), '{}'::uuid[]),
      coalesce(pg_catalog.array_agg(k.type order by k.rank, k.tenant_id), '{}'::text[]),
      coalesce(pg_catalog.array_agg(k.tenant_id order by k.rank, k.tenant_id), '{}'::uuid[])
    into v_round_ids, v_round_types, v_round_tenants
    from (
      select c.id, c.type, c.tenant_id, c.rank
      from (
        select
          l.id,
          q.type,
          q.tenant_id,
          pg_catalog.row_number() over (
            partition by q.tenant_id order by l.priority desc, l.run_at, l.id
          ) as rank
        from rows from (pg_catalog.unnest(v_queue_types), pg_catalog.unnest(v_queue_tenants))
          as q (type, tenant_id)
        -- room: the share, or less when a limit of the queue has less available than
        -- that, after what earlier rounds took under it.
        cross join lateral (
          select coalesce(
            least(
              v_share,
              (
                select pg_catalog.min(
                  a.available - (
                    select pg_catalog.count(*)::integer
                    from rows from (pg_catalog.unnest(v_types), pg_catalog.unnest(v_tenants))
                      as u (type, tenant_id)
                    where (a.type is null or u.type = a.type)
                      and (a.tenant_id is null or u.tenant_id = a.tenant_id)
                  )
                )
                from rows from (
                  pg_catalog.unnest(v_limit_types),
                  pg_catalog.unnest(v_limit_tenants),
                  pg_catalog.unnest(v_limit_available)
                ) as a (type, tenant_id, available)
                where (a.type is null or a.type = q.type)
                  and (a.tenant_id is null or a.tenant_id = q.tenant_id)
              )
            ),
            v_share
          ) as room
        ) as r
        cross join lateral (
          select j.id, j.priority, j.run_at
          from public.jobforge_jobs j
          where j.status = 'queued'
            and j.type = q.type
            and j.tenant_id = q.tenant_id
            and j.run_at <= now()
            and j.id <> all (v_ids)
          order by j.priority desc, j.run_at, j.id
          limit greatest(r.room, 0)
          for update skip locked
        ) as l
        where q.tenant_id = any (v_open)
      ) as c
      where c.rank <= v_share
      -- Equal shares can add up to a few more than are left: the last tenants of the
      -- last rank give them back.
      order by c.rank, c.tenant_id
      limit v_left
    ) as k;

    exit when pg_catalog.cardinality(v_round_ids) = 0;
    v_ids := v_ids || v_round_ids;
    v_types := v_types || v_round_types;
    v_tenants := v_tenants || v_round_tenants;
    v_left := p_limit - pg_catalog.cardinality(v_ids);
    exit when v_left = 0;

    select coalesce(pg_catalog.array_agg(k.tenant_id), '{}'::uuid[])
    into v_open
    from (
      select r.tenant_id
      from pg_catalog.unnest(v_round_tenants) as r (tenant_id)
      group by r.tenant_id
      having pg_catalog.count(*) >= v_share
    ) as k;
  end loop;

  -- 4. What every limit admits, counted under the limits' locks. Step 2 only estimated
  -- it, without locks, to choose the jobs: a claim holds the lock of a limit from here to
  -- its commit, and claims under one limit wait for each other, so the rounds are kept
  -- out of that stretch. Several queues under one limit (a type limit over many
  -- tenants), or a claim that committed meanwhile, may leave less available than the
  -- rounds took; the first ones, in the order taken, are kept. A job no limit counts is
  -- kept.
  if v_limit_ids is not null and pg_catalog.cardinality(v_ids) > 0 then
    select l.limit_ids, l.types, l.tenants, l.available
    into v_limit_ids, v_limit_types, v_limit_tenants, v_limit_available
    from jobforge_private.claim_limits(v_queue_types, v_queue_tenants, true) as l;
  end if;
  if v_limit_ids is not null and pg_catalog.cardinality(v_ids) > 0 then
    select coalesce(pg_catalog.array_agg(k.id), '{}'::uuid[])
    into v_ids
    from (
      select x.id
      from (
        select
          c.id,
          a.available,
          pg_catalog.count(*) over (partition by a.ord order by c.taken) as nth
        from rows from (
          pg_catalog.unnest(v_ids), pg_catalog.unnest(v_types), pg_catalog.unnest(v_tenants)
        ) with ordinality as c (id, type, tenant_id, taken)
        left join rows from (
          pg_catalog.unnest(v_limit_types),
          pg_catalog.unnest(v_limit_tenants),
          pg_catalog.unnest(v_limit_available)
        ) with ordinality as a (type, tenant_id, available, ord)
          on (a.type is null or a.type = c.type)
          and (a.tenant_id is null or a.tenant_id = c.tenant_id)
      ) as x
      group by x.id
      having pg_catalog.bool_and(x.available is null or x.nth <= x.available)
    ) as k;
  end if;

  if pg_catalog.cardinality(v_ids) = 0 then
    return '[]'::json;
  end if;

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
    where j.id = any (v_ids)
    returning j.*
  )
  -- json, not jsonb: the answer is only ever sent, and json_agg builds text directly.
  select coalesce(pg_catalog.json_agg(c order by c.priority desc, c.run_at, c.id), '[]'::json)
  into v_rows
  from claimed c;

  -- Rate limits count the starts of their window.
  if v_limit_ids is not null then
    update public.jobforge_limits l
    set
      window_starts = case
        when l.window_start = jobforge_private.rate_window(l.per_seconds) then l.window_starts
        else 0
      end + s.started,
      window_start = jobforge_private.rate_window(l.per_seconds)
    from (
      select a.limit_id, pg_catalog.count(*)::integer as started
      from rows from (
        pg_catalog.unnest(v_limit_ids),
        pg_catalog.unnest(v_limit_types),
        pg_catalog.unnest(v_limit_tenants)
      ) as a (limit_id, type, tenant_id)
      join public.jobforge_jobs j
        on j.id = any (v_ids)
        and (a.type is null or j.type = a.type)
        and (a.tenant_id is null or j.tenant_id = a.tenant_id)
      group by a.limit_id
    ) as s
    where l.id = s.limit_id and l.max_starts is not null;
  end if;

  return v_rows;
end
$$;

comment on function public.jobforge_claim_jobs is
  'Claim up to p_limit due queued jobs (optionally of p_types) for a worker. service_role only.';

-- The opening checks of every RPC a worker makes about a job it holds (heartbeat,
-- complete, release): the caller is trusted, and names a job and itself.
create function jobforge_private.assert_worker_call(p_job_id uuid, p_worker_id text)
returns void
language plpgsql
stable
set search_path = ''
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

comment on function public.jobforge_heartbeat_job is
  'Record that the worker holding a running job is alive. service_role only.';

-- One heartbeat for every job a worker holds: one statement and one commit per beat,
-- however many jobs run. A job the worker no longer holds (canceled, or reaped after a
-- stall) is not an error here: it is left out of the answer, which is how the worker
-- learns of it.
create function public.jobforge_heartbeat_jobs(p_worker_id text, p_job_ids uuid[])
returns json
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_reason text;
  v_held json;
begin
  perform jobforge_private.assert_service_role();
  v_reason := jobforge_private.worker_id_error(p_worker_id);
  if v_reason is not null then
    perform jobforge_private.invalid('worker_id', v_reason);
  end if;
  if p_job_ids is null or pg_catalog.cardinality(p_job_ids) = 0 then
    perform jobforge_private.invalid('job_ids', 'must be a non-empty array');
  end if;
  if pg_catalog.cardinality(p_job_ids) > 1000 then
    perform jobforge_private.invalid('job_ids', 'at most 1000 jobs per heartbeat');
  end if;
  if pg_catalog.array_position(p_job_ids, null) is not null then
    perform jobforge_private.invalid('job_ids', 'must not contain null');
  end if;

  with beaten as (
    update public.jobforge_jobs j
    set heartbeat_at = now()
    where j.id = any (p_job_ids)
      and j.status = 'running'
      and j.locked_by = p_worker_id
    returning j.id
  )
  select coalesce(pg_catalog.json_agg(b.id order by b.id), '[]'::json)
  into v_held
  from beaten b;
  return v_held;
end
$$;

comment on function public.jobforge_heartbeat_jobs is
  'Heartbeat every listed job the worker still holds; answers the ids it holds (the others are gone). service_role only.';

-- The retry policy: after attempt n fails, wait 2^(n-1) seconds, at most an hour.
-- jobforge_complete_jobs writes the same expression out rather than calling this once per
-- failed job (see there).
create function jobforge_private.retry_delay(p_attempts integer)
returns interval
language plpgsql
immutable
set search_path = ''
as $$
begin
  return pg_catalog.make_interval(
    secs => least(pg_catalog.power(2::double precision, p_attempts - 1), 3600)
  );
end
$$;

create function public.jobforge_complete_job(
  p_job_id uuid,
  p_worker_id text,
  p_status text,
  p_error jsonb default null,
  p_result jsonb default null,
  p_artifact_ref text default null,
  p_retryable boolean default true
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_job public.jobforge_jobs;
  v_succeeded boolean;
  v_retry boolean;
  v_reason text;
begin
  perform jobforge_private.assert_worker_call(p_job_id, p_worker_id);
  if p_status is null or p_status not in ('succeeded', 'failed') then
    perform jobforge_private.invalid('status', 'must be succeeded or failed');
  end if;
  if pg_catalog.char_length(p_artifact_ref) > 2048 then
    perform jobforge_private.invalid('artifact_ref', 'must be at most 2048 characters');
  end if;
  -- The caps of models/jobs.py: a result as big as a payload, an error far smaller.
  v_reason := jobforge_private.json_error(p_result, 1048576);
  if v_reason is not null then
    perform jobforge_private.invalid('result', v_reason);
  end if;
  v_reason := jobforge_private.json_error(p_error, 65536);
  if v_reason is not null then
    perform jobforge_private.invalid('error', v_reason);
  end if;

  v_succeeded := p_status = 'succeeded';
  -- A failure the worker knows cannot succeed on retry (input the template's schema
  -- refuses, a handler's NonRetryableError) says p_retryable = false: spending the
  -- remaining attempts on it would only delay the verdict and load the queue. Null is
  -- the default, as if the argument were left out.
  v_retry := not v_succeeded and coalesce(p_retryable, true);

  -- Only the holder may finish the job. A retryable failure with attempts left goes back
  -- to the queue after 1, 2, 4, ... seconds (at most an hour); the last failure, or one
  -- that is not retryable, makes it dead.
  update public.jobforge_jobs j
  set
    status = case
      when v_succeeded then 'succeeded'
      when v_retry and j.attempts < j.max_attempts then 'queued'
      else 'dead'
    end,
    run_at = case
      when v_retry and j.attempts < j.max_attempts then
        now() + jobforge_private.retry_delay(j.attempts)
      else j.run_at
    end,
    finished_at = case
      when v_retry and j.attempts < j.max_attempts then null
      else now()
    end,
    -- The error of the last failed attempt; the history is in jobforge_job_attempts.
    error = case when v_succeeded then null else p_error end,
    result = case when v_succeeded then p_result end,
    artifact_ref = case when v_succeeded then p_artifact_ref end,
    finished_by = case when v_succeeded then p_worker_id end,
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

  -- A success stays on the job row; a failure gets its attempt row.
  if not v_succeeded then
    insert into public.jobforge_job_attempts
      (job_id, tenant_id, attempt, worker_id, status, error, started_at)
    values
      (v_job.id, v_job.tenant_id, v_job.attempts, p_worker_id, 'failed', p_error, v_job.started_at);
  end if;

  return pg_catalog.to_jsonb(v_job);
end
$$;

comment on function public.jobforge_complete_job is
  'Finish a held job: succeeded keeps the result on the job row; failed retries with backoff or makes it dead (at once when p_retryable is false). service_role only.';

-- Take back the running jobs whose worker is gone, and those whose attempt ran past its
-- timeout. Gone: no heartbeat (or, before the first, no claim) for p_timeout; the
-- attempt is recorded as lost and the job is due again at once (the run was not its
-- fault). Past its timeout: now() is later than started_at + timeout_ms, whether or not
-- its worker still heartbeats (a handler the worker could not stop, a worker that
-- predates timeouts); the attempt is recorded as timed_out with an error of type
-- JobTimeout, and the job is retried with the backoff of a failure (or made dead when
-- no attempt is left), as when the worker itself reports the timeout. Either way the job
-- is no longer locked by its worker, so a late completion or heartbeat from it is refused
-- (PT409). A job both silent and past its timeout counts as timed out.
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
  -- alone (and is no longer stale once that commits). The conditions (silent worker,
  -- attempt past its timeout) are checked on every running job: the running set is as
  -- small as the workers' slots, and jobforge_jobs_running holds exactly it, so the
  -- statement reads no finished job.
  with stale as (
    select
      j.id,
      j.locked_by,
      j.timeout_ms is not null
        and j.started_at + j.timeout_ms * interval '1 millisecond' < now()
        as timed_out
    from public.jobforge_jobs j
    where j.status = 'running'
      and (
        j.heartbeat_at < v_cutoff
        or (j.heartbeat_at is null and j.locked_at < v_cutoff)
        or (
          j.timeout_ms is not null
          and j.started_at + j.timeout_ms * interval '1 millisecond' < now()
        )
      )
    for update skip locked
  ),
  reaped as (
    update public.jobforge_jobs j
    set
      status = case when j.attempts >= j.max_attempts then 'dead' else 'queued' end,
      run_at = case
        when j.attempts >= j.max_attempts then j.run_at
        when s.timed_out then now() + jobforge_private.retry_delay(j.attempts)
        else now()
      end,
      finished_at = case when j.attempts >= j.max_attempts then now() end,
      error = case
        when s.timed_out then pg_catalog.jsonb_build_object(
          'type', 'JobTimeout',
          'message', pg_catalog.format(
            'attempt %s ran past its timeout of %s ms (worker %s still held it)',
            j.attempts, j.timeout_ms, s.locked_by
          ),
          'timeout_ms', j.timeout_ms
        )
        else pg_catalog.jsonb_build_object(
          'type', 'WorkerLost',
          'message', pg_catalog.format('worker %s stopped heartbeating', s.locked_by)
        )
      end,
      locked_by = null,
      locked_at = null,
      heartbeat_at = null,
      updated_at = now()
    from stale s
    where j.id = s.id
    returning j.id, j.tenant_id, j.attempts, j.started_at, j.status, j.error, s.locked_by,
      s.timed_out
  ),
  recorded as (
    insert into public.jobforge_job_attempts
      (job_id, tenant_id, attempt, worker_id, status, error, started_at)
    select r.id, r.tenant_id, r.attempts, r.locked_by,
      case when r.timed_out then 'timed_out' else 'lost' end, r.error, r.started_at
    from reaped r
  )
  select pg_catalog.count(*), pg_catalog.count(*) filter (where r.status = 'queued')
  into v_reaped, v_requeued
  from reaped r;

  -- Requeued jobs may be due at once: wake idle workers as an enqueue would.
  if v_requeued > 0 then
    perform pg_catalog.pg_notify('jobforge_jobs', '');
  end if;

  return v_reaped;
end
$$;

comment on function public.jobforge_reap_stale_jobs is
  'Requeue (or make dead) running jobs without a heartbeat for p_timeout (attempt lost), and running jobs past started_at + timeout_ms even while heartbeating (attempt timed_out, retried with backoff); returns how many. service_role only.';

create function public.jobforge_release_job(p_job_id uuid, p_worker_id text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_job public.jobforge_jobs;
begin
  perform jobforge_private.assert_worker_call(p_job_id, p_worker_id);

  -- The claim counted this attempt; an interrupted run gives it back, so a job is never
  -- made dead by deploys alone. It is due again at once.
  update public.jobforge_jobs j
  set
    status = 'queued',
    attempts = greatest(j.attempts - 1, 0),
    run_at = now(),
    locked_by = null,
    locked_at = null,
    heartbeat_at = null,
    started_at = null,
    updated_at = now()
  where j.id = p_job_id
    and j.status = 'running'
    and j.locked_by = p_worker_id
  returning j.* into v_job;

  if not found then
    perform jobforge_private.raise_not_held(p_job_id, p_worker_id);
  end if;

  perform pg_catalog.pg_notify('jobforge_jobs', v_job.type);
  return pg_catalog.to_jsonb(v_job);
end
$$;

comment on function public.jobforge_release_job is
  'Hand a held job back to the queue unfinished, without counting the attempt. service_role only.';

-- Finish a batch of held jobs in one statement and one commit. The per-job RPC costs a
-- commit (an fsync) per job, which caps a worker far below what claiming in batches
-- allows. Semantics are jobforge_complete_job's, applied to every element; the batch is
-- all or nothing: if any job is not held by the worker, nothing is recorded (PT409 naming
-- it) and the worker can fall back to completing one by one.
create function public.jobforge_complete_jobs(
  p_worker_id text,
  p_results jsonb,
  p_returning text default 'rows'
)
returns json
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_reason text;
  v_given integer;
  v_done integer;
  v_bad record;
  v_rows json;
  v_done_ids uuid[];
  v_missing uuid;
  v_message constant text :=
    'must be an object {job_id (uuid), status (succeeded|failed), result (at most 1 MiB), '
    || 'error (at most 64 KiB), artifact_ref (at most 2048 characters), retryable (boolean)} '
    || 'and nothing else, its JSON nested at most 64 levels deep';
begin
  perform jobforge_private.assert_service_role();
  v_reason := jobforge_private.worker_id_error(p_worker_id);
  if v_reason is not null then
    perform jobforge_private.invalid('worker_id', v_reason);
  end if;
  if p_results is null
    or pg_catalog.jsonb_typeof(p_results) <> 'array'
    or pg_catalog.jsonb_array_length(p_results) = 0 then
    perform jobforge_private.invalid('results', 'must be a non-empty JSON array');
  end if;
  if pg_catalog.jsonb_array_length(p_results) > 1000 then
    perform jobforge_private.invalid('results', 'at most 1000 results per batch');
  end if;
  if p_returning is null or p_returning not in ('rows', 'ids') then
    perform jobforge_private.invalid('returning', 'must be rows or ids');
  end if;

  -- Element checks, first failure named by its index. Whether job_id is a uuid is found
  -- out by casting it, below (a regular expression here cost more than the cast).
  select e.ordinality - 1 as idx, e.value
  into v_bad
  from pg_catalog.jsonb_array_elements(p_results) with ordinality as e(value, ordinality)
  where pg_catalog.jsonb_typeof(e.value) <> 'object'
    or e.value - '{job_id,status,result,error,artifact_ref,retryable}'::text[] <> '{}'::jsonb
    or coalesce(e.value ->> 'status', '') not in ('succeeded', 'failed')
    or coalesce(pg_catalog.jsonb_typeof(e.value -> 'retryable'), 'null') not in ('boolean', 'null')
    or pg_catalog.jsonb_typeof(e.value -> 'job_id') is distinct from 'string'
    or pg_catalog.char_length(e.value ->> 'artifact_ref') > 2048
    or pg_catalog.octet_length((e.value -> 'result')::text) > 1048576
    or pg_catalog.octet_length((e.value -> 'error')::text) > 65536
    -- json_depth_error (00_private.sql) of result and error, one level below the element,
    -- walked only when the element is big enough to be that deep (see json_depth_error)
    or (
      pg_catalog.pg_column_size(e.value) > 256
      and pg_catalog.jsonb_path_exists(
        e.value, 'strict $.**{65} ? (@.type() == "object" || @.type() == "array")'
      )
    )
  order by e.ordinality
  limit 1;
  if found then
    perform jobforge_private.invalid(pg_catalog.format('results[%s]', v_bad.idx), v_message);
  end if;

  begin
    select count(distinct (e.value ->> 'job_id')::uuid), count(*)
    into v_done, v_given
    from pg_catalog.jsonb_array_elements(p_results) e;
  exception
    when invalid_text_representation then
      -- Name the first job_id that is not a uuid.
      for v_bad in
        select e.ordinality - 1 as idx, e.value
        from pg_catalog.jsonb_array_elements(p_results) with ordinality as e(value, ordinality)
        order by e.ordinality
      loop
        begin
          perform (v_bad.value ->> 'job_id')::uuid;
        exception
          when invalid_text_representation then
            perform jobforge_private.invalid(pg_catalog.format('results[%s]', v_bad.idx), v_message);
        end;
      end loop;
      raise;
  end;
  if v_done <> v_given then
    perform jobforge_private.invalid('results', 'a job appears more than once');
  end if;

  -- MATERIALIZED: parsed once. When statistics lag behind a busy queue, the planner
  -- may put the input on the inner side of a nested loop; unmaterialized, that parsed
  -- the whole array again for every job (25 ms instead of 5 for 100 jobs, measured).
  with input as materialized (
    select
      (e.value ->> 'job_id')::uuid as job_id,
      e.value ->> 'status' = 'succeeded' as succeeded,
      -- As p_retryable of jobforge_complete_job: a failure that may be tried again.
      e.value ->> 'status' <> 'succeeded'
        and coalesce((e.value ->> 'retryable')::boolean, true) as retry,
      e.value -> 'result' as result,
      e.value -> 'error' as error,
      e.value ->> 'artifact_ref' as artifact_ref,
      e.ordinality
    from pg_catalog.jsonb_array_elements(p_results) with ordinality as e(value, ordinality)
  ),
  done as (
    update public.jobforge_jobs j
    set
      status = case
        when i.succeeded then 'succeeded'
        when i.retry and j.attempts < j.max_attempts then 'queued'
        else 'dead'
      end,
      run_at = case
        when i.retry and j.attempts < j.max_attempts then
          -- jobforge_private.retry_delay(j.attempts), written out: a function call per
          -- failed job cannot be inlined, and adds some 3 ms to 1,000 failures
          -- (00_private.sql). Change both together.
          now() + pg_catalog.make_interval(
            secs => least(pg_catalog.power(2::double precision, j.attempts - 1), 3600)
          )
        else j.run_at
      end,
      finished_at = case
        when i.retry and j.attempts < j.max_attempts then null
        else now()
      end,
      error = case when i.succeeded then null else i.error end,
      result = case when i.succeeded then i.result end,
      artifact_ref = case when i.succeeded then i.artifact_ref end,
      finished_by = case when i.succeeded then p_worker_id end,
      locked_by = null,
      locked_at = null,
      heartbeat_at = null,
      updated_at = now()
    from input i
    where j.id = i.job_id
      and j.status = 'running'
      and j.locked_by = p_worker_id
    -- The whole row as one column (the answer), and what the inserts below need.
    returning j as job, j.id, j.tenant_id, j.attempts, j.error, j.started_at,
      i.succeeded, i.ordinality
  ),
  -- A success stays on the job row; each failure gets its attempt row.
  failures as (
    insert into public.jobforge_job_attempts
      (job_id, tenant_id, attempt, worker_id, status, error, started_at)
    select d.id, d.tenant_id, d.attempts, p_worker_id, 'failed', d.error, d.started_at
    from done d
    where not d.succeeded
  )
  select
    count(*),
    pg_catalog.array_agg(d.id),
    -- The worker reads nothing back: 'ids' spares building the rows. FILTER, not CASE:
    -- a CASE around two aggregates computes both.
    coalesce(
      pg_catalog.json_agg(d.id order by d.ordinality) filter (where p_returning = 'ids'),
      pg_catalog.json_agg(d.job order by d.ordinality) filter (where p_returning = 'rows')
    )
  into v_done, v_done_ids, v_rows
  from done d;

  if v_done <> v_given then
    -- Name the first job that was not held; raising rolls the whole batch back.
    select (e.value ->> 'job_id')::uuid
    into v_missing
    from pg_catalog.jsonb_array_elements(p_results) with ordinality as e(value, ordinality)
    where (e.value ->> 'job_id')::uuid <> all (coalesce(v_done_ids, '{}'))
    order by e.ordinality
    limit 1;
    perform jobforge_private.raise_not_held(v_missing, p_worker_id);
  end if;
  return v_rows;
end
$$;

comment on function public.jobforge_complete_jobs is
  'Finish up to 1000 held jobs in one statement, all or nothing (as jobforge_complete_job each); answers the rows, or with p_returning ''ids'' the ids. service_role only.';
