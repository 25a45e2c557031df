-- JobForge worker support: what the worker and the cron scheduler need beyond 001/002.
--
-- * jobforge_release_job: a worker shutting down hands a job it holds back to the queue
--   without counting the attempt (it did not fail; it was interrupted).
-- * jobforge_list_cron_triggers: the scheduler's view of every enabled cron trigger of
--   every tenant, with the last slot fired, so that any number of schedulers compute the
--   same due slots, and a restarted one knows where it left off.
-- Conventions as in 001: SECURITY DEFINER, search_path '', service_role only.

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

comment on function public.jobforge_release_job(uuid, text) is
  'Hand a held job back to the queue unfinished, without counting the attempt. service_role only.';

revoke all on function public.jobforge_release_job(uuid, text) from public, anon, authenticated;
grant execute on function public.jobforge_release_job(uuid, text) to service_role;

create function public.jobforge_list_cron_triggers()
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform jobforge_private.assert_service_role();
  -- last_scheduled_for comes from the slot keys ('cron:' || UTC ISO timestamp) that
  -- jobforge_fire_cron_trigger records; ISO timestamps sort as text, so the newest key is
  -- one backward step on the primary key. last_fired_at would not do: it is the wall
  -- time of the fire, not the slot.
  return coalesce(
    (
      select pg_catalog.jsonb_agg(
        pg_catalog.to_jsonb(t) || pg_catalog.jsonb_build_object(
          'last_scheduled_for',
          (
            select pg_catalog.substr(f.fire_key, 6)::timestamptz
            from jobforge_private.trigger_fires f
            where f.trigger_id = t.id
              and f.fire_key like 'cron:%'
            order by f.fire_key desc
            limit 1
          )
        )
        order by t.created_at, t.id
      )
      from public.jobforge_triggers t
      where t.trigger_type = 'cron'
        and t.enabled
    ),
    '[]'::jsonb
  );
end
$$;

comment on function public.jobforge_list_cron_triggers() is
  'Every enabled cron trigger of every tenant, for the scheduler. service_role only.';

revoke all on function public.jobforge_list_cron_triggers() from public, anon, authenticated;
grant execute on function public.jobforge_list_cron_triggers() to service_role;

-- Finish a batch of held jobs in one statement and one commit. The per-job RPC costs a
-- commit (an fsync) per job, which caps a worker far below what claiming in batches
-- allows. Semantics are jobforge_complete_job's, applied to every element; the batch is
-- all or nothing: if any job is not held by the worker, nothing is recorded (PT409 naming
-- it) and the worker can fall back to completing one by one.
create function public.jobforge_complete_jobs(p_worker_id text, p_results jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_reason text;
  v_given integer;
  v_done integer;
  v_bad record;
  v_rows jsonb;
  v_done_ids uuid[];
  v_missing uuid;
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

  -- Element checks, first failure named by its index.
  select e.ordinality - 1 as idx, e.value
  into v_bad
  from pg_catalog.jsonb_array_elements(p_results) with ordinality as e(value, ordinality)
  where pg_catalog.jsonb_typeof(e.value) <> 'object'
    or e.value - '{job_id,status,result,error,artifact_ref}'::text[] <> '{}'::jsonb
    or coalesce(e.value ->> 'status', '') not in ('succeeded', 'failed')
    or (e.value ->> 'job_id') is null
    or (e.value ->> 'job_id') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    or pg_catalog.char_length(e.value ->> 'artifact_ref') > 2048
  order by e.ordinality
  limit 1;
  if found then
    perform jobforge_private.invalid(
      pg_catalog.format('results[%s]', v_bad.idx),
      'must be an object {job_id (uuid), status (succeeded|failed), result, error, '
        || 'artifact_ref (at most 2048 characters)} and nothing else'
    );
  end if;

  select count(distinct (e.value ->> 'job_id')::uuid), count(*)
  into v_done, v_given
  from pg_catalog.jsonb_array_elements(p_results) e;
  if v_done <> v_given then
    perform jobforge_private.invalid('results', 'a job appears more than once');
  end if;

  with input as (
    select
      (e.value ->> 'job_id')::uuid as job_id,
      e.value ->> 'status' = 'succeeded' as succeeded,
      e.value -> 'result' as result,
      e.value -> 'error' as error,
      e.value ->> 'artifact_ref' as artifact_ref,
      case when e.value ->> 'status' = 'succeeded' then gen_random_uuid() end as result_id,
      e.ordinality
    from pg_catalog.jsonb_array_elements(p_results) with ordinality as e(value, ordinality)
  ),
  done as (
    update public.jobforge_jobs j
    set
      status = case
        when i.succeeded then 'succeeded'
        when j.attempts < j.max_attempts then 'queued'
        else 'dead'
      end,
      run_at = case
        when not i.succeeded and j.attempts < j.max_attempts then
          now() + jobforge_private.retry_delay(j.attempts)
        else j.run_at
      end,
      finished_at = case
        when not i.succeeded and j.attempts < j.max_attempts then null
        else now()
      end,
      error = case when i.succeeded then null else i.error end,
      result_id = coalesce(i.result_id, j.result_id),
      locked_by = null,
      locked_at = null,
      heartbeat_at = null,
      updated_at = now()
    from input i
    where j.id = i.job_id
      and j.status = 'running'
      and j.locked_by = p_worker_id
    returning j.*, i.succeeded, i.result, i.artifact_ref, i.ordinality
  ),
  attempts as (
    insert into public.jobforge_job_attempts
      (job_id, tenant_id, attempt, worker_id, status, error, started_at)
    select
      d.id, d.tenant_id, d.attempts, p_worker_id,
      case when d.succeeded then 'succeeded' else 'failed' end,
      d.error, d.started_at
    from done d
  ),
  results as (
    insert into public.jobforge_job_results (id, job_id, tenant_id, result, artifact_ref)
    select d.result_id, d.id, d.tenant_id, d.result, d.artifact_ref
    from done d
    where d.succeeded
  )
  select
    count(*),
    pg_catalog.array_agg(d.id),
    pg_catalog.jsonb_agg(
      pg_catalog.to_jsonb(d) - '{succeeded,result,artifact_ref,ordinality}'::text[]
      order by d.ordinality
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

comment on function public.jobforge_complete_jobs(text, jsonb) is
  'Finish up to 1000 held jobs in one statement, all or nothing (as jobforge_complete_job each). service_role only.';

revoke all on function public.jobforge_complete_jobs(text, jsonb) from public, anon, authenticated;
grant execute on function public.jobforge_complete_jobs(text, jsonb) to service_role;
