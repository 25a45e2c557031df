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
