-- 60_triggers: cron and event triggers, with dry-run mode; each firing is recorded so a
-- cron slot or an event fires a trigger at most once.

-- A cron expression: exactly five whitespace-separated fields (minute hour day month
-- weekday); each a comma list of *, */n, a, a-b or a-b/n within the bounds of the field
-- (weekday 0-7, 0 and 7 both Sunday). Returns the reason it is refused, or null.
create function jobforge_private.cron_error(p_expression text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_names text[] := array['minute', 'hour', 'day', 'month', 'weekday'];
  v_low integer[] := array[0, 0, 1, 1, 0];
  v_high integer[] := array[59, 23, 31, 12, 7];
  v_fields text[];
  v_item text;
  v_match text[];
  v_from integer;
  v_to integer;
  v_step integer;
begin
  if p_expression is null then
    return 'is required for cron triggers';
  end if;
  if pg_catalog.char_length(p_expression) > 255 then
    return 'must be at most 255 characters';
  end if;
  v_fields := pg_catalog.regexp_split_to_array(pg_catalog.btrim(p_expression, E' \t\r\n'), E'\\s+');
  if pg_catalog.btrim(p_expression, E' \t\r\n') = '' or pg_catalog.cardinality(v_fields) <> 5 then
    return 'must have exactly 5 fields (minute hour day month weekday)';
  end if;

  for i in 1 .. 5 loop
    foreach v_item in array pg_catalog.string_to_array(v_fields[i], ',') loop
      v_match := pg_catalog.regexp_match(
        v_item, '^(?:(\*)(?:/([0-9]{1,4}))?|([0-9]{1,4})(?:-([0-9]{1,4})(?:/([0-9]{1,4}))?)?)$'
      );
      if v_match is null then
        return pg_catalog.format(
          '%s field %s is not valid (use *, */n, a, a-b, a-b/n or a comma list of them)',
          v_names[i], pg_catalog.quote_literal(v_fields[i])
        );
      end if;
      if v_match[1] is not null then
        v_from := v_low[i];
        v_to := v_high[i];
        v_step := v_match[2]::integer;
      else
        v_from := v_match[3]::integer;
        v_to := coalesce(v_match[4]::integer, v_from);
        v_step := v_match[5]::integer;
        if v_from < v_low[i] or v_from > v_high[i] then
          return pg_catalog.format(
            '%s value %s is out of range %s-%s', v_names[i], v_from, v_low[i], v_high[i]
          );
        end if;
        if v_to < v_low[i] or v_to > v_high[i] then
          return pg_catalog.format(
            '%s value %s is out of range %s-%s', v_names[i], v_to, v_low[i], v_high[i]
          );
        end if;
        if v_to < v_from then
          return pg_catalog.format('%s range %s is reversed', v_names[i], v_item);
        end if;
      end if;
      if v_step is not null and (v_step < 1 or v_step > v_high[i] - v_low[i] + 1) then
        return pg_catalog.format(
          '%s step %s must be between 1 and %s', v_names[i], v_step, v_high[i] - v_low[i] + 1
        );
      end if;
    end loop;
  end loop;
  return null;
end
$$;

-- A cron trigger's misfire settings: {field, reason} of the first refused, or null. The
-- policy is one of three words; max_catch_up (how many missed slots catch_up fires at
-- most) 1 to 1000, so a scheduler back after a long outage enqueues a bounded burst.
create function jobforge_private.misfire_error(p_policy text, p_max_catch_up integer)
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_policy is null or p_policy not in ('skip', 'run_once', 'catch_up') then
    return array['misfire_policy', 'must be skip, run_once or catch_up'];
  end if;
  if p_max_catch_up is null or p_max_catch_up < 1 or p_max_catch_up > 1000 then
    return array['max_catch_up', 'must be between 1 and 1000'];
  end if;
  return null;
end
$$;

create table public.jobforge_triggers (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  project_id uuid,
  name text not null check (char_length(name) between 1 and 255),
  trigger_type text not null check (trigger_type in ('cron', 'event')),
  cron_expression text,
  event_type_filter text,
  event_source_filter text
    check (event_source_filter = any (jobforge_private.source_apps())),
  target_template_key text not null references public.jobforge_job_templates (template_key),
  target_inputs jsonb not null default '{}' check (jsonb_typeof(target_inputs) = 'object'),
  enabled boolean not null default false,
  dry_run boolean not null default false,
  cooldown_seconds integer not null default 0 check (cooldown_seconds between 0 and 86400),
  max_fires_per_hour integer not null default 60 check (max_fires_per_hour between 1 and 3600),
  last_fired_at timestamptz,
  last_job_id uuid,
  fire_count integer not null default 0,
  -- Cron only: what the scheduler does with slots that passed while no scheduler fired
  -- them (skip, run_once, catch_up; docs/operations.md, "Missed cron slots"), and how
  -- many of them catch_up fires at most.
  misfire_policy text check (misfire_policy in ('skip', 'run_once', 'catch_up')),
  max_catch_up integer check (max_catch_up between 1 and 1000),
  -- Cron only: the newest slot claimed (fired, dry-run or skipped). Missed slots are
  -- counted from it (or from enabled_at when no slot since is claimed), and
  -- jobforge_fire_cron_trigger refuses any slot not after it, so a slot stays fired once
  -- even after the purge of its trigger_fires row.
  last_scheduled_for timestamptz,
  -- When the trigger was last switched on (created enabled, or enabled after being off):
  -- the slots of a time it was off are not missed, they were not wanted.
  enabled_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint jobforge_triggers_tenant_name_key unique (tenant_id, name),
  constraint jobforge_triggers_kind_check check (
    (trigger_type = 'cron' and cron_expression is not null
      and event_type_filter is null and event_source_filter is null
      and misfire_policy is not null and max_catch_up is not null)
    or (trigger_type = 'event' and event_type_filter is not null and cron_expression is null
      and misfire_policy is null and max_catch_up is null and last_scheduled_for is null)
  )
);

comment on table public.jobforge_triggers is
  'JobForge cron and event triggers that request template jobs. Written only through the trigger RPCs.';

-- The one lookup every submitted event pays: does this tenant have an enabled event
-- trigger at all? Small (enabled event triggers only), and also what finds them.
create index jobforge_triggers_tenant_event
  on public.jobforge_triggers (tenant_id)
  where enabled and trigger_type = 'event';

create index jobforge_triggers_tenant_created
  on public.jobforge_triggers (tenant_id, created_at desc, id desc);

create table jobforge_private.trigger_fires (
  trigger_id uuid not null references public.jobforge_triggers (id) on delete cascade,
  -- event:<event id> or cron:<slot, UTC ISO 8601>
  fire_key text not null,
  fired_at timestamptz not null default now(),
  -- Set when a job was enqueued. A fire with no job and dry_run false was skipped
  -- (cooldown, hourly limit, template disabled): it holds its cron slot but does not
  -- count against max_fires_per_hour.
  job_id uuid,
  dry_run boolean not null default false,
  primary key (trigger_id, fire_key)
);

comment on table jobforge_private.trigger_fires is
  'One row per trigger fire: exactly-once per (trigger, event or cron slot), and the hourly limit.';

create index trigger_fires_recent on jobforge_private.trigger_fires (trigger_id, fired_at);

create index trigger_fires_fired_brin on jobforge_private.trigger_fires using brin (fired_at);
alter table public.jobforge_triggers enable row level security;
alter table jobforge_private.trigger_fires enable row level security;

create policy jobforge_triggers_tenant_select on public.jobforge_triggers
  for select to authenticated
  using (tenant_id = any ((select jobforge_private.jwt_tenant_ids())::uuid[]));

-- Supabase's default privileges grant everything on new tables to the API roles: take
-- it back; writes go through the RPCs only.
revoke all on table
  public.jobforge_triggers,
  jobforge_private.trigger_fires
  from public, anon, authenticated, service_role;

grant select on table
  public.jobforge_triggers
  to authenticated, service_role;


-- Evaluate one trigger for one fire (an event, or a cron slot whose trigger_fires row
-- the caller has already inserted) and act: skip (template disabled, cooldown, hourly
-- limit), dry run (record and audit what would run), or enqueue the job. The caller
-- holds the trigger row locked, so counters and limits are exact under concurrency.
-- Writes exactly one trigger_fire audit row. Returns {"fired", "job", "dry_run",
-- "reason", "audit_id"}.
create function jobforge_private.fire_trigger(
  p_trigger public.jobforge_triggers,
  p_fire_key text,
  p_idempotency_key text,
  p_trace_id text,
  p_job_actor_id text,
  p_audit_actor_id text,
  p_project_id uuid,
  p_extra jsonb
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_template public.jobforge_job_templates;
  v_reason text;
  v_recent integer;
  v_payload jsonb;
  v_job jsonb;
  v_job_id uuid;
  v_audit_id uuid;
  v_details jsonb;
  v_missing text;
begin
  select t.* into v_template
  from public.jobforge_job_templates t
  where t.template_key = p_trigger.target_template_key;
  v_missing := jobforge_private.missing_connector(
    p_trigger.tenant_id, v_template.required_connectors
  );

  if not coalesce(v_template.enabled, false) then
    v_reason := 'template disabled';
  elsif v_missing is not null then
    -- A fire is skipped (and audited as such), not raised: a scheduler would otherwise
    -- fail the same slot on every tick.
    v_reason := pg_catalog.format('connector %s not configured', v_missing);
  elsif p_trigger.last_fired_at is not null
    and now() - p_trigger.last_fired_at < pg_catalog.make_interval(secs => p_trigger.cooldown_seconds) then
    v_reason := 'cooldown';
  else
    select pg_catalog.count(*) into v_recent
    from (
      select 1
      from jobforge_private.trigger_fires f
      where f.trigger_id = p_trigger.id
        and f.fired_at > now() - interval '1 hour'
        and (f.job_id is not null or f.dry_run)
        and f.fire_key <> p_fire_key
      limit p_trigger.max_fires_per_hour
    ) as recent;
    if v_recent >= p_trigger.max_fires_per_hour then
      v_reason := 'hourly limit';
    end if;
  end if;

  v_details := pg_catalog.jsonb_build_object(
    'trigger_name', p_trigger.name,
    'trigger_type', p_trigger.trigger_type,
    'template_key', p_trigger.target_template_key,
    'idempotency_key', p_idempotency_key
  ) || coalesce(p_extra, '{}'::jsonb);

  if v_reason is not null then
    v_audit_id := jobforge_private.audit(
      p_trigger.tenant_id, p_project_id, 'trigger_fire', p_audit_actor_id, p_trace_id,
      'trigger', p_trigger.id::text, 'skipped', v_reason, v_details
    );
    return pg_catalog.jsonb_build_object(
      'fired', false, 'job', null, 'dry_run', p_trigger.dry_run,
      'reason', v_reason, 'audit_id', v_audit_id
    );
  end if;

  v_payload := pg_catalog.jsonb_build_object(
    'template_key', p_trigger.target_template_key,
    'inputs', p_trigger.target_inputs,
    'trace_id', p_trace_id,
    'actor_id', p_job_actor_id,
    'project_id', p_project_id,
    'trigger_id', p_trigger.id
  ) || coalesce(p_extra, '{}'::jsonb);

  if p_trigger.dry_run then
    insert into jobforge_private.trigger_fires as f (trigger_id, fire_key, job_id, dry_run)
    values (p_trigger.id, p_fire_key, null, true)
    on conflict (trigger_id, fire_key) do update set dry_run = true;

    update public.jobforge_triggers t
    set last_fired_at = now(), fire_count = t.fire_count + 1
    where t.id = p_trigger.id;

    -- What would have been enqueued, without its content (10_audit.sql): the input
    -- names, and digests of the inputs and of the job payload.
    v_audit_id := jobforge_private.audit(
      p_trigger.tenant_id, p_project_id, 'trigger_fire', p_audit_actor_id, p_trace_id,
      'trigger', p_trigger.id::text, 'dry_run', null,
      v_details || pg_catalog.jsonb_build_object(
        'input_keys', jobforge_private.audit_key_names(p_trigger.target_inputs),
        'inputs_sha256', jobforge_private.audit_digest(p_trigger.target_inputs),
        'would_enqueue', pg_catalog.jsonb_build_object(
          'type', p_trigger.target_template_key,
          'payload_sha256', jobforge_private.audit_digest(v_payload),
          'max_attempts', v_template.default_max_attempts,
          'idempotency_key', p_idempotency_key
        )
      )
    );
    return pg_catalog.jsonb_build_object(
      'fired', false, 'job', null, 'dry_run', true, 'reason', 'dry run', 'audit_id', v_audit_id
    );
  end if;

  v_job := pg_catalog.to_jsonb(jobforge_private.enqueue_job(
    p_trigger.tenant_id,
    p_trigger.target_template_key,
    v_payload,
    p_idempotency_key,
    null,
    v_template.default_max_attempts,
    v_template.default_priority,
    v_template.default_timeout_ms
  ));
  v_job_id := (v_job ->> 'id')::uuid;

  insert into jobforge_private.trigger_fires as f (trigger_id, fire_key, job_id, dry_run)
  values (p_trigger.id, p_fire_key, v_job_id, false)
  on conflict (trigger_id, fire_key) do update set job_id = excluded.job_id;

  update public.jobforge_triggers t
  set last_fired_at = now(), last_job_id = v_job_id, fire_count = t.fire_count + 1
  where t.id = p_trigger.id;

  v_audit_id := jobforge_private.audit(
    p_trigger.tenant_id, p_project_id, 'trigger_fire', p_audit_actor_id, p_trace_id,
    'trigger', p_trigger.id::text, 'success', null,
    v_details || pg_catalog.jsonb_build_object('job_id', v_job_id)
  );
  return pg_catalog.jsonb_build_object(
    'fired', true, 'job', v_job, 'dry_run', false, 'reason', null, 'audit_id', v_audit_id
  );
end
$$;

-- Fire the enabled event triggers of the event's tenant that match it, in id order (the
-- order their rows are locked in, so concurrent events cannot deadlock). Marks the event
-- processed by the first job enqueued; returns the event row as it is afterwards.
create function jobforge_private.fire_event_triggers(
  p_event public.jobforge_events,
  p_audit_actor_id text
)
returns public.jobforge_events
language plpgsql
set search_path = ''
as $$
declare
  v_trigger public.jobforge_triggers;
  v_result jsonb;
  v_first_job uuid;
begin
  for v_trigger in
    select t.*
    from public.jobforge_triggers t
    where t.tenant_id = p_event.tenant_id
      and t.enabled
      and t.trigger_type = 'event'
      and (
        t.event_type_filter = p_event.event_type
        or (
          pg_catalog.right(t.event_type_filter, 2) = '.*'
          and pg_catalog.starts_with(p_event.event_type, pg_catalog.left(t.event_type_filter, -1))
        )
      )
      and (t.event_source_filter is null or t.event_source_filter = p_event.source_app)
    order by t.id
    for no key update of t
  loop
    v_result := jobforge_private.fire_trigger(
      v_trigger,
      'event:' || p_event.id,
      'trigger:' || v_trigger.id || ':event:' || p_event.id,
      p_event.trace_id,
      p_event.actor_id,
      p_audit_actor_id,
      coalesce(v_trigger.project_id, p_event.project_id),
      pg_catalog.jsonb_build_object('event_id', p_event.id)
    );
    if v_first_job is null and pg_catalog.jsonb_typeof(v_result -> 'job') = 'object' then
      v_first_job := (v_result -> 'job' ->> 'id')::uuid;
    end if;
  end loop;

  if v_first_job is not null then
    update public.jobforge_events e
    set processed = true, processed_at = now(), processing_job_id = v_first_job
    where e.id = p_event.id
    returning e.* into p_event;
  end if;
  return p_event;
end
$$;

create function public.jobforge_create_trigger(
  p_tenant_id uuid,
  p_name text,
  p_trigger_type text,
  p_target_template_key text,
  p_cron_expression text default null,
  p_event_type_filter text default null,
  p_event_source_filter text default null,
  p_target_inputs jsonb default '{}',
  p_enabled boolean default false,
  p_dry_run boolean default false,
  p_cooldown_seconds integer default 0,
  p_max_fires_per_hour integer default 60,
  p_project_id uuid default null,
  p_actor_id text default null,
  p_misfire_policy text default null,
  p_max_catch_up integer default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_template public.jobforge_job_templates;
  v_trigger public.jobforge_triggers;
  v_reason text;
  v_error text[];
begin
  perform jobforge_private.assert_tenant(p_tenant_id);

  if p_name is null or p_name = '' then
    perform jobforge_private.invalid('name', 'is required');
  end if;
  if pg_catalog.char_length(p_name) > 255 then
    perform jobforge_private.invalid('name', 'must be at most 255 characters');
  end if;
  if p_trigger_type is null or p_trigger_type not in ('cron', 'event') then
    perform jobforge_private.invalid('trigger_type', 'must be cron or event');
  end if;

  if p_trigger_type = 'cron' then
    v_reason := jobforge_private.cron_error(p_cron_expression);
    if v_reason is not null then
      perform jobforge_private.invalid('cron_expression', v_reason);
    end if;
    if p_event_type_filter is not null then
      perform jobforge_private.invalid('event_type_filter', 'is only for event triggers');
    end if;
    if p_event_source_filter is not null then
      perform jobforge_private.invalid('event_source_filter', 'is only for event triggers');
    end if;
    p_misfire_policy := coalesce(p_misfire_policy, 'skip');
    p_max_catch_up := coalesce(p_max_catch_up, 10);
    v_error := jobforge_private.misfire_error(p_misfire_policy, p_max_catch_up);
    if v_error is not null then
      perform jobforge_private.invalid(v_error[1], v_error[2]);
    end if;
  else
    v_reason := jobforge_private.event_filter_error(p_event_type_filter);
    if v_reason is not null then
      perform jobforge_private.invalid('event_type_filter', v_reason);
    end if;
    if p_event_source_filter is not null
      and jobforge_private.source_app_error(p_event_source_filter) is not null then
      perform jobforge_private.invalid(
        'event_source_filter', jobforge_private.source_app_error(p_event_source_filter)
      );
    end if;
    if p_cron_expression is not null then
      perform jobforge_private.invalid('cron_expression', 'is only for cron triggers');
    end if;
    -- A missed slot is a cron notion: an event fires when it arrives or not at all.
    if p_misfire_policy is not null then
      perform jobforge_private.invalid('misfire_policy', 'is only for cron triggers');
    end if;
    if p_max_catch_up is not null then
      perform jobforge_private.invalid('max_catch_up', 'is only for cron triggers');
    end if;
  end if;

  if p_target_template_key is null then
    perform jobforge_private.invalid('target_template_key', 'is required');
  end if;
  select t.* into v_template
  from public.jobforge_job_templates t
  where t.template_key = p_target_template_key;
  if not found then
    perform jobforge_private.invalid(
      'target_template_key', pg_catalog.format('unknown template %s', p_target_template_key)
    );
  end if;
  if v_template.is_action_job then
    perform jobforge_private.invalid(
      'target_template_key', 'action templates cannot be triggered automatically'
    );
  end if;

  p_target_inputs := coalesce(nullif(p_target_inputs, 'null'::jsonb), '{}'::jsonb);
  if pg_catalog.jsonb_typeof(p_target_inputs) <> 'object' then
    perform jobforge_private.invalid('target_inputs', 'must be a JSON object');
  end if;
  if pg_catalog.octet_length(p_target_inputs::text) > 65536 then
    perform jobforge_private.invalid('target_inputs', 'must be at most 64 KiB');
  end if;
  if jobforge_private.json_depth_error(p_target_inputs) is not null then
    perform jobforge_private.invalid(
      'target_inputs', jobforge_private.json_depth_error(p_target_inputs)
    );
  end if;
  -- The jobs this trigger makes must be valid requests of the template.
  -- An input the template stores encrypted must be a ciphertext here too: the trigger
  -- keeps its inputs for every job it will request.
  v_error := jobforge_private.inputs_error(
    v_template.input_schema, p_target_inputs, v_template.encrypt_fields
  );
  if v_error is not null then
    perform jobforge_private.invalid('target_inputs.' || v_error[1], v_error[2]);
  end if;

  p_cooldown_seconds := coalesce(p_cooldown_seconds, 0);
  if p_cooldown_seconds < 0 or p_cooldown_seconds > 86400 then
    perform jobforge_private.invalid('cooldown_seconds', 'must be between 0 and 86400');
  end if;
  p_max_fires_per_hour := coalesce(p_max_fires_per_hour, 60);
  if p_max_fires_per_hour < 1 or p_max_fires_per_hour > 3600 then
    perform jobforge_private.invalid('max_fires_per_hour', 'must be between 1 and 3600');
  end if;
  v_reason := jobforge_private.label_error(p_actor_id);
  if v_reason is not null then
    perform jobforge_private.invalid('actor_id', v_reason);
  end if;

  insert into public.jobforge_triggers as t (
    tenant_id, project_id, name, trigger_type, cron_expression, event_type_filter,
    event_source_filter, target_template_key, target_inputs, enabled, dry_run,
    cooldown_seconds, max_fires_per_hour, misfire_policy, max_catch_up, enabled_at
  )
  values (
    p_tenant_id, p_project_id, p_name, p_trigger_type,
    case when p_trigger_type = 'cron'
      then pg_catalog.regexp_replace(pg_catalog.btrim(p_cron_expression, E' \t\r\n'), E'\\s+', ' ', 'g') end,
    p_event_type_filter, p_event_source_filter, p_target_template_key, p_target_inputs,
    coalesce(p_enabled, false), coalesce(p_dry_run, false), p_cooldown_seconds, p_max_fires_per_hour,
    p_misfire_policy, p_max_catch_up, case when coalesce(p_enabled, false) then now() end
  )
  on conflict (tenant_id, name) do nothing
  returning t.* into v_trigger;
  if not found then
    raise exception using
      errcode = 'PT409', message = pg_catalog.format('trigger %s already exists', p_name);
  end if;

  perform jobforge_private.audit(
    p_tenant_id, p_project_id, 'trigger_create', jobforge_private.audit_actor(p_actor_id), null,
    'trigger', v_trigger.id::text, 'success', null,
    pg_catalog.jsonb_build_object(
      'name', v_trigger.name,
      'trigger_type', v_trigger.trigger_type,
      'target_template_key', v_trigger.target_template_key,
      'cron_expression', v_trigger.cron_expression,
      'event_type_filter', v_trigger.event_type_filter,
      'event_source_filter', v_trigger.event_source_filter,
      'enabled', v_trigger.enabled,
      'dry_run', v_trigger.dry_run,
      'misfire_policy', v_trigger.misfire_policy,
      'max_catch_up', v_trigger.max_catch_up
    )
  );
  return pg_catalog.to_jsonb(v_trigger);
end
$$;

comment on function public.jobforge_create_trigger is
  'Create a cron or event trigger that requests jobs of a (non-action) template. authenticated (own tenants) and service_role.';

create function public.jobforge_list_triggers(p_tenant_id uuid, p_filters jsonb default '{}')
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_type text;
  v_enabled boolean;
  v_limit integer;
  v_offset integer;
  v_rows jsonb;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);

  p_filters := jobforge_private.filters_object(
    p_filters, array['trigger_type', 'enabled', 'limit', 'offset']
  );
  v_type := jobforge_private.filter_text(p_filters, 'trigger_type');
  if v_type not in ('cron', 'event') then
    perform jobforge_private.invalid('trigger_type', 'must be cron or event');
  end if;
  v_enabled := jobforge_private.filter_boolean(p_filters, 'enabled');
  v_limit := jobforge_private.filter_integer(p_filters, 'limit', 1, 1000, 100);
  v_offset := jobforge_private.filter_integer(p_filters, 'offset', 0, 2147483647, 0);

  select coalesce(
    pg_catalog.jsonb_agg(pg_catalog.to_jsonb(page) order by page.created_at desc, page.id desc),
    '[]'::jsonb
  )
  into v_rows
  from (
    select t.*
    from public.jobforge_triggers t
    where t.tenant_id = p_tenant_id
      and (v_type is null or t.trigger_type = v_type)
      and (v_enabled is null or t.enabled = v_enabled)
    order by t.created_at desc, t.id desc
    limit v_limit
    offset v_offset
  ) as page;
  return v_rows;
end
$$;

comment on function public.jobforge_list_triggers is
  'Triggers of a tenant, newest first; filters trigger_type, enabled, limit, offset. authenticated (own tenants) and service_role.';

create function public.jobforge_set_trigger_enabled(
  p_trigger_id uuid,
  p_tenant_id uuid,
  p_enabled boolean,
  p_actor_id text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_trigger public.jobforge_triggers;
  v_previous boolean;
  v_reason text;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_trigger_id is null then
    perform jobforge_private.invalid('trigger_id', 'is required');
  end if;
  if p_enabled is null then
    perform jobforge_private.invalid('enabled', 'is required');
  end if;
  v_reason := jobforge_private.label_error(p_actor_id);
  if v_reason is not null then
    perform jobforge_private.invalid('actor_id', v_reason);
  end if;

  select t.enabled into v_previous
  from public.jobforge_triggers t
  where t.id = p_trigger_id and t.tenant_id = p_tenant_id
  for no key update;
  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('trigger %s not found', p_trigger_id);
  end if;

  -- Switching on starts a new period: slots of the time it was off are never missed ones.
  update public.jobforge_triggers t
  set enabled = p_enabled,
    enabled_at = case when p_enabled and not v_previous then now() else t.enabled_at end,
    updated_at = now()
  where t.id = p_trigger_id
  returning t.* into v_trigger;

  perform jobforge_private.audit(
    p_tenant_id, v_trigger.project_id, 'trigger_update', jobforge_private.audit_actor(p_actor_id), null,
    'trigger', p_trigger_id::text, 'success', null,
    pg_catalog.jsonb_build_object(
      'name', v_trigger.name, 'enabled', p_enabled, 'previous_enabled', v_previous
    )
  );
  return pg_catalog.to_jsonb(v_trigger);
end
$$;

comment on function public.jobforge_set_trigger_enabled is
  'Enable or disable a trigger of a tenant. authenticated (own tenants) and service_role.';

-- Change what the scheduler does with a cron trigger's missed slots. p_max_catch_up null
-- keeps the current value. Slots already missed are judged by the new policy at the next
-- tick: nothing is fired here.
create function public.jobforge_set_trigger_misfire_policy(
  p_trigger_id uuid,
  p_tenant_id uuid,
  p_misfire_policy text,
  p_max_catch_up integer default null,
  p_actor_id text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_trigger public.jobforge_triggers;
  v_previous public.jobforge_triggers;
  v_error text[];
  v_reason text;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_trigger_id is null then
    perform jobforge_private.invalid('trigger_id', 'is required');
  end if;
  if p_misfire_policy is null then
    perform jobforge_private.invalid('misfire_policy', 'is required');
  end if;
  v_reason := jobforge_private.label_error(p_actor_id);
  if v_reason is not null then
    perform jobforge_private.invalid('actor_id', v_reason);
  end if;

  select t.* into v_previous
  from public.jobforge_triggers t
  where t.id = p_trigger_id and t.tenant_id = p_tenant_id
  for no key update;
  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('trigger %s not found', p_trigger_id);
  end if;
  if v_previous.trigger_type <> 'cron' then
    perform jobforge_private.invalid('misfire_policy', 'is only for cron triggers');
  end if;
  v_error := jobforge_private.misfire_error(
    p_misfire_policy, coalesce(p_max_catch_up, v_previous.max_catch_up)
  );
  if v_error is not null then
    perform jobforge_private.invalid(v_error[1], v_error[2]);
  end if;

  update public.jobforge_triggers t
  set misfire_policy = p_misfire_policy,
    max_catch_up = coalesce(p_max_catch_up, t.max_catch_up),
    updated_at = now()
  where t.id = p_trigger_id
  returning t.* into v_trigger;

  perform jobforge_private.audit(
    p_tenant_id, v_trigger.project_id, 'trigger_update', jobforge_private.audit_actor(p_actor_id), null,
    'trigger', p_trigger_id::text, 'success', null,
    pg_catalog.jsonb_build_object(
      'name', v_trigger.name,
      'misfire_policy', v_trigger.misfire_policy,
      'max_catch_up', v_trigger.max_catch_up,
      'previous_misfire_policy', v_previous.misfire_policy,
      'previous_max_catch_up', v_previous.max_catch_up
    )
  );
  return pg_catalog.to_jsonb(v_trigger);
end
$$;

comment on function public.jobforge_set_trigger_misfire_policy is
  'Set the misfire policy (skip, run_once, catch_up) and optionally max_catch_up (1-1000) of a cron trigger of a tenant. authenticated (own tenants) and service_role.';

create function public.jobforge_delete_trigger(
  p_trigger_id uuid,
  p_tenant_id uuid,
  p_actor_id text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_trigger public.jobforge_triggers;
  v_reason text;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_trigger_id is null then
    perform jobforge_private.invalid('trigger_id', 'is required');
  end if;
  v_reason := jobforge_private.label_error(p_actor_id);
  if v_reason is not null then
    perform jobforge_private.invalid('actor_id', v_reason);
  end if;

  delete from public.jobforge_triggers t
  where t.id = p_trigger_id and t.tenant_id = p_tenant_id
  returning t.* into v_trigger;
  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('trigger %s not found', p_trigger_id);
  end if;

  perform jobforge_private.audit(
    p_tenant_id, v_trigger.project_id, 'trigger_delete', jobforge_private.audit_actor(p_actor_id), null,
    'trigger', p_trigger_id::text, 'success', null,
    pg_catalog.jsonb_build_object(
      'name', v_trigger.name,
      'trigger_type', v_trigger.trigger_type,
      'target_template_key', v_trigger.target_template_key,
      'fire_count', v_trigger.fire_count
    )
  );
  return pg_catalog.to_jsonb(v_trigger);
end
$$;

comment on function public.jobforge_delete_trigger is
  'Delete a trigger of a tenant; returns the deleted row. authenticated (own tenants) and service_role.';

-- Fire a cron trigger for one schedule slot, exactly once however often and however
-- concurrently it is called: the trigger row is locked, then the slot is claimed by
-- inserting its trigger_fires row; a second call finds it taken. A slot not after the
-- trigger's last_scheduled_for is refused as well: schedulers fire slots oldest first, so
-- an older one is either fired already or was passed over by the misfire policy, and the
-- trigger_fires rows of old slots are purged (jobforge_purge_expired_events) while
-- last_scheduled_for stays.
create function public.jobforge_fire_cron_trigger(p_trigger_id uuid, p_scheduled_for timestamptz)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_trigger public.jobforge_triggers;
  v_slot text;
  v_result jsonb;
  v_base jsonb;
begin
  perform jobforge_private.assert_service_role();
  if p_trigger_id is null then
    perform jobforge_private.invalid('trigger_id', 'is required');
  end if;
  if p_scheduled_for is null then
    perform jobforge_private.invalid('scheduled_for', 'is required');
  end if;

  select t.* into v_trigger
  from public.jobforge_triggers t
  where t.id = p_trigger_id
  for no key update;
  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('trigger %s not found', p_trigger_id);
  end if;
  if v_trigger.trigger_type <> 'cron' then
    perform jobforge_private.invalid(
      'trigger_id', pg_catalog.format('trigger %s is not a cron trigger', p_trigger_id)
    );
  end if;

  v_slot := pg_catalog.to_char(p_scheduled_for at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
  v_base := pg_catalog.jsonb_build_object(
    'trigger_id', p_trigger_id, 'scheduled_for', p_scheduled_for
  );

  if not v_trigger.enabled then
    return v_base || pg_catalog.jsonb_build_object(
      'fired', false, 'job', null, 'dry_run', v_trigger.dry_run,
      'reason', 'trigger disabled', 'audit_id', null
    );
  end if;

  if v_trigger.last_scheduled_for is not null and p_scheduled_for < v_trigger.last_scheduled_for then
    return v_base || pg_catalog.jsonb_build_object(
      'fired', false, 'job', null, 'dry_run', v_trigger.dry_run,
      'reason', 'a later slot already fired', 'audit_id', null
    );
  end if;

  insert into jobforge_private.trigger_fires (trigger_id, fire_key, job_id, dry_run)
  values (p_trigger_id, 'cron:' || v_slot, null, false)
  on conflict (trigger_id, fire_key) do nothing;
  if not found or p_scheduled_for = v_trigger.last_scheduled_for then
    return v_base || pg_catalog.jsonb_build_object(
      'fired', false, 'job', null, 'dry_run', v_trigger.dry_run,
      'reason', 'already fired for this slot', 'audit_id', null
    );
  end if;

  update public.jobforge_triggers t
  set last_scheduled_for = p_scheduled_for
  where t.id = p_trigger_id
  returning t.* into v_trigger;

  v_result := jobforge_private.fire_trigger(
    v_trigger,
    'cron:' || v_slot,
    'cron:' || p_trigger_id || ':' || v_slot,
    gen_random_uuid()::text,
    null,
    null,
    v_trigger.project_id,
    pg_catalog.jsonb_build_object('scheduled_for', v_slot)
  );
  return v_base || v_result;
end
$$;

comment on function public.jobforge_fire_cron_trigger is
  'Fire a cron trigger for one schedule slot, exactly once per (trigger, slot). service_role only.';

create function public.jobforge_list_cron_triggers()
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform jobforge_private.assert_service_role();
  return coalesce(
    (
      select pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t) order by t.created_at, t.id)
      from public.jobforge_triggers t
      where t.trigger_type = 'cron'
        and t.enabled
    ),
    '[]'::jsonb
  );
end
$$;

comment on function public.jobforge_list_cron_triggers is
  'Every enabled cron trigger of every tenant, for the scheduler. service_role only.';

-- The scheduler's daily purge (runtime/scheduler.py): one row per UTC day on which a
-- scheduler took it, so however many schedulers run against the database, and however
-- often they tick, the purge runs at most once a day. The primary key is the guard: two
-- schedulers inserting the same day at once, one waits for the other's commit and then
-- finds the day taken. A scheduler that dies during its purge leaves the day taken; the
-- next day's purge removes what it left, as every purge is by age.
create table jobforge_private.daily_purges (
  day date primary key,
  started_at timestamptz not null default now(),
  -- Who took it (the scheduler's id) and with which ages: a record for the operator.
  taken_by text,
  settings jsonb not null default '{}'
);

comment on table jobforge_private.daily_purges is
  'One row per UTC day on which a scheduler ran the configured retention purge: at most once a day across all schedulers.';

alter table jobforge_private.daily_purges enable row level security;

revoke all on table jobforge_private.daily_purges
  from public, anon, authenticated, service_role;

-- Take today's purge (UTC, the database's clock): answers {"taken": true, "day"} to the
-- one caller that inserts the day's row, {"taken": false, "day", "taken_by",
-- "started_at"} to every other. The purge itself is the caller's: batched RPC calls, each
-- its own short transaction and its own retention_purge audit row. Rows older than a
-- year are dropped on the way.
create function public.jobforge_claim_daily_purge(
  p_taken_by text default null,
  p_settings jsonb default '{}'
)
returns json
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_day date := (now() at time zone 'UTC')::date;
  v_row jobforge_private.daily_purges;
  v_reason text;
begin
  perform jobforge_private.assert_service_role();
  v_reason := jobforge_private.label_error(p_taken_by);
  if v_reason is not null then
    perform jobforge_private.invalid('taken_by', v_reason);
  end if;
  p_settings := coalesce(nullif(p_settings, 'null'::jsonb), '{}'::jsonb);
  if pg_catalog.jsonb_typeof(p_settings) <> 'object' then
    perform jobforge_private.invalid('settings', 'must be a JSON object');
  end if;
  if pg_catalog.octet_length(p_settings::text) > 4096 then
    perform jobforge_private.invalid('settings', 'must be at most 4 KiB');
  end if;
  if jobforge_private.json_depth_error(p_settings) is not null then
    perform jobforge_private.invalid('settings', jobforge_private.json_depth_error(p_settings));
  end if;

  insert into jobforge_private.daily_purges as d (day, taken_by, settings)
  values (v_day, p_taken_by, p_settings)
  on conflict (day) do nothing
  returning d.* into v_row;
  if not found then
    select d.* into v_row from jobforge_private.daily_purges d where d.day = v_day;
    return pg_catalog.json_build_object(
      'taken', false, 'day', v_day, 'taken_by', v_row.taken_by, 'started_at', v_row.started_at
    );
  end if;
  delete from jobforge_private.daily_purges d where d.day < v_day - 366;
  return pg_catalog.json_build_object(
    'taken', true, 'day', v_day, 'taken_by', v_row.taken_by, 'started_at', v_row.started_at
  );
end
$$;

comment on function public.jobforge_claim_daily_purge is
  'Take the scheduler''s retention purge for today (UTC): taken true for the first caller of the day, false for every other. service_role only.';
