-- 30_events: the event envelope, its input rules and redaction, the events table, and
-- submit (one or a batch), list and purge. Submitting an event can fire event triggers
-- (60_triggers.sql).

-- Input rules of an event, one value each: the reason a value is refused, or null when
-- it is fine. The single submit (and the filters of the list, and other RPCs for their
-- actor_id) call these; event_specs_error below applies the same rules to every element
-- of a batch. plpgsql, like every helper: a call costs a few microseconds
-- (00_private.sql).

create function jobforge_private.event_type_error(p_event_type text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_event_type is null then 'is required'
    when pg_catalog.char_length(p_event_type) > 255 then 'must be at most 255 characters'
    when p_event_type !~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' then
      'must be dotted lowercase words, like infrastructure.disk_full'
  end;
end
$$;

create function jobforge_private.source_app_error(p_source_app text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_source_app is null then 'is required'
    when p_source_app <> all (jobforge_private.source_apps()) then
      'must be one of ' || pg_catalog.array_to_string(jobforge_private.source_apps(), ', ')
  end;
end
$$;

-- Null is allowed: an event need not come from a module.
create function jobforge_private.source_module_error(p_source_module text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_source_module <> all (jobforge_private.source_modules()) then
      'must be one of ' || pg_catalog.array_to_string(jobforge_private.source_modules(), ', ')
  end;
end
$$;

-- Event payloads are JSON objects of at most 256 KiB (text form, as jsonb prints it).
-- Null means "no payload" and is stored as {}.
create function jobforge_private.event_payload_error(p_payload jsonb)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_payload is null or p_payload = 'null'::jsonb then null
    when pg_catalog.jsonb_typeof(p_payload) <> 'object' then 'must be a JSON object'
    when pg_catalog.octet_length(p_payload::text) > 262144 then 'must be at most 256 KiB'
    else jobforge_private.json_depth_error(p_payload)
  end;
end
$$;

-- Optional identifiers (trace_id, actor_id, subject_type, subject_id, ...): null is
-- fine, an empty string is refused (an unset value, almost always).
create function jobforge_private.label_error(p_value text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_value = '' then 'must not be empty'
    when pg_catalog.char_length(p_value) > 255 then 'must be at most 255 characters'
  end;
end
$$;

-- An event's idempotency key: the producer's own id of the event (the TypeScript envelope
-- calls it event_id), which alone makes a resubmission the same event. At most 200
-- characters, so it fits any id scheme with room for a prefix. (A NUL cannot reach this
-- check: PostgreSQL text cannot hold one, and the SDK refuses it before sending.)
create function jobforge_private.event_idempotency_key_error(p_key text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_key = '' then 'must not be empty'
    when pg_catalog.char_length(p_key) > 200 then 'must be at most 200 characters'
  end;
end
$$;

create function jobforge_private.version_error(p_value text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_value = '' then 'must not be empty'
    when pg_catalog.char_length(p_value) > 32 then 'must be at most 32 characters'
  end;
end
$$;

-- redaction_hints: null, or an object whose redact_fields (if present) is an array of at
-- most 100 dotted paths ("user.email", "items.card"). Other keys are kept as given. The
-- CASE inside each argument keeps the array functions off anything but an array (a
-- missing or null redact_fields gets this far: strict jsonpath would raise on it).
-- At most 16 KiB and nested at most 64 deep, as every JSON argument (json_error).
create function jobforge_private.redaction_hints_error(p_hints jsonb)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_hints is null or p_hints = 'null'::jsonb then null
    when pg_catalog.jsonb_typeof(p_hints) <> 'object' then
      'must be a JSON object like {"redact_fields": ["user.email"]}'
    when jobforge_private.json_error(p_hints, 16384) is not null then
      jobforge_private.json_error(p_hints, 16384)
    when coalesce(pg_catalog.jsonb_typeof(p_hints -> 'redact_fields'), 'null') not in ('array', 'null') then
      'redact_fields must be an array of dotted paths'
    when pg_catalog.jsonb_array_length(
        case when pg_catalog.jsonb_typeof(p_hints -> 'redact_fields') = 'array'
          then p_hints -> 'redact_fields' else '[]'::jsonb end
      ) > 100 then
      'redact_fields must have at most 100 paths'
    when pg_catalog.jsonb_path_exists(
        case when pg_catalog.jsonb_typeof(p_hints -> 'redact_fields') = 'array'
          then p_hints -> 'redact_fields' else '[]'::jsonb end,
        'strict $[*] ? (@.type() != "string")'
      )
      or pg_catalog.jsonb_path_exists(
        case when pg_catalog.jsonb_typeof(p_hints -> 'redact_fields') = 'array'
          then p_hints -> 'redact_fields' else '[]'::jsonb end,
        '$[*] ? (!(@ like_regex "^(?=.{1,255}$)[^.[:space:]]+(\\.[^.[:space:]]+)*$"))'
      ) then
      'redact_fields must be an array of dotted paths'
  end;
end
$$;

-- What is wrong with the first element of a jobforge_submit_events batch (a JSON array)
-- that breaks a rule, as {index from 0, field path relative to the element, reason}, or
-- null when none does. One call checks the whole batch.
--
-- The rules of the helpers above are written out here, not called: a function call per
-- element cannot be inlined (00_private.sql), and calling them for 1,000 events takes
-- some 18 ms more, a sixth of the batch submit. So a change to one of those rules is made
-- in both places, and the tests of both the single and the batch submit cover it. (The
-- single submit does not call this instead: checking one element this way costs some
-- 50 us more than the helpers.)
--
-- occurred_at is only checked to be a string here; whether it parses is found out by
-- casting it (see jobforge_submit_events).
create function jobforge_private.event_specs_error(p_events jsonb)
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_error text[];
begin
  select array[(c.ord - 1)::text, c.error[1], c.error[2]]
  into v_error
  from (
    select e.ord, case
      when pg_catalog.jsonb_typeof(e.ev) is distinct from 'object' then
        array['', 'must be a JSON object']
      -- Unknown keys: named below, for the element that has them.
      when e.ev - '{event_type,source_app,payload,source_module,project_id,trace_id,actor_id,subject_type,subject_id,occurred_at,event_version,contains_pii,redaction_hints,idempotency_key}'::text[]
        <> '{}'::jsonb then
        array['.*', 'has unknown fields']
      when coalesce(pg_catalog.jsonb_typeof(e.ev -> 'event_type'), 'null') = 'null' then
        array['.event_type', 'is required']
      when pg_catalog.jsonb_typeof(e.ev -> 'event_type') <> 'string' then
        array['.event_type', 'must be a string']
      -- event_type_error
      when pg_catalog.char_length(e.ev ->> 'event_type') > 255 then
        array['.event_type', 'must be at most 255 characters']
      when e.ev ->> 'event_type' !~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' then
        array['.event_type', 'must be dotted lowercase words, like infrastructure.disk_full']
      when coalesce(pg_catalog.jsonb_typeof(e.ev -> 'source_app'), 'null') = 'null' then
        array['.source_app', 'is required']
      -- source_app_error
      when pg_catalog.jsonb_typeof(e.ev -> 'source_app') <> 'string'
        or e.ev ->> 'source_app' <> all (jobforge_private.source_apps()) then
        array[
          '.source_app',
          'must be one of ' || pg_catalog.array_to_string(jobforge_private.source_apps(), ', ')
        ]
      -- event_payload_error
      when pg_catalog.jsonb_typeof(e.ev -> 'payload') not in ('object', 'null') then
        array['.payload', 'must be a JSON object']
      when pg_catalog.octet_length((e.ev -> 'payload')::text) > 262144 then
        array['.payload', 'must be at most 256 KiB']
      -- json_depth_error (00_private.sql), walked only when the value is big enough to be
      -- that deep (see json_depth_error)
      when pg_catalog.pg_column_size(e.ev -> 'payload') > 256
        and pg_catalog.jsonb_path_exists(
          e.ev -> 'payload', 'strict $.**{64} ? (@.type() == "object" || @.type() == "array")'
        ) then
        array['.payload', 'must be nested at most 64 levels deep']
      -- source_module_error
      when pg_catalog.jsonb_typeof(e.ev -> 'source_module') not in ('string', 'null')
        or e.ev ->> 'source_module' <> all (jobforge_private.source_modules()) then
        array[
          '.source_module',
          'must be one of ' || pg_catalog.array_to_string(jobforge_private.source_modules(), ', ')
        ]
      -- is_uuid_text (00_private.sql)
      when pg_catalog.jsonb_typeof(e.ev -> 'project_id') not in ('string', 'null')
        or e.ev ->> 'project_id' !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' then
        array['.project_id', 'must be a UUID']
      -- label_error, for each of the four identifiers
      when pg_catalog.jsonb_typeof(e.ev -> 'trace_id') not in ('string', 'null') then
        array['.trace_id', 'must be a string']
      when e.ev ->> 'trace_id' = '' then
        array['.trace_id', 'must not be empty']
      when pg_catalog.char_length(e.ev ->> 'trace_id') > 255 then
        array['.trace_id', 'must be at most 255 characters']
      when pg_catalog.jsonb_typeof(e.ev -> 'actor_id') not in ('string', 'null') then
        array['.actor_id', 'must be a string']
      when e.ev ->> 'actor_id' = '' then
        array['.actor_id', 'must not be empty']
      when pg_catalog.char_length(e.ev ->> 'actor_id') > 255 then
        array['.actor_id', 'must be at most 255 characters']
      when pg_catalog.jsonb_typeof(e.ev -> 'subject_type') not in ('string', 'null') then
        array['.subject_type', 'must be a string']
      when e.ev ->> 'subject_type' = '' then
        array['.subject_type', 'must not be empty']
      when pg_catalog.char_length(e.ev ->> 'subject_type') > 255 then
        array['.subject_type', 'must be at most 255 characters']
      when pg_catalog.jsonb_typeof(e.ev -> 'subject_id') not in ('string', 'null') then
        array['.subject_id', 'must be a string']
      when e.ev ->> 'subject_id' = '' then
        array['.subject_id', 'must not be empty']
      when pg_catalog.char_length(e.ev ->> 'subject_id') > 255 then
        array['.subject_id', 'must be at most 255 characters']
      when pg_catalog.jsonb_typeof(e.ev -> 'occurred_at') not in ('string', 'null') then
        array['.occurred_at', 'must be an ISO 8601 timestamp']
      -- event_idempotency_key_error
      when pg_catalog.jsonb_typeof(e.ev -> 'idempotency_key') not in ('string', 'null') then
        array['.idempotency_key', 'must be a string']
      when e.ev ->> 'idempotency_key' = '' then
        array['.idempotency_key', 'must not be empty']
      when pg_catalog.char_length(e.ev ->> 'idempotency_key') > 200 then
        array['.idempotency_key', 'must be at most 200 characters']
      -- version_error
      when pg_catalog.jsonb_typeof(e.ev -> 'event_version') not in ('string', 'null') then
        array['.event_version', 'must be a string']
      when e.ev ->> 'event_version' = '' then
        array['.event_version', 'must not be empty']
      when pg_catalog.char_length(e.ev ->> 'event_version') > 32 then
        array['.event_version', 'must be at most 32 characters']
      when pg_catalog.jsonb_typeof(e.ev -> 'contains_pii') not in ('boolean', 'null') then
        array['.contains_pii', 'must be a boolean']
      -- redaction_hints_error
      when pg_catalog.jsonb_typeof(e.ev -> 'redaction_hints') not in ('object', 'null') then
        array['.redaction_hints', 'must be a JSON object like {"redact_fields": ["user.email"]}']
      when pg_catalog.octet_length((e.ev -> 'redaction_hints')::text) > 16384 then
        array['.redaction_hints', 'must be at most 16 KiB']
      when pg_catalog.jsonb_path_exists(
        e.ev -> 'redaction_hints', 'strict $.**{64} ? (@.type() == "object" || @.type() == "array")'
      ) then
        array['.redaction_hints', 'must be nested at most 64 levels deep']
      when pg_catalog.jsonb_typeof(e.ev #> '{redaction_hints,redact_fields}') not in ('array', 'null') then
        array['.redaction_hints', 'redact_fields must be an array of dotted paths']
      -- The CASE inside each argument keeps the array functions off anything but an array
      -- (the branch above lets a missing or null redact_fields through).
      when pg_catalog.jsonb_array_length(
          case when pg_catalog.jsonb_typeof(e.ev #> '{redaction_hints,redact_fields}') = 'array'
            then e.ev #> '{redaction_hints,redact_fields}' else '[]'::jsonb end
        ) > 100 then
        array['.redaction_hints', 'redact_fields must have at most 100 paths']
      when pg_catalog.jsonb_path_exists(
          case when pg_catalog.jsonb_typeof(e.ev #> '{redaction_hints,redact_fields}') = 'array'
            then e.ev #> '{redaction_hints,redact_fields}' else '[]'::jsonb end,
          'strict $[*] ? (@.type() != "string")'
        )
        or pg_catalog.jsonb_path_exists(
          case when pg_catalog.jsonb_typeof(e.ev #> '{redaction_hints,redact_fields}') = 'array'
            then e.ev #> '{redaction_hints,redact_fields}' else '[]'::jsonb end,
          '$[*] ? (!(@ like_regex "^(?=.{1,255}$)[^.[:space:]]+(\\.[^.[:space:]]+)*$"))'
        ) then
        array['.redaction_hints', 'redact_fields must be an array of dotted paths']
    end
    from pg_catalog.jsonb_array_elements(p_events) with ordinality as e (ev, ord)
  ) as c (ord, error)
  where c.error is not null
  order by c.ord
  limit 1;

  if v_error[2] = '.*' then
    select array[
      v_error[1],
      '.' || pg_catalog.min(k.key),
      'is not a known field (unknown: ' || pg_catalog.string_agg(k.key, ', ' order by k.key) || ')'
    ]
    into v_error
    from pg_catalog.jsonb_object_keys(
      (p_events -> v_error[1]::integer)
        - '{event_type,source_app,payload,source_module,project_id,trace_id,actor_id,subject_type,subject_id,occurred_at,event_version,contains_pii,redaction_hints,idempotency_key}'::text[]
    ) as k (key);
  end if;
  return v_error;
end
$$;

-- event_type_filter of an event trigger: an exact event type, or a prefix ending in .*
-- ("infrastructure.*" matches infrastructure.disk_full and infrastructure.disk.full).
create function jobforge_private.event_filter_error(p_filter text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_filter is null then 'is required for event triggers'
    when pg_catalog.char_length(p_filter) > 255 then 'must be at most 255 characters'
    when p_filter !~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'
      and p_filter !~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.\*$' then
      'must be an event type (like infrastructure.disk_full) or a prefix ending in .* (like infrastructure.*)'
  end;
end
$$;

-- Replace the value at a path (as an array of keys) with "[REDACTED]". An array met on
-- the way takes the rest of the path to every element; a missing key leaves the value
-- as it is.
create function jobforge_private.redact_path(p_value jsonb, p_path text[])
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_value is null then
    return null;
  end if;
  if coalesce(pg_catalog.cardinality(p_path), 0) = 0 then
    return '"[REDACTED]"'::jsonb;
  end if;
  case pg_catalog.jsonb_typeof(p_value)
    when 'array' then
      return (
        select coalesce(
          pg_catalog.jsonb_agg(jobforge_private.redact_path(e.value, p_path) order by e.ord),
          '[]'::jsonb
        )
        from pg_catalog.jsonb_array_elements(p_value) with ordinality as e (value, ord)
      );
    when 'object' then
      if p_value ? p_path[1] then
        return pg_catalog.jsonb_set(
          p_value,
          array[p_path[1]],
          jobforge_private.redact_path(p_value -> p_path[1], p_path[2:])
        );
      end if;
      return p_value;
    else
      return p_value;
  end case;
end
$$;

-- Redact each dotted path ("user.email", "items.card") of a payload.
create function jobforge_private.redact(p_payload jsonb, p_paths text[])
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_path text;
begin
  if p_payload is null or p_paths is null then
    return p_payload;
  end if;
  foreach v_path in array p_paths loop
    continue when v_path is null or v_path = '';
    p_payload := jobforge_private.redact_path(p_payload, pg_catalog.string_to_array(v_path, '.'));
  end loop;
  return p_payload;
end
$$;

-- Every leaf value becomes "[REDACTED]"; keys and structure are kept.
create function jobforge_private.redact_all(p_payload jsonb)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  case pg_catalog.jsonb_typeof(p_payload)
    when 'object' then
      return (
        select coalesce(
          pg_catalog.jsonb_object_agg(e.key, jobforge_private.redact_all(e.value)), '{}'::jsonb
        )
        from pg_catalog.jsonb_each(p_payload) as e
      );
    when 'array' then
      return (
        select coalesce(
          pg_catalog.jsonb_agg(jobforge_private.redact_all(e.value) order by e.ord), '[]'::jsonb
        )
        from pg_catalog.jsonb_array_elements(p_payload) with ordinality as e (value, ord)
      );
    when null then
      return null;
    else
      return '"[REDACTED]"'::jsonb;
  end case;
end
$$;

-- The payload of an event as anyone but a trusted raw reader may see it: the
-- redact_fields of its hints are redacted; without hints, a payload marked as
-- containing PII is redacted entirely; otherwise it is shown as is.
create function jobforge_private.event_safe_payload(
  p_payload jsonb,
  p_contains_pii boolean,
  p_redaction_hints jsonb
)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  if pg_catalog.jsonb_typeof(p_redaction_hints -> 'redact_fields') = 'array'
    and pg_catalog.jsonb_array_length(p_redaction_hints -> 'redact_fields') > 0 then
    return jobforge_private.redact(
      p_payload,
      array(
        select pg_catalog.jsonb_array_elements_text(p_redaction_hints -> 'redact_fields')
      )
    );
  end if;
  if p_contains_pii then
    return jobforge_private.redact_all(p_payload);
  end if;
  return p_payload;
end
$$;

create table public.jobforge_events (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  project_id uuid,
  event_version text not null default '1.0'
    check (event_version <> '' and char_length(event_version) <= 32),
  event_type text not null
    check (event_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' and char_length(event_type) <= 255),
  occurred_at timestamptz not null,
  trace_id text not null check (trace_id <> '' and char_length(trace_id) <= 255),
  idempotency_key text check (idempotency_key <> '' and char_length(idempotency_key) <= 200),
  actor_id text check (char_length(actor_id) <= 255),
  source_app text not null
    check (source_app = any (jobforge_private.source_apps())),
  source_module text check (source_module = any (jobforge_private.source_modules())),
  subject_type text check (char_length(subject_type) <= 255),
  subject_id text check (char_length(subject_id) <= 255),
  payload jsonb not null default '{}' check (jsonb_typeof(payload) = 'object'),
  contains_pii boolean not null default false,
  redaction_hints jsonb check (redaction_hints is null or jsonb_typeof(redaction_hints) = 'object'),
  processed boolean not null default false,
  processed_at timestamptz,
  processing_job_id uuid,
  created_at timestamptz not null default now(),
  -- The identity of an event: submitting it again changes nothing. The idempotency key
  -- is a second identity (the index below): either one makes a resubmission the same event.
  constraint jobforge_events_identity_key unique (tenant_id, trace_id, event_type, occurred_at)
);

-- One event per tenant and idempotency key, whatever its trace_id and occurred_at: a
-- retry that leaves occurred_at to the server (a new now()) is still the same event.
-- Partial, so the events without a key cost no index entry.
create unique index jobforge_events_tenant_idempotency_key
  on public.jobforge_events (tenant_id, idempotency_key)
  where idempotency_key is not null;

comment on table public.jobforge_events is
  'JobForge events, one row per ingested event. Written only through jobforge_submit_event(s).';

-- Listing a tenant's events newest first, alone or by type. id breaks ties in
-- occurred_at, so each index gives the exact order of jobforge_list_events.
create index jobforge_events_tenant_occurred
  on public.jobforge_events (tenant_id, occurred_at desc, id desc);

create index jobforge_events_tenant_type_occurred
  on public.jobforge_events (tenant_id, event_type, occurred_at desc, id desc);

-- Retention: rows arrive in created_at order, so a BRIN index finds the old ones at
-- almost no cost per insert.
create index jobforge_events_created_brin
  on public.jobforge_events using brin (created_at);

-- Row-level security: authenticated reads its tenants' rows; no write policies.
alter table public.jobforge_events enable row level security;

create policy jobforge_events_tenant_select on public.jobforge_events
  for select to authenticated
  using (tenant_id = any ((select jobforge_private.jwt_tenant_ids())::uuid[]));

-- Supabase's default privileges grant everything on new tables to the API roles: take
-- it back; writes go through the RPCs only.
revoke all on table
  public.jobforge_events
  from public, anon, authenticated, service_role;


-- Event payloads may hold fields the producer marked for redaction. A tenant's users read
-- events through jobforge_list_events, which redacts; reading the table directly (RLS
-- lets them see their tenant's rows) must not hand them the raw payload, so authenticated
-- gets every column but payload. service_role, trusted with raw payloads, reads them all.
grant select on table public.jobforge_events to service_role;
grant select (
  id, tenant_id, project_id, event_version, event_type, occurred_at, trace_id,
  idempotency_key, actor_id, source_app, source_module, subject_type, subject_id,
  contains_pii, redaction_hints, processed, processed_at, processing_job_id, created_at
) on table public.jobforge_events to authenticated;

create function public.jobforge_submit_event(
  p_tenant_id uuid,
  p_event_type text,
  p_source_app text,
  p_payload jsonb default '{}',
  p_source_module text default null,
  p_project_id uuid default null,
  p_trace_id text default null,
  p_actor_id text default null,
  p_subject_type text default null,
  p_subject_id text default null,
  p_occurred_at timestamptz default null,
  p_event_version text default '1.0',
  p_contains_pii boolean default false,
  p_redaction_hints jsonb default null,
  p_idempotency_key text default null
)
returns json
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_event public.jobforge_events;
  v_reason text;
  v_trace_id text;
  v_occurred_at timestamptz;
  v_actor text;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);

  v_reason := jobforge_private.event_type_error(p_event_type);
  if v_reason is not null then
    perform jobforge_private.invalid('event_type', v_reason);
  end if;
  v_reason := jobforge_private.source_app_error(p_source_app);
  if v_reason is not null then
    perform jobforge_private.invalid('source_app', v_reason);
  end if;
  p_payload := coalesce(nullif(p_payload, 'null'::jsonb), '{}'::jsonb);
  v_reason := jobforge_private.event_payload_error(p_payload);
  if v_reason is not null then
    perform jobforge_private.invalid('payload', v_reason);
  end if;
  v_reason := jobforge_private.source_module_error(p_source_module);
  if v_reason is not null then
    perform jobforge_private.invalid('source_module', v_reason);
  end if;
  v_reason := jobforge_private.label_error(p_trace_id);
  if v_reason is not null then
    perform jobforge_private.invalid('trace_id', v_reason);
  end if;
  v_reason := jobforge_private.label_error(p_actor_id);
  if v_reason is not null then
    perform jobforge_private.invalid('actor_id', v_reason);
  end if;
  v_reason := jobforge_private.label_error(p_subject_type);
  if v_reason is not null then
    perform jobforge_private.invalid('subject_type', v_reason);
  end if;
  v_reason := jobforge_private.label_error(p_subject_id);
  if v_reason is not null then
    perform jobforge_private.invalid('subject_id', v_reason);
  end if;
  p_event_version := coalesce(p_event_version, '1.0');
  v_reason := jobforge_private.version_error(p_event_version);
  if v_reason is not null then
    perform jobforge_private.invalid('event_version', v_reason);
  end if;
  p_redaction_hints := nullif(p_redaction_hints, 'null'::jsonb);
  v_reason := jobforge_private.redaction_hints_error(p_redaction_hints);
  if v_reason is not null then
    perform jobforge_private.invalid('redaction_hints', v_reason);
  end if;
  v_reason := jobforge_private.event_idempotency_key_error(p_idempotency_key);
  if v_reason is not null then
    perform jobforge_private.invalid('idempotency_key', v_reason);
  end if;

  v_trace_id := coalesce(p_trace_id, gen_random_uuid()::text);
  v_occurred_at := coalesce(p_occurred_at, now());

  loop
    -- No conflict target: a taken identity and a taken idempotency key both mean "the
    -- same event" (the two unique indexes of jobforge_events).
    insert into public.jobforge_events as e (
      tenant_id, project_id, event_version, event_type, occurred_at, trace_id,
      idempotency_key, actor_id, source_app, source_module, subject_type, subject_id,
      payload, contains_pii, redaction_hints
    )
    values (
      p_tenant_id, p_project_id, p_event_version, p_event_type, v_occurred_at, v_trace_id,
      p_idempotency_key, p_actor_id, p_source_app, p_source_module, p_subject_type,
      p_subject_id, p_payload, coalesce(p_contains_pii, false), p_redaction_hints
    )
    on conflict do nothing
    returning e.* into v_event;

    exit when found;

    -- Submitted before: return the stored event as it is; nothing else happens. The key
    -- wins when it and the identity name two different stored events.
    select e.* into v_event
    from public.jobforge_events e
    where e.tenant_id = p_tenant_id
      and (
        e.idempotency_key = p_idempotency_key
        or (e.trace_id = v_trace_id and e.event_type = p_event_type and e.occurred_at = v_occurred_at)
      )
    order by e.idempotency_key = p_idempotency_key desc nulls last
    limit 1;
    if found then
      return pg_catalog.row_to_json(v_event);
    end if;
    -- Purged between the two statements: insert again.
  end loop;

  -- The audit row, written here rather than through jobforge_private.audit(): this is
  -- the hot path, and the call costs as much as the insert. No content (10_audit.sql):
  -- the payload as a digest and its key names, the names of the redacted fields, and no
  -- subject_id (the event row holds it, and goes with the event's retention).
  v_actor := jobforge_private.audit_actor(p_actor_id);
  insert into public.jobforge_audit_logs
    (tenant_id, project_id, action, actor_id, trace_id, target_type, target_id, outcome, details)
  values (
    p_tenant_id, p_project_id, 'event_ingest', v_actor, v_trace_id, 'event', v_event.id::text,
    'success',
    pg_catalog.jsonb_build_object(
      'event_type', p_event_type,
      'source_app', p_source_app,
      'source_module', p_source_module,
      'subject_type', p_subject_type,
      'idempotency_key', p_idempotency_key,
      'contains_pii', v_event.contains_pii,
      'payload_sha256', jobforge_private.audit_digest(v_event.payload),
      'payload_bytes', pg_catalog.octet_length(v_event.payload::text),
      'payload_keys', jobforge_private.audit_key_names(v_event.payload),
      'redacted_fields', case
        when pg_catalog.jsonb_typeof(v_event.redaction_hints -> 'redact_fields') = 'array'
          then v_event.redaction_hints -> 'redact_fields'
        else '[]'::jsonb
      end
    )
  );

  -- The fast path: one probe of a small partial index.
  if exists (
    select 1
    from public.jobforge_triggers t
    where t.tenant_id = p_tenant_id and t.enabled and t.trigger_type = 'event'
  ) then
    v_event := jobforge_private.fire_event_triggers(v_event, v_actor);
  end if;

  return pg_catalog.row_to_json(v_event);
end
$$;

comment on function public.jobforge_submit_event is
  'Ingest one event (idempotent per tenant and idempotency_key, and per tenant, trace_id, event_type, occurred_at), audit it without its payload (a digest and key names), and fire the matching event triggers. authenticated (own tenants) and service_role.';

create function public.jobforge_submit_events(
  p_tenant_id uuid,
  p_events jsonb,
  -- 'rows' (the stored rows) or 'ids' (their ids only: the database need not build the
  -- rows for a producer that does not read them back).
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
  v_inserted_ids uuid[];
  v_actors text[];
  v_trace_ids integer;
  v_first_trace_id text;
  v_event_types jsonb;
  v_event public.jobforge_events;
  v_actor text;
  v_fired boolean := false;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);

  if p_events is null
    or pg_catalog.jsonb_typeof(p_events) <> 'array'
    or pg_catalog.jsonb_array_length(p_events) = 0 then
    perform jobforge_private.invalid('events', 'must be a non-empty JSON array');
  end if;
  v_count := pg_catalog.jsonb_array_length(p_events);
  if v_count > 1000 then
    perform jobforge_private.invalid('events', 'at most 1000 events per batch');
  end if;
  if p_returning is null or p_returning not in ('rows', 'ids') then
    perform jobforge_private.invalid('returning', 'must be rows or ids');
  end if;

  -- The first element that breaks a rule, in input order (events[0] is the first).
  v_error := jobforge_private.event_specs_error(p_events);
  if v_error is not null then
    perform jobforge_private.invalid(pg_catalog.format('events[%s]%s', v_error[1], v_error[2]), v_error[3]);
  end if;

  begin
    -- One statement for the batch. Each element gets its id up front, so the inserted
    -- rows can be matched to their position; an element whose identity or idempotency
    -- key is taken (or repeats an earlier element's) inserts nothing and is filled in
    -- below. No conflict target, as in jobforge_submit_event.
    with input as materialized (
      select
        e.ord,
        gen_random_uuid() as id,
        e.elem,
        coalesce(e.elem ->> 'trace_id', gen_random_uuid()::text) as trace_id,
        coalesce((e.elem ->> 'occurred_at')::timestamptz, now()) as occurred_at
      from pg_catalog.jsonb_array_elements(p_events) with ordinality as e (elem, ord)
    ),
    inserted as (
      insert into public.jobforge_events as ev (
        id, tenant_id, project_id, event_version, event_type, occurred_at, trace_id,
        idempotency_key, actor_id, source_app, source_module, subject_type, subject_id,
        payload, contains_pii, redaction_hints
      )
      select
        i.id,
        p_tenant_id,
        (i.elem ->> 'project_id')::uuid,
        coalesce(i.elem ->> 'event_version', '1.0'),
        i.elem ->> 'event_type',
        i.occurred_at,
        i.trace_id,
        i.elem ->> 'idempotency_key',
        i.elem ->> 'actor_id',
        i.elem ->> 'source_app',
        i.elem ->> 'source_module',
        i.elem ->> 'subject_type',
        i.elem ->> 'subject_id',
        coalesce(nullif(i.elem -> 'payload', 'null'::jsonb), '{}'::jsonb),
        case when pg_catalog.jsonb_typeof(i.elem -> 'contains_pii') = 'boolean'
          then (i.elem -> 'contains_pii')::boolean else false end,
        nullif(i.elem -> 'redaction_hints', 'null'::jsonb)
      from input i
      order by i.ord
      on conflict do nothing
      returning ev.*
    )
    -- The rows' JSON is built only when asked for (the FILTER keeps the aggregate from
    -- running otherwise), and as json: jsonb would sort keys for nobody. Elements that
    -- inserted nothing (x.id is null) are filled in below.
    select
      pg_catalog.json_agg(
        case when x.id is null then null else pg_catalog.row_to_json(x) end
        order by i.ord
      ) filter (where p_returning = 'rows'),
      pg_catalog.array_agg(x.id order by i.ord),
      pg_catalog.count(x.id),
      pg_catalog.array_agg(x.id order by i.ord) filter (where x.id is not null),
      pg_catalog.array_agg(distinct x.actor_id) filter (where x.actor_id is not null),
      pg_catalog.count(distinct i.trace_id),
      pg_catalog.min(i.trace_id),
      pg_catalog.jsonb_agg(distinct i.elem -> 'event_type')
    into v_rows, v_ids, v_inserted, v_inserted_ids, v_actors, v_trace_ids, v_first_trace_id, v_event_types
    from input i
    left join inserted x on x.id = i.id;
  exception
    when data_exception then
      -- Every field but occurred_at was checked above, so an occurred_at that does not
      -- parse as a timestamp is what failed: name the first one.
      for v_index in 0 .. v_count - 1 loop
        begin
          perform (p_events -> v_index::integer ->> 'occurred_at')::timestamptz;
        exception
          when data_exception then
            perform jobforge_private.invalid(
              pg_catalog.format('events[%s].occurred_at', v_index), 'must be an ISO 8601 timestamp'
            );
        end;
      end loop;
      raise;
  end;

  if v_inserted > 0 then
    -- One audit row for the batch: ids and types, never payloads.
    v_actor := jobforge_private.audit_actor(
      case when pg_catalog.cardinality(v_actors) = 1 then v_actors[1] end
    );
    perform jobforge_private.audit(
      p_tenant_id, null, 'event_ingest', v_actor,
      case when v_trace_ids = 1 then v_first_trace_id end,
      'event_batch', null, 'success', null,
      pg_catalog.jsonb_build_object(
        'count', v_count,
        'inserted', v_inserted,
        'event_ids', pg_catalog.to_jsonb(v_inserted_ids),
        'event_types', v_event_types
      )
    );

    if exists (
      select 1
      from public.jobforge_triggers t
      where t.tenant_id = p_tenant_id and t.enabled and t.trigger_type = 'event'
    ) then
      v_fired := true;
      for v_event in
        select e.*
        from pg_catalog.unnest(v_inserted_ids) with ordinality as u (id, ord)
        join public.jobforge_events e on e.id = u.id
        order by u.ord
      loop
        perform jobforge_private.fire_event_triggers(v_event, v_actor);
      end loop;
    end if;
  end if;

  if v_inserted < v_count then
    -- A duplicate gets the id of the stored event. A new statement has a new snapshot,
    -- so this also sees identities that a concurrent batch committed meanwhile. A
    -- duplicate had an explicit idempotency key or trace_id (generated trace ids are
    -- unique); the key wins when the two name different stored events. An event purged
    -- in between leaves a null.
    select pg_catalog.array_agg(
      coalesce(u.id, (
        select e.id
        from public.jobforge_events e
        where e.tenant_id = p_tenant_id
          and (
            e.idempotency_key = p_events -> (u.ord::integer - 1) ->> 'idempotency_key'
            or (
              e.trace_id = p_events -> (u.ord::integer - 1) ->> 'trace_id'
              and e.event_type = p_events -> (u.ord::integer - 1) ->> 'event_type'
              and e.occurred_at = coalesce((p_events -> (u.ord::integer - 1) ->> 'occurred_at')::timestamptz, now())
            )
          )
        order by e.idempotency_key = p_events -> (u.ord::integer - 1) ->> 'idempotency_key' desc nulls last
        limit 1
      ))
      order by u.ord
    )
    into v_ids
    from pg_catalog.unnest(v_ids) with ordinality as u (id, ord);
  end if;

  if p_returning = 'ids' then
    return (
      select pg_catalog.json_agg(u.id order by u.ord)
      from pg_catalog.unnest(v_ids) with ordinality as u (id, ord)
    );
  end if;
  if v_inserted < v_count or v_fired then
    -- Duplicates get the stored row, and fired triggers may have marked events
    -- processed: read the rows as they are now.
    select pg_catalog.json_agg(
      case when e.id is null then null else pg_catalog.row_to_json(e) end
      order by u.ord
    )
    into v_rows
    from pg_catalog.unnest(v_ids) with ordinality as u (id, ord)
    left join public.jobforge_events e on e.id = u.id;
  end if;

  return v_rows;
end
$$;

comment on function public.jobforge_submit_events is
  'Ingest up to 1,000 events in one statement (duplicates by idempotency_key or by trace_id, event_type, occurred_at return the stored row), one audit row for the batch (ids and types, no payloads), then fire event triggers for the new events. Returns the rows in input order (with p_returning ''ids'', their ids). authenticated (own tenants) and service_role.';

create function public.jobforge_list_events(
  p_tenant_id uuid,
  p_project_id uuid default null,
  p_filters jsonb default '{}'
)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_event_type text;
  v_source_app text;
  v_source_module text;
  v_processed boolean;
  v_trace_id text;
  v_subject_type text;
  v_subject_id text;
  v_from timestamptz;
  v_to timestamptz;
  v_limit integer;
  v_offset integer;
  v_raw boolean;
  v_reason text;
  v_sql text;
  v_rows jsonb;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);

  p_filters := jobforge_private.filters_object(
    p_filters,
    array['event_type', 'source_app', 'source_module', 'processed', 'trace_id',
      'subject_type', 'subject_id', 'from', 'to', 'limit', 'offset', 'raw']
  );

  v_event_type := jobforge_private.filter_text(p_filters, 'event_type');
  v_reason := jobforge_private.event_type_error(coalesce(v_event_type, 'a.b'));
  if v_reason is not null then
    perform jobforge_private.invalid('event_type', v_reason);
  end if;
  v_source_app := jobforge_private.filter_text(p_filters, 'source_app');
  v_reason := jobforge_private.source_app_error(coalesce(v_source_app, 'jobforge'));
  if v_reason is not null then
    perform jobforge_private.invalid('source_app', v_reason);
  end if;
  v_source_module := jobforge_private.filter_text(p_filters, 'source_module');
  v_reason := jobforge_private.source_module_error(v_source_module);
  if v_reason is not null then
    perform jobforge_private.invalid('source_module', v_reason);
  end if;
  v_processed := jobforge_private.filter_boolean(p_filters, 'processed');
  v_trace_id := jobforge_private.filter_text(p_filters, 'trace_id');
  v_subject_type := jobforge_private.filter_text(p_filters, 'subject_type');
  v_subject_id := jobforge_private.filter_text(p_filters, 'subject_id');
  v_from := jobforge_private.filter_timestamp(p_filters, 'from');
  v_to := jobforge_private.filter_timestamp(p_filters, 'to');
  v_limit := jobforge_private.filter_integer(p_filters, 'limit', 1, 1000, 100);
  v_offset := jobforge_private.filter_integer(p_filters, 'offset', 0, 2147483647, 0);
  v_raw := coalesce(jobforge_private.filter_boolean(p_filters, 'raw'), false);
  if v_raw and not jobforge_private.caller_is_trusted() then
    raise exception using
      errcode = 'PT403', message = 'raw: only service_role may read raw payloads';
  end if;

  -- Only the filters given become predicates, and EXECUTE plans the query with the
  -- values: a page is an index scan of (tenant_id, occurred_at) or of (tenant_id,
  -- event_type, occurred_at), read in order and stopped at the limit.
  v_sql := 'select coalesce(pg_catalog.jsonb_agg('
    || case when v_raw then 'pg_catalog.to_jsonb(page)'
      -- Only rows with something to redact pay for the redaction call.
      else 'case when page.redaction_hints is null and not page.contains_pii'
        || ' then pg_catalog.to_jsonb(page)'
        || ' else pg_catalog.to_jsonb(page) || pg_catalog.jsonb_build_object(''payload'','
        || ' jobforge_private.event_safe_payload(page.payload, page.contains_pii, page.redaction_hints)) end'
      end
    || ' order by page.occurred_at desc, page.id desc), ''[]''::jsonb)'
    || ' from (select e.* from public.jobforge_events e where e.tenant_id = $1'
    || case when p_project_id is not null then ' and e.project_id = $2' else '' end
    || case when v_event_type is not null then ' and e.event_type = $3' else '' end
    || case when v_source_app is not null then ' and e.source_app = $4' else '' end
    || case when v_source_module is not null then ' and e.source_module = $5' else '' end
    || case when v_processed is not null then ' and e.processed = $6' else '' end
    || case when v_trace_id is not null then ' and e.trace_id = $7' else '' end
    || case when v_subject_type is not null then ' and e.subject_type = $8' else '' end
    || case when v_subject_id is not null then ' and e.subject_id = $9' else '' end
    || case when v_from is not null then ' and e.occurred_at >= $10' else '' end
    || case when v_to is not null then ' and e.occurred_at < $11' else '' end
    || ' order by e.occurred_at desc, e.id desc limit $12 offset $13) as page';

  execute v_sql into v_rows
  using p_tenant_id, p_project_id, v_event_type, v_source_app, v_source_module, v_processed,
    v_trace_id, v_subject_type, v_subject_id, v_from, v_to, v_limit, v_offset;

  return v_rows;
end
$$;

comment on function public.jobforge_list_events is
  'Events of a tenant, newest first, payloads redacted; filters event_type, source_app, source_module, processed, trace_id, subject_type, subject_id, from, to, limit, offset, raw (service_role only). authenticated (own tenants) and service_role.';

-- Retention of events by age, at most p_batch_size (1-10,000) events per call, the
-- caller looping while the answer says more (each call one short transaction, as
-- jobforge_purge_finished_jobs). SKIP LOCKED: an event whose triggers are being fired
-- right now is left for the next call. The bookkeeping that ages with the events goes in
-- batches of the same size in the same call: fire records older than the retention and at
-- least a day old (the hourly limit looks back one hour; a cron slot stays fired through
-- jobforge_triggers.last_scheduled_for), and used token ids whose token has expired (an
-- expired token is refused anyway). more is true while any of the three has rows left.
create function public.jobforge_purge_expired_events(
  p_retention_days integer default 30,
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
  v_fire_rows integer;
  v_jtis text[];
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

  v_ids := array(
    select e.id
    from public.jobforge_events e
    where e.created_at < v_cutoff
    limit p_batch_size + 1
    for update skip locked
  );
  delete from public.jobforge_events e where e.id = any (v_ids[1:p_batch_size]);
  get diagnostics v_deleted = row_count;

  with batch as (
    select f.trigger_id, f.fire_key
    from jobforge_private.trigger_fires f
    where f.fired_at < least(v_cutoff, now() - interval '1 day')
    limit p_batch_size + 1
  ),
  gone as (
    delete from jobforge_private.trigger_fires f
    using (select b.trigger_id, b.fire_key from batch b limit p_batch_size) as b
    where f.trigger_id = b.trigger_id and f.fire_key = b.fire_key
    returning 1
  )
  select pg_catalog.count(*)::integer into v_fire_rows from batch;

  v_jtis := array(
    select u.jti
    from jobforge_private.policy_token_uses u
    where u.expires_at < now()
    limit p_batch_size + 1
  );
  delete from jobforge_private.policy_token_uses u where u.jti = any (v_jtis[1:p_batch_size]);

  v_more := pg_catalog.cardinality(v_ids) > p_batch_size
    or v_fire_rows > p_batch_size
    or pg_catalog.cardinality(v_jtis) > p_batch_size;

  perform jobforge_private.audit_purge(
    'jobforge_events', v_deleted, v_cutoff,
    pg_catalog.jsonb_build_object('batch_size', p_batch_size, 'more', v_more)
  );
  return pg_catalog.json_build_object('deleted', v_deleted, 'more', v_more);
end
$$;

comment on function public.jobforge_purge_expired_events is
  'Delete up to p_batch_size (1-10000) events created more than p_retention_days (1-36500) ago, and as many stale trigger-fire and token-use records; answers {deleted, more} (call again while more); one retention_purge audit row. service_role only.';
