-- 90_api: who may call which function, said once for the whole schema.
--
-- PostgreSQL grants EXECUTE on every new function to PUBLIC, and Supabase's default
-- privileges add anon, authenticated and service_role in schema public. So every function
-- of this library first loses every grant, and then gets exactly the audience listed
-- here. The files before this one grant nothing on functions; a function missing from the
-- lists below stays callable by its owner only, and the check at the end refuses to
-- finish a migration that leaves an RPC in public without an audience.

revoke all on all functions in schema jobforge_private
  from public, anon, authenticated, service_role;

do $revoke$
declare
  v_fn regprocedure;
begin
  for v_fn in
    select p.oid::regprocedure
    from pg_catalog.pg_proc p
    where p.pronamespace = 'public'::regnamespace
      and p.proname like 'jobforge\_%'
  loop
    execute pg_catalog.format(
      'revoke all on function %s from public, anon, authenticated, service_role', v_fn
    );
  end loop;
end
$revoke$;

-- RLS policies call it as the querying role.
grant execute on function jobforge_private.jwt_tenant_ids to authenticated, service_role;

-- Tenant RPCs: a signed-in user for the tenants of its JWT, or the service role for any.
-- Each checks the caller's right to the tenant itself.
grant execute on function
  -- 10_audit
  public.jobforge_list_audit_logs,
  -- 20_jobs
  public.jobforge_enqueue_job,
  public.jobforge_enqueue_jobs,
  public.jobforge_cancel_job,
  public.jobforge_retry_job,
  public.jobforge_retry_dead_jobs,
  public.jobforge_reschedule_job,
  public.jobforge_list_jobs,
  public.jobforge_get_job,
  public.jobforge_get_result,
  public.jobforge_list_job_attempts,
  -- 30_events
  public.jobforge_submit_event,
  public.jobforge_submit_events,
  public.jobforge_list_events,
  -- 40_templates
  public.jobforge_list_templates,
  public.jobforge_get_template,
  public.jobforge_request_job,
  -- 45_policy
  public.jobforge_verify_policy_token,
  -- 47_connectors
  public.jobforge_set_connector_config,
  public.jobforge_list_connector_configs,
  public.jobforge_delete_connector_config,
  -- 50_manifests
  public.jobforge_get_manifest,
  -- 60_triggers
  public.jobforge_create_trigger,
  public.jobforge_list_triggers,
  public.jobforge_set_trigger_enabled,
  public.jobforge_set_trigger_misfire_policy,
  public.jobforge_delete_trigger
  to authenticated, service_role;

-- Worker and administrator RPCs: the service role only.
grant execute on function
  -- 10_audit
  public.jobforge_purge_audit_logs,
  -- 20_jobs
  public.jobforge_purge_finished_jobs,
  -- 25_workers
  public.jobforge_claim_jobs,
  public.jobforge_heartbeat_job,
  public.jobforge_heartbeat_jobs,
  public.jobforge_complete_job,
  public.jobforge_complete_jobs,
  public.jobforge_release_job,
  public.jobforge_reap_stale_jobs,
  -- 27_limits
  public.jobforge_set_limit,
  public.jobforge_list_limits,
  public.jobforge_delete_limit,
  -- 30_events
  public.jobforge_purge_expired_events,
  -- 40_templates
  public.jobforge_set_template_enabled,
  -- 45_policy
  public.jobforge_add_policy_key,
  public.jobforge_retire_policy_key,
  -- 50_manifests
  public.jobforge_create_manifest,
  public.jobforge_purge_manifests,
  -- 60_triggers
  public.jobforge_fire_cron_trigger,
  public.jobforge_list_cron_triggers,
  public.jobforge_claim_daily_purge
  to service_role;

-- Every RPC has an audience: a function added to an area file but not to the lists above
-- would be callable by nobody, which is a mistake to catch here rather than in
-- production.
do $check$
declare
  v_missing text;
begin
  select pg_catalog.string_agg(p.proname, ', ' order by p.proname)
  into v_missing
  from pg_catalog.pg_proc p
  where p.pronamespace = 'public'::regnamespace
    and p.proname like 'jobforge\_%'
    and not pg_catalog.has_function_privilege('service_role', p.oid, 'execute');
  if v_missing is not null then
    raise exception 'functions without an audience in 90_api.sql: %', v_missing;
  end if;
end
$check$;
