-- JobForge execution plane: events, autopilot job templates, artifact manifests, the
-- append-only audit trail, cron and event triggers, and signed policy tokens that gate
-- action jobs.
--
-- Same contract as 001_jobforge_core.sql (docs/DESIGN.md sections 3 and 5):
--   * every RPC is SECURITY DEFINER with an empty search_path, names every object with
--     its schema, checks the right of the caller to the tenant before anything else, and
--     returns jsonb (the purge functions return a count);
--   * EXECUTE is revoked from PUBLIC and anon and granted explicitly; service_role-only
--     RPCs revoke it from authenticated as well (Supabase's default privileges grant it);
--   * errors: PT400 invalid input ("field: reason"), PT403 not allowed (tenant mismatch,
--     policy token refused), PT404 not found for this tenant, PT409 state conflict;
--   * every table has RLS on, a SELECT policy for authenticated, and no write policy.
--
-- Audit: every write RPC adds exactly one row to jobforge_audit_logs in its own
-- transaction (a trigger fire adds one per trigger it evaluates). The actor recorded is
-- p_actor_id when the caller is trusted (service_role acts for its users), and the JWT
-- subject otherwise: an authenticated user cannot write another name into the trail.

-- ---------------------------------------------------------------------------------------
-- Private helpers: input rules (SQL-standard bodies, inlined by the planner, as in 001)
-- ---------------------------------------------------------------------------------------

create function jobforge_private.event_type_error(p_event_type text)
returns text
language sql
immutable
return case
  when p_event_type is null then 'is required'
  when pg_catalog.char_length(p_event_type) > 255 then 'must be at most 255 characters'
  when p_event_type !~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' then
    'must be dotted lowercase words, like infrastructure.disk_full'
end;

revoke all on function jobforge_private.event_type_error(text)
  from public, anon, authenticated, service_role;

create function jobforge_private.source_app_error(p_source_app text)
returns text
language sql
immutable
return case
  when p_source_app is null then 'is required'
  when p_source_app not in ('settler', 'aias', 'keys', 'readylayer', 'jobforge', 'external') then
    'must be one of settler, aias, keys, readylayer, jobforge, external'
end;

revoke all on function jobforge_private.source_app_error(text)
  from public, anon, authenticated, service_role;

-- Null is allowed: an event need not come from a module.
create function jobforge_private.source_module_error(p_source_module text)
returns text
language sql
immutable
return case
  when p_source_module not in ('ops', 'support', 'growth', 'finops', 'core') then
    'must be one of ops, support, growth, finops, core'
end;

revoke all on function jobforge_private.source_module_error(text)
  from public, anon, authenticated, service_role;

-- Event payloads are JSON objects of at most 256 KiB (text form, as jsonb prints it).
-- Null means "no payload" and is stored as {}.
create function jobforge_private.event_payload_error(p_payload jsonb)
returns text
language sql
immutable
return case
  when p_payload is null or p_payload = 'null'::jsonb then null
  when pg_catalog.jsonb_typeof(p_payload) <> 'object' then 'must be a JSON object'
  when pg_catalog.octet_length(p_payload::text) > 262144 then 'must be at most 256 KiB'
end;

revoke all on function jobforge_private.event_payload_error(jsonb)
  from public, anon, authenticated, service_role;

-- Optional identifiers (trace_id, actor_id, subject_type, subject_id, ...): null is
-- fine, an empty string is refused (an unset value, almost always).
create function jobforge_private.label_error(p_value text)
returns text
language sql
immutable
return case
  when p_value = '' then 'must not be empty'
  when pg_catalog.char_length(p_value) > 255 then 'must be at most 255 characters'
end;

revoke all on function jobforge_private.label_error(text)
  from public, anon, authenticated, service_role;

create function jobforge_private.version_error(p_value text)
returns text
language sql
immutable
return case
  when p_value = '' then 'must not be empty'
  when pg_catalog.char_length(p_value) > 32 then 'must be at most 32 characters'
end;

revoke all on function jobforge_private.version_error(text)
  from public, anon, authenticated, service_role;

-- redaction_hints: null, or an object whose redact_fields (if present) is an array of at
-- most 100 dotted paths ("user.email", "items.card"). Other keys are kept as given.
-- jsonpath rather than sub-selects: a body with a sub-select is not inlined, and the
-- batch submit checks up to 1,000 elements with it.
create function jobforge_private.redaction_hints_error(p_hints jsonb)
returns text
language sql
immutable
return case
  when p_hints is null or p_hints = 'null'::jsonb then null
  when pg_catalog.jsonb_typeof(p_hints) <> 'object' then
    'must be a JSON object like {"redact_fields": ["user.email"]}'
  when coalesce(pg_catalog.jsonb_typeof(p_hints -> 'redact_fields'), 'null') not in ('array', 'null') then
    'redact_fields must be an array of dotted paths'
  when pg_catalog.jsonb_array_length(
      case when pg_catalog.jsonb_typeof(p_hints -> 'redact_fields') = 'array'
        then p_hints -> 'redact_fields' else '[]'::jsonb end
    ) > 100 then
    'redact_fields must have at most 100 paths'
  when pg_catalog.jsonb_path_exists(p_hints, 'strict $.redact_fields[*] ? (@.type() != "string")')
    or pg_catalog.jsonb_path_exists(
      p_hints,
      '$.redact_fields[*] ? (!(@ like_regex "^(?=.{1,255}$)[^.[:space:]]+(\\.[^.[:space:]]+)*$"))'
    ) then
    'redact_fields must be an array of dotted paths'
end;

revoke all on function jobforge_private.redaction_hints_error(jsonb)
  from public, anon, authenticated, service_role;

-- A UUID given inside a JSON document: only what the uuid type is sure to accept.
create function jobforge_private.is_uuid_text(p_value text)
returns boolean
language sql
immutable
return p_value ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$';

revoke all on function jobforge_private.is_uuid_text(text)
  from public, anon, authenticated, service_role;

-- What is wrong with one element of a jobforge_submit_events batch, as {field path
-- relative to the element, reason}, or null. occurred_at is only checked to be a string
-- here; whether it parses is found out by casting it (see jobforge_submit_events).
create function jobforge_private.event_spec_error(p_event jsonb)
returns text[]
language sql
immutable
return case
  when pg_catalog.jsonb_typeof(p_event) is distinct from 'object' then
    array['', 'must be a JSON object']
  -- Unknown keys: the caller names them (a sub-select here would stop the inlining).
  when p_event - '{event_type,source_app,payload,source_module,project_id,trace_id,actor_id,subject_type,subject_id,occurred_at,event_version,contains_pii,redaction_hints}'::text[]
    <> '{}'::jsonb then
    array['.*', 'has unknown fields']
  when coalesce(pg_catalog.jsonb_typeof(p_event -> 'event_type'), 'null') = 'null' then
    array['.event_type', 'is required']
  when pg_catalog.jsonb_typeof(p_event -> 'event_type') <> 'string' then
    array['.event_type', 'must be a string']
  when jobforge_private.event_type_error(p_event ->> 'event_type') is not null then
    array['.event_type', jobforge_private.event_type_error(p_event ->> 'event_type')]
  when coalesce(pg_catalog.jsonb_typeof(p_event -> 'source_app'), 'null') = 'null' then
    array['.source_app', 'is required']
  when pg_catalog.jsonb_typeof(p_event -> 'source_app') <> 'string'
    or jobforge_private.source_app_error(p_event ->> 'source_app') is not null then
    array['.source_app', jobforge_private.source_app_error('?')]
  when jobforge_private.event_payload_error(p_event -> 'payload') is not null then
    array['.payload', jobforge_private.event_payload_error(p_event -> 'payload')]
  when pg_catalog.jsonb_typeof(p_event -> 'source_module') not in ('string', 'null')
    or jobforge_private.source_module_error(p_event ->> 'source_module') is not null then
    array['.source_module', jobforge_private.source_module_error('?')]
  when pg_catalog.jsonb_typeof(p_event -> 'project_id') not in ('string', 'null')
    or (pg_catalog.jsonb_typeof(p_event -> 'project_id') = 'string'
      and not jobforge_private.is_uuid_text(p_event ->> 'project_id')) then
    array['.project_id', 'must be a UUID']
  when pg_catalog.jsonb_typeof(p_event -> 'trace_id') not in ('string', 'null') then
    array['.trace_id', 'must be a string']
  when jobforge_private.label_error(p_event ->> 'trace_id') is not null then
    array['.trace_id', jobforge_private.label_error(p_event ->> 'trace_id')]
  when pg_catalog.jsonb_typeof(p_event -> 'actor_id') not in ('string', 'null') then
    array['.actor_id', 'must be a string']
  when jobforge_private.label_error(p_event ->> 'actor_id') is not null then
    array['.actor_id', jobforge_private.label_error(p_event ->> 'actor_id')]
  when pg_catalog.jsonb_typeof(p_event -> 'subject_type') not in ('string', 'null') then
    array['.subject_type', 'must be a string']
  when jobforge_private.label_error(p_event ->> 'subject_type') is not null then
    array['.subject_type', jobforge_private.label_error(p_event ->> 'subject_type')]
  when pg_catalog.jsonb_typeof(p_event -> 'subject_id') not in ('string', 'null') then
    array['.subject_id', 'must be a string']
  when jobforge_private.label_error(p_event ->> 'subject_id') is not null then
    array['.subject_id', jobforge_private.label_error(p_event ->> 'subject_id')]
  when pg_catalog.jsonb_typeof(p_event -> 'occurred_at') not in ('string', 'null') then
    array['.occurred_at', 'must be an ISO 8601 timestamp']
  when pg_catalog.jsonb_typeof(p_event -> 'event_version') not in ('string', 'null') then
    array['.event_version', 'must be a string']
  when jobforge_private.version_error(p_event ->> 'event_version') is not null then
    array['.event_version', jobforge_private.version_error(p_event ->> 'event_version')]
  when pg_catalog.jsonb_typeof(p_event -> 'contains_pii') not in ('boolean', 'null') then
    array['.contains_pii', 'must be a boolean']
  when jobforge_private.redaction_hints_error(p_event -> 'redaction_hints') is not null then
    array['.redaction_hints', jobforge_private.redaction_hints_error(p_event -> 'redaction_hints')]
end;

revoke all on function jobforge_private.event_spec_error(jsonb)
  from public, anon, authenticated, service_role;

-- event_type_filter of an event trigger: an exact event type, or a prefix ending in .*
-- ("infrastructure.*" matches infrastructure.disk_full and infrastructure.disk.full).
create function jobforge_private.event_filter_error(p_filter text)
returns text
language sql
immutable
return case
  when p_filter is null then 'is required for event triggers'
  when pg_catalog.char_length(p_filter) > 255 then 'must be at most 255 characters'
  when p_filter !~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'
    and p_filter !~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.\*$' then
    'must be an event type (like infrastructure.disk_full) or a prefix ending in .* (like infrastructure.*)'
end;

revoke all on function jobforge_private.event_filter_error(text)
  from public, anon, authenticated, service_role;

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

revoke all on function jobforge_private.cron_error(text)
  from public, anon, authenticated, service_role;

-- Check job inputs against the input_schema of a template: the value must be a JSON
-- object, every name in "required" must be present (JSON null counts as absent), and a
-- declared property with a "type" (a name or a list of names among string, number,
-- integer, boolean, object, array, null) must have a value of that JSON type. Optional
-- properties given as JSON null are treated as absent. With "additionalProperties":
-- false, undeclared names are refused. Returns {name, reason} or null.
create function jobforge_private.inputs_error(p_schema jsonb, p_inputs jsonb)
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_name text;
  v_property jsonb;
  v_value jsonb;
  v_types jsonb;
  v_ok boolean;
begin
  if pg_catalog.jsonb_typeof(p_inputs) is distinct from 'object' then
    return array['', 'must be a JSON object'];
  end if;
  if pg_catalog.jsonb_typeof(p_schema) is distinct from 'object' then
    return null;
  end if;

  if pg_catalog.jsonb_typeof(p_schema -> 'required') = 'array' then
    for v_name in select pg_catalog.jsonb_array_elements_text(p_schema -> 'required') loop
      if coalesce(p_inputs -> v_name, 'null'::jsonb) = 'null'::jsonb then
        return array[v_name, 'is required'];
      end if;
    end loop;
  end if;

  if pg_catalog.jsonb_typeof(p_schema -> 'properties') = 'object' then
    for v_name, v_property in
      select p.key, p.value
      from pg_catalog.jsonb_each(p_schema -> 'properties') as p
      order by p.key
    loop
      v_value := p_inputs -> v_name;
      continue when v_value is null or v_value = 'null'::jsonb;
      v_types := case pg_catalog.jsonb_typeof(v_property -> 'type')
        when 'string' then pg_catalog.jsonb_build_array(v_property -> 'type')
        when 'array' then v_property -> 'type'
      end;
      continue when v_types is null;
      select coalesce(pg_catalog.bool_or(
        case t.name
          when 'integer' then pg_catalog.jsonb_typeof(v_value) = 'number'
            and (v_value::numeric) = pg_catalog.trunc(v_value::numeric)
          else pg_catalog.jsonb_typeof(v_value) = t.name
        end
      ), false)
      into v_ok
      from pg_catalog.jsonb_array_elements_text(v_types) as t (name);
      if not v_ok then
        return array[
          v_name,
          'must be ' || (
            select pg_catalog.string_agg(t.name, ' or ')
            from pg_catalog.jsonb_array_elements_text(v_types) as t (name)
          )
        ];
      end if;
    end loop;
  end if;

  if p_schema -> 'additionalProperties' = 'false'::jsonb then
    select k.key into v_name
    from pg_catalog.jsonb_object_keys(p_inputs) as k (key)
    where not coalesce(p_schema -> 'properties', '{}'::jsonb) ? k.key
    order by k.key
    limit 1;
    if v_name is not null then
      return array[v_name, 'is not a known input'];
    end if;
  end if;
  return null;
end
$$;

revoke all on function jobforge_private.inputs_error(jsonb, jsonb)
  from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Private helpers: redaction
-- ---------------------------------------------------------------------------------------

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

revoke all on function jobforge_private.redact_path(jsonb, text[])
  from public, anon, authenticated, service_role;

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

revoke all on function jobforge_private.redact(jsonb, text[])
  from public, anon, authenticated, service_role;

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

revoke all on function jobforge_private.redact_all(jsonb)
  from public, anon, authenticated, service_role;

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

revoke all on function jobforge_private.event_safe_payload(jsonb, boolean, jsonb)
  from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Private helpers: base64url and HMAC-SHA256, for policy tokens (no pgcrypto)
-- ---------------------------------------------------------------------------------------

-- base64url without padding -> bytes. The caller checks the alphabet first; a length
-- that cannot be base64 raises (the caller catches it).
create function jobforge_private.base64url_decode(p_text text)
returns bytea
language sql
immutable
return pg_catalog.decode(
  pg_catalog.rpad(
    pg_catalog.translate(p_text, '-_', '+/'),
    (pg_catalog.char_length(p_text) + 3) / 4 * 4,
    '='
  ),
  'base64'
);

revoke all on function jobforge_private.base64url_decode(text)
  from public, anon, authenticated, service_role;

-- bytes -> base64url without padding. Used to refuse non-canonical encodings (the
-- decoder ignores the unused low bits of the last character, so without this check two
-- different strings would carry the same signature).
create function jobforge_private.base64url_encode(p_bytes bytea)
returns text
language sql
immutable
return pg_catalog.rtrim(
  pg_catalog.translate(pg_catalog.encode(p_bytes, 'base64'), E'+/\n', '-_'),
  '='
);

revoke all on function jobforge_private.base64url_encode(bytea)
  from public, anon, authenticated, service_role;

-- HMAC-SHA256 (RFC 2104) on top of sha256(): H((K' xor opad) || H((K' xor ipad) || m)),
-- K' the key padded with zeros to the 64-byte block, or hashed first when longer.
create function jobforge_private.hmac_sha256(p_key bytea, p_message bytea)
returns bytea
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_key bytea := p_key;
  v_ipad bytea;
  v_opad bytea;
begin
  if p_key is null or p_message is null then
    return null;
  end if;
  if pg_catalog.octet_length(v_key) > 64 then
    v_key := pg_catalog.sha256(v_key);
  end if;
  v_key := v_key || pg_catalog.decode(pg_catalog.repeat('00', 64 - pg_catalog.octet_length(v_key)), 'hex');

  select
    pg_catalog.decode(
      pg_catalog.string_agg(
        pg_catalog.lpad(pg_catalog.to_hex(pg_catalog.get_byte(v_key, g.i) # 54), 2, '0'), ''
        order by g.i
      ),
      'hex'
    ),
    pg_catalog.decode(
      pg_catalog.string_agg(
        pg_catalog.lpad(pg_catalog.to_hex(pg_catalog.get_byte(v_key, g.i) # 92), 2, '0'), ''
        order by g.i
      ),
      'hex'
    )
  into v_ipad, v_opad
  from pg_catalog.generate_series(0, 63) as g (i);

  return pg_catalog.sha256(v_opad || pg_catalog.sha256(v_ipad || p_message));
end
$$;

revoke all on function jobforge_private.hmac_sha256(bytea, bytea)
  from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------

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
  actor_id text check (char_length(actor_id) <= 255),
  source_app text not null
    check (source_app in ('settler', 'aias', 'keys', 'readylayer', 'jobforge', 'external')),
  source_module text check (source_module in ('ops', 'support', 'growth', 'finops', 'core')),
  subject_type text check (char_length(subject_type) <= 255),
  subject_id text check (char_length(subject_id) <= 255),
  payload jsonb not null default '{}' check (jsonb_typeof(payload) = 'object'),
  contains_pii boolean not null default false,
  redaction_hints jsonb check (redaction_hints is null or jsonb_typeof(redaction_hints) = 'object'),
  processed boolean not null default false,
  processed_at timestamptz,
  processing_job_id uuid,
  created_at timestamptz not null default now(),
  -- The identity of an event: submitting it again changes nothing.
  constraint jobforge_events_identity_key unique (tenant_id, trace_id, event_type, occurred_at)
);

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

create table public.jobforge_job_templates (
  template_key text primary key
    check (template_key ~ '^autopilot\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$'),
  name text not null,
  description text,
  category text not null check (category in ('ops', 'support', 'growth', 'finops')),
  version text not null default '1.0.0',
  input_schema jsonb not null default '{"type": "object", "properties": {}}'
    check (jsonb_typeof(input_schema) = 'object'),
  output_schema jsonb not null default '{"type": "object", "properties": {}}'
    check (jsonb_typeof(output_schema) = 'object'),
  required_scopes text[] not null default '{}',
  required_connectors text[] not null default '{}',
  estimated_cost_tier text check (estimated_cost_tier in ('low', 'medium', 'high')),
  default_max_attempts integer not null default 3 check (default_max_attempts between 1 and 100),
  default_timeout_ms integer not null default 300000 check (default_timeout_ms > 0),
  is_action_job boolean not null default false,
  enabled boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.jobforge_job_templates is
  'JobForge autopilot job templates (global). Enabled only through jobforge_set_template_enabled.';

create table public.jobforge_artifact_manifests (
  id uuid primary key default gen_random_uuid(),
  run_id uuid not null references public.jobforge_jobs (id) on delete cascade,
  tenant_id uuid not null,
  project_id uuid,
  manifest_version text not null default '1.0',
  job_type text not null,
  inputs_snapshot_ref text,
  logs_ref text,
  outputs jsonb not null default '[]' check (jsonb_typeof(outputs) = 'array'),
  metrics jsonb not null default '{}' check (jsonb_typeof(metrics) = 'object'),
  env_fingerprint jsonb not null default '{}' check (jsonb_typeof(env_fingerprint) = 'object'),
  tool_versions jsonb not null default '{}' check (jsonb_typeof(tool_versions) = 'object'),
  status text not null default 'pending' check (status in ('pending', 'complete', 'failed')),
  error jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint jobforge_artifact_manifests_run_id_key unique (run_id)
);

comment on table public.jobforge_artifact_manifests is
  'JobForge artifact manifests, one per run (job). Written by workers through jobforge_create_manifest.';

create table public.jobforge_audit_logs (
  id uuid primary key default gen_random_uuid(),
  -- Null for global writes by an administrator (templates, policy keys).
  tenant_id uuid,
  project_id uuid,
  action text not null check (action in (
    'event_ingest', 'job_request', 'job_cancel', 'policy_check', 'trigger_fire',
    'trigger_create', 'trigger_update', 'trigger_delete', 'template_update',
    'manifest_write', 'policy_key_add', 'policy_key_retire'
  )),
  actor_id text,
  trace_id text,
  target_type text,
  target_id text,
  outcome text not null check (outcome in ('success', 'denied', 'skipped', 'dry_run')),
  reason text,
  details jsonb not null default '{}',
  -- clock_timestamp, not now(): the rows of one transaction keep their order.
  created_at timestamptz not null default clock_timestamp()
);

comment on table public.jobforge_audit_logs is
  'JobForge audit trail. Append-only: rows are written by the RPCs and removed only by jobforge_purge_audit_logs.';

create index jobforge_audit_logs_tenant_created
  on public.jobforge_audit_logs (tenant_id, created_at desc, id desc);

create index jobforge_audit_logs_created_brin
  on public.jobforge_audit_logs using brin (created_at);

create table public.jobforge_triggers (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  project_id uuid,
  name text not null check (char_length(name) between 1 and 255),
  trigger_type text not null check (trigger_type in ('cron', 'event')),
  cron_expression text,
  event_type_filter text,
  event_source_filter text
    check (event_source_filter in ('settler', 'aias', 'keys', 'readylayer', 'jobforge', 'external')),
  target_template_key text not null references public.jobforge_job_templates (template_key),
  target_inputs jsonb not null default '{}' check (jsonb_typeof(target_inputs) = 'object'),
  enabled boolean not null default false,
  dry_run boolean not null default false,
  cooldown_seconds integer not null default 0 check (cooldown_seconds between 0 and 86400),
  max_fires_per_hour integer not null default 60 check (max_fires_per_hour between 1 and 3600),
  last_fired_at timestamptz,
  last_job_id uuid,
  fire_count integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint jobforge_triggers_tenant_name_key unique (tenant_id, name),
  constraint jobforge_triggers_kind_check check (
    (trigger_type = 'cron' and cron_expression is not null
      and event_type_filter is null and event_source_filter is null)
    or (trigger_type = 'event' and event_type_filter is not null and cron_expression is null)
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

-- Private tables: no API role may read them (no grants; the schema is usable by
-- authenticated and service_role only for jwt_tenant_ids()).

create table jobforge_private.policy_keys (
  kid text primary key check (char_length(kid) between 1 and 255),
  secret text not null check (char_length(secret) >= 32),
  created_at timestamptz not null default now(),
  retired_at timestamptz
);

comment on table jobforge_private.policy_keys is
  'HS256 keys of policy tokens, by kid. Never readable by an API role.';

create table jobforge_private.policy_token_uses (
  jti text primary key,
  tenant_id uuid,
  template_key text,
  used_at timestamptz not null default now(),
  -- The exp of the token: after it the row can go (the token is refused as expired).
  expires_at timestamptz
);

comment on table jobforge_private.policy_token_uses is
  'The jti of every policy token consumed by jobforge_request_job: a token is good for one job.';

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

-- Row-level security, as in 001: authenticated reads its tenants' rows; templates are
-- global and readable by every signed-in user; no write policies.
alter table public.jobforge_events enable row level security;
alter table public.jobforge_job_templates enable row level security;
alter table public.jobforge_artifact_manifests enable row level security;
alter table public.jobforge_audit_logs enable row level security;
alter table public.jobforge_triggers enable row level security;
alter table jobforge_private.policy_keys enable row level security;
alter table jobforge_private.policy_token_uses enable row level security;
alter table jobforge_private.trigger_fires enable row level security;

create policy jobforge_events_tenant_select on public.jobforge_events
  for select to authenticated
  using (tenant_id = any ((select jobforge_private.jwt_tenant_ids())::uuid[]));

create policy jobforge_job_templates_select on public.jobforge_job_templates
  for select to authenticated
  using (true);

create policy jobforge_artifact_manifests_tenant_select on public.jobforge_artifact_manifests
  for select to authenticated
  using (tenant_id = any ((select jobforge_private.jwt_tenant_ids())::uuid[]));

-- Global rows (tenant_id null) never match: they are for service_role only.
create policy jobforge_audit_logs_tenant_select on public.jobforge_audit_logs
  for select to authenticated
  using (tenant_id = any ((select jobforge_private.jwt_tenant_ids())::uuid[]));

create policy jobforge_triggers_tenant_select on public.jobforge_triggers
  for select to authenticated
  using (tenant_id = any ((select jobforge_private.jwt_tenant_ids())::uuid[]));

revoke all on table
  public.jobforge_events,
  public.jobforge_job_templates,
  public.jobforge_artifact_manifests,
  public.jobforge_audit_logs,
  public.jobforge_triggers,
  jobforge_private.policy_keys,
  jobforge_private.policy_token_uses,
  jobforge_private.trigger_fires
  from public, anon, authenticated, service_role;

grant select on table
  public.jobforge_job_templates,
  public.jobforge_artifact_manifests,
  public.jobforge_audit_logs,
  public.jobforge_triggers
  to authenticated, service_role;

-- Event payloads may hold fields the producer marked for redaction. A tenant's users read
-- events through jobforge_list_events, which redacts; reading the table directly (RLS
-- lets them see their tenant's rows) must not hand them the raw payload, so authenticated
-- gets every column but payload. service_role, trusted with raw payloads, reads them all.
grant select on table public.jobforge_events to service_role;
grant select (
  id, tenant_id, project_id, event_version, event_type, occurred_at, trace_id, actor_id,
  source_app, source_module, subject_type, subject_id, contains_pii, redaction_hints,
  processed, processed_at, processing_job_id, created_at
) on table public.jobforge_events to authenticated;

-- The audit trail is append-only for every role, superusers included: UPDATE, DELETE
-- and TRUNCATE raise. The one exception is a DELETE run by jobforge_purge_audit_logs,
-- which sets jobforge.audit_purge for its own execution only (a SET clause of the
-- function, restored when it returns). The triggers are ENABLE ALWAYS, so
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

revoke all on function jobforge_private.audit_logs_append_only()
  from public, anon, authenticated, service_role;

create trigger jobforge_audit_logs_no_change
  before update or delete on public.jobforge_audit_logs
  for each row execute function jobforge_private.audit_logs_append_only();

create trigger jobforge_audit_logs_no_truncate
  before truncate on public.jobforge_audit_logs
  for each statement execute function jobforge_private.audit_logs_append_only();

alter table public.jobforge_audit_logs enable always trigger jobforge_audit_logs_no_change;
alter table public.jobforge_audit_logs enable always trigger jobforge_audit_logs_no_truncate;

-- ---------------------------------------------------------------------------------------
-- Template seeds: the 13 autopilot templates, all disabled until an administrator
-- enables them (jobforge_set_template_enabled).
-- ---------------------------------------------------------------------------------------

insert into public.jobforge_job_templates (
  template_key, name, description, category, input_schema, output_schema,
  required_scopes, estimated_cost_tier, default_max_attempts, default_timeout_ms, is_action_job
)
values
  (
    'autopilot.ops.scan',
    'Infrastructure scan',
    'Scan a target (service, cluster, account) for misconfigurations, drift, capacity and security findings. Read-only.',
    'ops',
    '{"type": "object", "required": ["target"], "properties": {
        "target": {"type": "string", "description": "What to scan: a service, cluster, host group or cloud account id"},
        "checks": {"type": "array", "items": {"type": "string"}, "description": "Checks to run (e.g. security, cost, capacity, drift); all when absent"},
        "depth": {"type": "integer", "minimum": 1, "maximum": 5, "description": "How deep to follow dependencies"},
        "environment": {"type": "string", "description": "Environment name, e.g. production"}}}',
    '{"type": "object", "required": ["findings", "summary"], "properties": {
        "findings": {"type": "array", "items": {"type": "object", "required": ["id", "check", "severity", "resource", "message"], "properties": {
          "id": {"type": "string"}, "check": {"type": "string"},
          "severity": {"type": "string", "enum": ["info", "low", "medium", "high", "critical"]},
          "resource": {"type": "string"}, "message": {"type": "string"}, "evidence": {"type": "object"}}}},
        "summary": {"type": "object", "properties": {"total": {"type": "integer"}, "by_severity": {"type": "object"}}},
        "scanned_at": {"type": "string", "format": "date-time"}}}',
    '{ops:read}', 'medium', 3, 600000, false
  ),
  (
    'autopilot.ops.diagnose',
    'Incident diagnosis',
    'Correlate symptoms, recent changes and logs of an incident into ranked root-cause hypotheses. Read-only.',
    'ops',
    '{"type": "object", "required": ["incident_id"], "properties": {
        "incident_id": {"type": "string", "description": "The incident or alert to diagnose"},
        "service": {"type": "string", "description": "The affected service, when known"},
        "symptoms": {"type": "array", "items": {"type": "string"}, "description": "Observed symptoms, e.g. elevated 5xx, disk full"},
        "since": {"type": "string", "format": "date-time", "description": "Start of the window to look at"},
        "logs_ref": {"type": "string", "description": "Reference to a log bundle to include"}}}',
    '{"type": "object", "required": ["hypotheses"], "properties": {
        "hypotheses": {"type": "array", "items": {"type": "object", "required": ["cause", "confidence"], "properties": {
          "cause": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1},
          "evidence": {"type": "array", "items": {"type": "string"}}, "related_changes": {"type": "array", "items": {"type": "string"}}}}},
        "affected_services": {"type": "array", "items": {"type": "string"}},
        "next_steps": {"type": "array", "items": {"type": "string"}}}}',
    '{ops:read}', 'medium', 3, 600000, false
  ),
  (
    'autopilot.ops.recommend',
    'Remediation recommendations',
    'Turn scan findings or a diagnosis into ranked, reviewable remediation plans. Read-only: applying is a separate action job.',
    'ops',
    '{"type": "object", "required": ["source_run_id"], "properties": {
        "source_run_id": {"type": "string", "description": "The scan or diagnose run whose findings to address"},
        "finding_ids": {"type": "array", "items": {"type": "string"}, "description": "Only these findings; all when absent"},
        "goals": {"type": "array", "items": {"type": "string"}, "description": "What to optimise for, e.g. reliability, cost"},
        "max_recommendations": {"type": "integer", "minimum": 1, "maximum": 50}}}',
    '{"type": "object", "required": ["recommendations"], "properties": {
        "recommendations": {"type": "array", "items": {"type": "object", "required": ["id", "title", "risk", "plan"], "properties": {
          "id": {"type": "string"}, "title": {"type": "string"}, "rationale": {"type": "string"},
          "risk": {"type": "string", "enum": ["low", "medium", "high"]},
          "estimated_impact": {"type": "string"},
          "plan": {"type": "object", "description": "The change plan that autopilot.ops.apply takes"}}}}}}',
    '{ops:read}', 'medium', 3, 300000, false
  ),
  (
    'autopilot.ops.apply',
    'Apply remediation',
    'Apply an approved remediation plan. An action job: requires a policy token with ops:read and ops:write.',
    'ops',
    '{"type": "object", "required": ["recommendation_id", "plan"], "properties": {
        "recommendation_id": {"type": "string", "description": "The recommendation being applied"},
        "plan": {"type": "object", "description": "The change plan, as produced by autopilot.ops.recommend"},
        "change_window": {"type": "string", "description": "When the change may run, e.g. an ISO 8601 interval"},
        "rollback_on_failure": {"type": "boolean"}}}',
    '{"type": "object", "required": ["applied", "changes"], "properties": {
        "applied": {"type": "boolean"},
        "changes": {"type": "array", "items": {"type": "object", "required": ["resource", "action"], "properties": {
          "resource": {"type": "string"}, "action": {"type": "string"},
          "before": {}, "after": {}, "status": {"type": "string", "enum": ["applied", "skipped", "failed", "rolled_back"]}}}},
        "rollback_ref": {"type": "string"}}}',
    '{ops:read,ops:write}', 'high', 1, 900000, true
  ),
  (
    'autopilot.support.triage',
    'Ticket triage',
    'Classify a support ticket: priority, category, sentiment and the team that should own it.',
    'support',
    '{"type": "object", "required": ["ticket_id", "body"], "properties": {
        "ticket_id": {"type": "string"},
        "subject": {"type": "string"},
        "body": {"type": "string", "description": "The customer message"},
        "channel": {"type": "string", "description": "email, chat, web, phone"},
        "customer_tier": {"type": "string", "description": "e.g. free, pro, enterprise"}}}',
    '{"type": "object", "required": ["priority", "category"], "properties": {
        "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"]},
        "category": {"type": "string"},
        "sentiment": {"type": "string", "enum": ["negative", "neutral", "positive"]},
        "suggested_team": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1}}}',
    '{support:read}', 'low', 3, 120000, false
  ),
  (
    'autopilot.support.draft_reply',
    'Draft a reply',
    'Draft a reply to a support ticket from its thread and the knowledge base, for an agent to review.',
    'support',
    '{"type": "object", "required": ["ticket_id"], "properties": {
        "ticket_id": {"type": "string"},
        "thread": {"type": "array", "items": {"type": "object", "properties": {"author": {"type": "string"}, "body": {"type": "string"}}}},
        "tone": {"type": "string", "description": "e.g. friendly, formal, concise"},
        "language": {"type": "string", "description": "BCP 47 language tag of the reply"},
        "kb_article_ids": {"type": "array", "items": {"type": "string"}}}}',
    '{"type": "object", "required": ["reply_body"], "properties": {
        "reply_body": {"type": "string"},
        "citations": {"type": "array", "items": {"type": "object", "properties": {"article_id": {"type": "string"}, "title": {"type": "string"}}}},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "needs_human": {"type": "boolean"}}}',
    '{support:read}', 'low', 3, 120000, false
  ),
  (
    'autopilot.support.propose_kb_patch',
    'Propose a knowledge-base patch',
    'Propose a new or changed knowledge-base article from tickets that the current articles do not answer.',
    'support',
    '{"type": "object", "required": ["ticket_ids"], "properties": {
        "ticket_ids": {"type": "array", "items": {"type": "string"}, "description": "Tickets that show the gap"},
        "article_id": {"type": "string", "description": "The article to change; a new article when absent"},
        "gap_summary": {"type": "string"}}}',
    '{"type": "object", "required": ["patch"], "properties": {
        "patch": {"type": "object", "required": ["title", "body"], "properties": {
          "article_id": {"type": "string"}, "title": {"type": "string"}, "body": {"type": "string"}, "diff": {"type": "string"}}},
        "rationale": {"type": "string"},
        "source_ticket_ids": {"type": "array", "items": {"type": "string"}}}}',
    '{support:read}', 'low', 3, 300000, false
  ),
  (
    'autopilot.growth.seo_scan',
    'SEO scan',
    'Crawl a site and report technical and content SEO issues with fixes.',
    'growth',
    '{"type": "object", "required": ["url"], "properties": {
        "url": {"type": "string", "description": "Start URL of the crawl"},
        "max_pages": {"type": "integer", "minimum": 1, "maximum": 10000},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "include_paths": {"type": "array", "items": {"type": "string"}}}}',
    '{"type": "object", "required": ["issues", "pages_scanned"], "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 100},
        "pages_scanned": {"type": "integer"},
        "issues": {"type": "array", "items": {"type": "object", "required": ["page", "issue", "severity"], "properties": {
          "page": {"type": "string"}, "issue": {"type": "string"},
          "severity": {"type": "string", "enum": ["low", "medium", "high"]}, "recommendation": {"type": "string"}}}}}}',
    '{growth:read}', 'medium', 3, 900000, false
  ),
  (
    'autopilot.growth.experiment_propose',
    'Propose experiments',
    'Propose A/B experiments for a growth goal, each with hypothesis, metric and sample size.',
    'growth',
    '{"type": "object", "required": ["goal"], "properties": {
        "goal": {"type": "string", "description": "e.g. increase trial-to-paid conversion"},
        "primary_metric": {"type": "string"},
        "baseline_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "audience": {"type": "string"},
        "constraints": {"type": "array", "items": {"type": "string"}},
        "max_experiments": {"type": "integer", "minimum": 1, "maximum": 20}}}',
    '{"type": "object", "required": ["experiments"], "properties": {
        "experiments": {"type": "array", "items": {"type": "object", "required": ["hypothesis", "primary_metric"], "properties": {
          "hypothesis": {"type": "string"}, "variant_description": {"type": "string"},
          "primary_metric": {"type": "string"}, "minimum_detectable_effect": {"type": "number"},
          "sample_size_per_variant": {"type": "integer"}, "duration_days": {"type": "integer"}}}}}}',
    '{growth:read}', 'low', 3, 300000, false
  ),
  (
    'autopilot.growth.content_draft',
    'Draft content',
    'Draft marketing content (blog post, email, landing copy) for a topic and audience, for review.',
    'growth',
    '{"type": "object", "required": ["topic"], "properties": {
        "topic": {"type": "string"},
        "content_type": {"type": "string", "description": "blog_post, email, landing_page, social_post"},
        "audience": {"type": "string"},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "tone": {"type": "string"},
        "word_count": {"type": "integer", "minimum": 50, "maximum": 5000}}}',
    '{"type": "object", "required": ["title", "body"], "properties": {
        "title": {"type": "string"},
        "body": {"type": "string"},
        "outline": {"type": "array", "items": {"type": "string"}},
        "meta_description": {"type": "string"}}}',
    '{growth:read}', 'low', 3, 300000, false
  ),
  (
    'autopilot.finops.reconcile',
    'Reconcile',
    'Reconcile billing, payments and ledger records over a period; report what does not match.',
    'finops',
    '{"type": "object", "required": ["period_start", "period_end"], "properties": {
        "period_start": {"type": "string", "format": "date"},
        "period_end": {"type": "string", "format": "date"},
        "accounts": {"type": "array", "items": {"type": "string"}, "description": "Only these accounts; all when absent"},
        "currency": {"type": "string", "description": "ISO 4217 code"},
        "tolerance": {"type": "number", "minimum": 0, "description": "Differences up to this amount count as matched"}}}',
    '{"type": "object", "required": ["matched_count", "unmatched"], "properties": {
        "matched_count": {"type": "integer"},
        "unmatched": {"type": "array", "items": {"type": "object", "required": ["source", "reference", "amount"], "properties": {
          "source": {"type": "string"}, "reference": {"type": "string"}, "amount": {"type": "number"}, "reason": {"type": "string"}}}},
        "total_discrepancy": {"type": "number"},
        "currency": {"type": "string"}}}',
    '{finops:read}', 'medium', 3, 900000, false
  ),
  (
    'autopilot.finops.anomaly_scan',
    'Spend anomaly scan',
    'Find unusual spend or revenue movements by dimension against a baseline.',
    'finops',
    '{"type": "object", "required": ["period_start"], "properties": {
        "period_start": {"type": "string", "format": "date"},
        "period_end": {"type": "string", "format": "date"},
        "dimensions": {"type": "array", "items": {"type": "string"}, "description": "e.g. service, team, region, vendor"},
        "baseline_days": {"type": "integer", "minimum": 7, "maximum": 365},
        "sensitivity": {"type": "number", "minimum": 0, "maximum": 1}}}',
    '{"type": "object", "required": ["anomalies"], "properties": {
        "anomalies": {"type": "array", "items": {"type": "object", "required": ["dimension", "key", "expected", "actual"], "properties": {
          "dimension": {"type": "string"}, "key": {"type": "string"}, "expected": {"type": "number"},
          "actual": {"type": "number"}, "deviation_pct": {"type": "number"},
          "severity": {"type": "string", "enum": ["low", "medium", "high"]}}}},
        "baseline_window": {"type": "object", "properties": {"start": {"type": "string"}, "end": {"type": "string"}}}}}',
    '{finops:read}', 'medium', 3, 600000, false
  ),
  (
    'autopilot.finops.churn_risk_report',
    'Churn risk report',
    'Score accounts for churn risk from usage, billing and support signals, with the drivers of each score.',
    'finops',
    '{"type": "object", "required": ["as_of"], "properties": {
        "as_of": {"type": "string", "format": "date"},
        "segment": {"type": "string", "description": "e.g. smb, mid_market, enterprise"},
        "lookback_days": {"type": "integer", "minimum": 7, "maximum": 365},
        "min_risk_score": {"type": "number", "minimum": 0, "maximum": 1},
        "limit": {"type": "integer", "minimum": 1, "maximum": 10000}}}',
    '{"type": "object", "required": ["accounts"], "properties": {
        "accounts": {"type": "array", "items": {"type": "object", "required": ["account_id", "risk_score"], "properties": {
          "account_id": {"type": "string"}, "risk_score": {"type": "number", "minimum": 0, "maximum": 1},
          "drivers": {"type": "array", "items": {"type": "string"}}, "mrr": {"type": "number"}}}},
        "summary": {"type": "object", "properties": {"accounts_scored": {"type": "integer"}, "at_risk": {"type": "integer"}, "mrr_at_risk": {"type": "number"}}}}}',
    '{finops:read}', 'medium', 3, 600000, false
  );

-- ---------------------------------------------------------------------------------------
-- Private helpers that read the tables
-- ---------------------------------------------------------------------------------------

-- Write one audit row; returns its id.
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

revoke all on function jobforge_private.audit(uuid, uuid, text, text, text, text, text, text, text, jsonb)
  from public, anon, authenticated, service_role;

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

revoke all on function jobforge_private.audit_actor(text)
  from public, anon, authenticated, service_role;

-- Filters of the list RPCs. Each raises PT400 naming the filter; a JSON null is the same
-- as no filter.
create function jobforge_private.filters_object(p_filters jsonb, p_known text[])
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_key text;
begin
  p_filters := coalesce(nullif(p_filters, 'null'::jsonb), '{}'::jsonb);
  if pg_catalog.jsonb_typeof(p_filters) <> 'object' then
    perform jobforge_private.invalid('filters', 'must be a JSON object');
  end if;
  select k.key into v_key
  from pg_catalog.jsonb_object_keys(p_filters) as k (key)
  where k.key <> all (p_known)
  order by k.key
  limit 1;
  if v_key is not null then
    perform jobforge_private.invalid(
      v_key, 'is not a known filter (' || pg_catalog.array_to_string(p_known, ', ') || ')'
    );
  end if;
  return p_filters;
end
$$;

revoke all on function jobforge_private.filters_object(jsonb, text[])
  from public, anon, authenticated, service_role;

create function jobforge_private.filter_text(p_filters jsonb, p_key text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_value jsonb := nullif(p_filters -> p_key, 'null'::jsonb);
begin
  if v_value is null then
    return null;
  end if;
  if pg_catalog.jsonb_typeof(v_value) <> 'string' then
    perform jobforge_private.invalid(p_key, 'must be a string');
  end if;
  if pg_catalog.char_length(v_value #>> '{}') > 255 then
    perform jobforge_private.invalid(p_key, 'must be at most 255 characters');
  end if;
  return v_value #>> '{}';
end
$$;

revoke all on function jobforge_private.filter_text(jsonb, text)
  from public, anon, authenticated, service_role;

create function jobforge_private.filter_boolean(p_filters jsonb, p_key text)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_value jsonb := nullif(p_filters -> p_key, 'null'::jsonb);
begin
  if v_value is null then
    return null;
  end if;
  if pg_catalog.jsonb_typeof(v_value) <> 'boolean' then
    perform jobforge_private.invalid(p_key, 'must be a boolean');
  end if;
  return v_value::boolean;
end
$$;

revoke all on function jobforge_private.filter_boolean(jsonb, text)
  from public, anon, authenticated, service_role;

create function jobforge_private.filter_timestamp(p_filters jsonb, p_key text)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
declare
  v_value jsonb := nullif(p_filters -> p_key, 'null'::jsonb);
begin
  if v_value is null then
    return null;
  end if;
  if pg_catalog.jsonb_typeof(v_value) <> 'string' then
    perform jobforge_private.invalid(p_key, 'must be an ISO 8601 timestamp');
  end if;
  begin
    return (v_value #>> '{}')::timestamptz;
  exception
    when data_exception then
      perform jobforge_private.invalid(p_key, 'must be an ISO 8601 timestamp');
  end;
  return null;
end
$$;

revoke all on function jobforge_private.filter_timestamp(jsonb, text)
  from public, anon, authenticated, service_role;

create function jobforge_private.filter_integer(
  p_filters jsonb, p_key text, p_min integer, p_max integer, p_default integer
)
returns integer
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_value jsonb := nullif(p_filters -> p_key, 'null'::jsonb);
begin
  if v_value is null then
    return p_default;
  end if;
  if pg_catalog.jsonb_typeof(v_value) <> 'number'
    or v_value::numeric <> pg_catalog.trunc(v_value::numeric) then
    perform jobforge_private.invalid(p_key, 'must be an integer');
  end if;
  if v_value::numeric < p_min or v_value::numeric > p_max then
    perform jobforge_private.invalid(p_key, pg_catalog.format('must be between %s and %s', p_min, p_max));
  end if;
  return v_value::numeric::integer;
end
$$;

revoke all on function jobforge_private.filter_integer(jsonb, text, integer, integer, integer)
  from public, anon, authenticated, service_role;

-- Verify a policy token (DESIGN.md section 5) for a tenant and a template. Never
-- raises: returns {"ok": bool, "reason": text or null, "kid", "jti", "scopes", "sub",
-- "exp"} (the claims as far as they could be read). Does not consume the jti.
--
-- Compact JWS, base64url without padding; header alg exactly HS256 and a kid that is a
-- current policy key; signature HMAC-SHA256 over "header.payload" as sent, with the key
-- UTF-8 bytes of the secret; claims iss "jobforge", exp in the future, nbf and iat not
-- more than 60 s in the future, tid the tenant, aud the template key (or an array with
-- it), scp an array holding every required scope, jti present and never used.
create function jobforge_private.check_policy_token(
  p_token text,
  p_tenant_id uuid,
  p_template_key text,
  p_required_scopes text[]
)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v_parts text[];
  v_header jsonb;
  v_claims jsonb;
  v_signature bytea;
  v_key jobforge_private.policy_keys;
  v_now numeric := extract(epoch from now());
  v_reason text;
  v_scope text;
  v_kid text;
begin
  <<checks>>
  begin
    if p_token is null or p_token = '' then
      v_reason := 'missing token';
      exit checks;
    end if;
    if pg_catalog.octet_length(p_token) > 8192 then
      v_reason := 'malformed';
      exit checks;
    end if;
    v_parts := pg_catalog.string_to_array(p_token, '.');
    if pg_catalog.cardinality(v_parts) <> 3
      or v_parts[1] !~ '^[A-Za-z0-9_-]+$'
      or v_parts[2] !~ '^[A-Za-z0-9_-]+$'
      -- An empty signature is well-formed ("alg": "none" tokens have one): such a token
      -- is refused for its algorithm, or else for its signature.
      or v_parts[3] !~ '^[A-Za-z0-9_-]*$' then
      v_reason := 'malformed';
      exit checks;
    end if;

    begin
      v_header := pg_catalog.convert_from(jobforge_private.base64url_decode(v_parts[1]), 'UTF8')::jsonb;
      v_claims := pg_catalog.convert_from(jobforge_private.base64url_decode(v_parts[2]), 'UTF8')::jsonb;
      v_signature := jobforge_private.base64url_decode(v_parts[3]);
    exception
      when others then
        v_reason := 'malformed';
        exit checks;
    end;
    if jobforge_private.base64url_encode(jobforge_private.base64url_decode(v_parts[1])) <> v_parts[1]
      or jobforge_private.base64url_encode(jobforge_private.base64url_decode(v_parts[2])) <> v_parts[2]
      or jobforge_private.base64url_encode(v_signature) <> v_parts[3] then
      v_reason := 'malformed';
      exit checks;
    end if;
    if pg_catalog.jsonb_typeof(v_header) <> 'object'
      or pg_catalog.jsonb_typeof(v_claims) <> 'object'
      or pg_catalog.jsonb_typeof(v_header -> 'alg') is distinct from 'string'
      -- "crit" names extensions the verifier must understand; none are.
      or v_header ? 'crit' then
      v_reason := 'malformed';
      exit checks;
    end if;

    if v_header ->> 'alg' <> 'HS256' then
      v_reason := 'unsupported algorithm ' || pg_catalog.left(v_header ->> 'alg', 32);
      exit checks;
    end if;

    if pg_catalog.jsonb_typeof(v_header -> 'kid') = 'string' then
      v_kid := v_header ->> 'kid';
      select k.* into v_key from jobforge_private.policy_keys k where k.kid = v_kid;
    end if;
    if v_key.kid is null then
      v_reason := 'unknown key';
      exit checks;
    end if;
    if v_key.retired_at is not null and v_key.retired_at <= now() then
      v_reason := 'retired key';
      exit checks;
    end if;

    if jobforge_private.hmac_sha256(
      pg_catalog.convert_to(v_key.secret, 'UTF8'),
      pg_catalog.convert_to(v_parts[1] || '.' || v_parts[2], 'UTF8')
    ) <> v_signature then
      v_reason := 'bad signature';
      exit checks;
    end if;

    if v_claims ->> 'iss' is distinct from 'jobforge' then
      v_reason := 'wrong issuer';
      exit checks;
    end if;
    if pg_catalog.jsonb_typeof(v_claims -> 'exp') is distinct from 'number'
      or pg_catalog.jsonb_typeof(v_claims -> 'nbf') not in ('number', 'null')
      or pg_catalog.jsonb_typeof(v_claims -> 'iat') not in ('number', 'null') then
      v_reason := 'malformed';
      exit checks;
    end if;
    if (v_claims -> 'exp')::numeric <= v_now then
      v_reason := 'expired';
      exit checks;
    end if;
    if (pg_catalog.jsonb_typeof(v_claims -> 'nbf') = 'number' and (v_claims -> 'nbf')::numeric > v_now + 60)
      or (pg_catalog.jsonb_typeof(v_claims -> 'iat') = 'number' and (v_claims -> 'iat')::numeric > v_now + 60) then
      v_reason := 'not yet valid';
      exit checks;
    end if;
    if pg_catalog.jsonb_typeof(v_claims -> 'tid') is distinct from 'string'
      or not jobforge_private.is_uuid_text(v_claims ->> 'tid')
      or (v_claims ->> 'tid')::uuid <> p_tenant_id then
      v_reason := 'wrong tenant';
      exit checks;
    end if;
    if not (
      (pg_catalog.jsonb_typeof(v_claims -> 'aud') = 'string' and v_claims ->> 'aud' = p_template_key)
      or (pg_catalog.jsonb_typeof(v_claims -> 'aud') = 'array'
        and v_claims -> 'aud' @> pg_catalog.jsonb_build_array(p_template_key))
    ) then
      v_reason := 'wrong action';
      exit checks;
    end if;
    if pg_catalog.jsonb_typeof(v_claims -> 'scp') not in ('array', 'null') then
      v_reason := 'malformed';
      exit checks;
    end if;
    foreach v_scope in array coalesce(p_required_scopes, '{}'::text[]) loop
      if not coalesce(v_claims -> 'scp', '[]'::jsonb) @> pg_catalog.jsonb_build_array(v_scope) then
        v_reason := 'missing scope ' || v_scope;
        exit checks;
      end if;
    end loop;
    if pg_catalog.jsonb_typeof(v_claims -> 'jti') is distinct from 'string'
      or v_claims ->> 'jti' = ''
      or pg_catalog.char_length(v_claims ->> 'jti') > 255 then
      v_reason := 'malformed';
      exit checks;
    end if;
    if exists (
      select 1 from jobforge_private.policy_token_uses u where u.jti = v_claims ->> 'jti'
    ) then
      v_reason := 'replayed';
      exit checks;
    end if;
  end;

  return pg_catalog.jsonb_build_object(
    'ok', v_reason is null,
    'reason', v_reason,
    'kid', v_kid,
    'jti', case when pg_catalog.jsonb_typeof(v_claims -> 'jti') = 'string'
      then pg_catalog.left(v_claims ->> 'jti', 255) end,
    'scopes', case when pg_catalog.jsonb_typeof(v_claims -> 'scp') = 'array'
      then v_claims -> 'scp' end,
    'sub', case when pg_catalog.jsonb_typeof(v_claims -> 'sub') = 'string'
      then pg_catalog.left(v_claims ->> 'sub', 255) end,
    'exp', case when pg_catalog.jsonb_typeof(v_claims -> 'exp') = 'number'
      then v_claims -> 'exp' end
  );
end
$$;

revoke all on function jobforge_private.check_policy_token(text, uuid, text, text[])
  from public, anon, authenticated, service_role;

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
begin
  select t.* into v_template
  from public.jobforge_job_templates t
  where t.template_key = p_trigger.target_template_key;

  if not coalesce(v_template.enabled, false) then
    v_reason := 'template disabled';
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

    v_audit_id := jobforge_private.audit(
      p_trigger.tenant_id, p_project_id, 'trigger_fire', p_audit_actor_id, p_trace_id,
      'trigger', p_trigger.id::text, 'dry_run', null,
      v_details || pg_catalog.jsonb_build_object(
        'inputs', p_trigger.target_inputs,
        'would_enqueue', pg_catalog.jsonb_build_object(
          'type', p_trigger.target_template_key,
          'payload', v_payload,
          'max_attempts', v_template.default_max_attempts,
          'idempotency_key', p_idempotency_key
        )
      )
    );
    return pg_catalog.jsonb_build_object(
      'fired', false, 'job', null, 'dry_run', true, 'reason', 'dry run', 'audit_id', v_audit_id
    );
  end if;

  v_job := jobforge_private.enqueue_job(
    p_trigger.tenant_id,
    p_trigger.target_template_key,
    v_payload,
    p_idempotency_key,
    null,
    v_template.default_max_attempts
  );
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

revoke all on function jobforge_private.fire_trigger(
  public.jobforge_triggers, text, text, text, text, text, uuid, jsonb
) from public, anon, authenticated, service_role;

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

revoke all on function jobforge_private.fire_event_triggers(public.jobforge_events, text)
  from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Events
-- ---------------------------------------------------------------------------------------

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
  p_redaction_hints jsonb default null
)
returns jsonb
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

  v_trace_id := coalesce(p_trace_id, gen_random_uuid()::text);
  v_occurred_at := coalesce(p_occurred_at, now());

  loop
    insert into public.jobforge_events as e (
      tenant_id, project_id, event_version, event_type, occurred_at, trace_id, actor_id,
      source_app, source_module, subject_type, subject_id, payload, contains_pii,
      redaction_hints
    )
    values (
      p_tenant_id, p_project_id, p_event_version, p_event_type, v_occurred_at, v_trace_id,
      p_actor_id, p_source_app, p_source_module, p_subject_type, p_subject_id, p_payload,
      coalesce(p_contains_pii, false), p_redaction_hints
    )
    on conflict (tenant_id, trace_id, event_type, occurred_at) do nothing
    returning e.* into v_event;

    exit when found;

    -- Submitted before: return the stored event as it is; nothing else happens.
    select e.* into v_event
    from public.jobforge_events e
    where e.tenant_id = p_tenant_id
      and e.trace_id = v_trace_id
      and e.event_type = p_event_type
      and e.occurred_at = v_occurred_at;
    if found then
      return pg_catalog.to_jsonb(v_event);
    end if;
    -- Purged between the two statements: insert again.
  end loop;

  -- The audit row, written here rather than through jobforge_private.audit(): this is
  -- the hot path, and the call costs as much as the insert.
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
      'subject', pg_catalog.jsonb_build_object('type', p_subject_type, 'id', p_subject_id),
      'contains_pii', v_event.contains_pii,
      -- Never the raw payload: redacted by the hints, or entirely when marked PII.
      'payload', case
        when v_event.redaction_hints is null and not v_event.contains_pii then v_event.payload
        else jobforge_private.event_safe_payload(
          v_event.payload, v_event.contains_pii, v_event.redaction_hints
        )
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

  return pg_catalog.to_jsonb(v_event);
end
$$;

comment on function public.jobforge_submit_event(
  uuid, text, text, jsonb, text, uuid, text, text, text, text, timestamptz, text, boolean, jsonb
) is
  'Ingest one event (idempotent per tenant, trace_id, event_type, occurred_at), audit it with a redacted payload, and fire the matching event triggers. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_submit_event(
  uuid, text, text, jsonb, text, uuid, text, text, text, text, timestamptz, text, boolean, jsonb
) from public, anon;
grant execute on function public.jobforge_submit_event(
  uuid, text, text, jsonb, text, uuid, text, text, text, text, timestamptz, text, boolean, jsonb
) to authenticated, service_role;

create function public.jobforge_submit_events(p_tenant_id uuid, p_events jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
  v_index bigint;
  v_error text[];
  v_rows jsonb;
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

  -- The first element that breaks a rule, in input order (events[0] is the first).
  select e.ord - 1, jobforge_private.event_spec_error(e.elem)
  into v_index, v_error
  from pg_catalog.jsonb_array_elements(p_events) with ordinality as e (elem, ord)
  where jobforge_private.event_spec_error(e.elem) is not null
  order by e.ord
  limit 1;

  if v_error[1] = '.*' then
    select array[
      '.' || pg_catalog.min(k.key),
      'is not a known field (unknown: ' || pg_catalog.string_agg(k.key, ', ' order by k.key) || ')'
    ]
    into v_error
    from pg_catalog.jsonb_object_keys(
      (p_events -> v_index::integer)
        - '{event_type,source_app,payload,source_module,project_id,trace_id,actor_id,subject_type,subject_id,occurred_at,event_version,contains_pii,redaction_hints}'::text[]
    ) as k (key);
  end if;
  if v_error is not null then
    perform jobforge_private.invalid(pg_catalog.format('events[%s]%s', v_index, v_error[1]), v_error[2]);
  end if;

  begin
    -- One statement for the batch. Each element gets its id up front, so the inserted
    -- rows can be matched to their position; an element whose identity is taken (or
    -- repeats an earlier element) inserts nothing and is filled in below.
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
        id, tenant_id, project_id, event_version, event_type, occurred_at, trace_id, actor_id,
        source_app, source_module, subject_type, subject_id, payload, contains_pii,
        redaction_hints
      )
      select
        i.id,
        p_tenant_id,
        (i.elem ->> 'project_id')::uuid,
        coalesce(i.elem ->> 'event_version', '1.0'),
        i.elem ->> 'event_type',
        i.occurred_at,
        i.trace_id,
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
      on conflict (tenant_id, trace_id, event_type, occurred_at) do nothing
      returning ev.*
    )
    select
      pg_catalog.jsonb_agg(
        case when x.id is null then null else pg_catalog.to_jsonb(x) end
        order by i.ord
      ),
      pg_catalog.count(x.id),
      pg_catalog.array_agg(x.id order by i.ord) filter (where x.id is not null),
      pg_catalog.array_agg(distinct x.actor_id) filter (where x.actor_id is not null),
      pg_catalog.count(distinct i.trace_id),
      pg_catalog.min(i.trace_id),
      pg_catalog.jsonb_agg(distinct i.elem -> 'event_type')
    into v_rows, v_inserted, v_inserted_ids, v_actors, v_trace_ids, v_first_trace_id, v_event_types
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

  if v_inserted < v_count or v_fired then
    -- Duplicates get the stored row, and fired triggers may have marked events
    -- processed: read the rows as they are now. A new statement has a new snapshot, so
    -- this also sees identities that a concurrent batch committed meanwhile. A
    -- duplicate had an explicit trace_id (generated ones are unique).
    select pg_catalog.jsonb_agg(
      case
        when r.row is not null and r.row <> 'null'::jsonb then (
          select pg_catalog.to_jsonb(e) from public.jobforge_events e where e.id = (r.row ->> 'id')::uuid
        )
        else (
          select pg_catalog.to_jsonb(e)
          from public.jobforge_events e
          where e.tenant_id = p_tenant_id
            and e.trace_id = p_events -> (r.ord::integer - 1) ->> 'trace_id'
            and e.event_type = p_events -> (r.ord::integer - 1) ->> 'event_type'
            and e.occurred_at = coalesce((p_events -> (r.ord::integer - 1) ->> 'occurred_at')::timestamptz, now())
        )
      end
      order by r.ord
    )
    into v_rows
    from pg_catalog.jsonb_array_elements(v_rows) with ordinality as r (row, ord);
  end if;

  return v_rows;
end
$$;

comment on function public.jobforge_submit_events(uuid, jsonb) is
  'Ingest up to 1,000 events in one statement (duplicates return the stored row), one audit row for the batch, then fire event triggers for the new events. Returns the rows in input order. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_submit_events(uuid, jsonb) from public, anon;
grant execute on function public.jobforge_submit_events(uuid, jsonb) to authenticated, service_role;

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

comment on function public.jobforge_list_events(uuid, uuid, jsonb) is
  'Events of a tenant, newest first, payloads redacted; filters event_type, source_app, source_module, processed, trace_id, subject_type, subject_id, from, to, limit, offset, raw (service_role only). authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_list_events(uuid, uuid, jsonb) from public, anon;
grant execute on function public.jobforge_list_events(uuid, uuid, jsonb) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Templates
-- ---------------------------------------------------------------------------------------

create function public.jobforge_list_templates(
  p_category text default null,
  p_enabled boolean default null
)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_rows jsonb;
begin
  if p_category is not null and p_category not in ('ops', 'support', 'growth', 'finops') then
    perform jobforge_private.invalid('category', 'must be one of ops, support, growth, finops');
  end if;

  select coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t) order by t.template_key), '[]'::jsonb)
  into v_rows
  from public.jobforge_job_templates t
  where (p_category is null or t.category = p_category)
    and (p_enabled is null or t.enabled = p_enabled);
  return v_rows;
end
$$;

comment on function public.jobforge_list_templates(text, boolean) is
  'Job templates ordered by key, optionally by category and enabled. authenticated and service_role.';

revoke all on function public.jobforge_list_templates(text, boolean) from public, anon;
grant execute on function public.jobforge_list_templates(text, boolean) to authenticated, service_role;

create function public.jobforge_get_template(p_template_key text)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_row jsonb;
begin
  if p_template_key is null then
    perform jobforge_private.invalid('template_key', 'is required');
  end if;

  select pg_catalog.to_jsonb(t) into v_row
  from public.jobforge_job_templates t
  where t.template_key = p_template_key;
  if v_row is null then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('template %s not found', p_template_key);
  end if;
  return v_row;
end
$$;

comment on function public.jobforge_get_template(text) is
  'One job template by key (PT404 when unknown). authenticated and service_role.';

revoke all on function public.jobforge_get_template(text) from public, anon;
grant execute on function public.jobforge_get_template(text) to authenticated, service_role;

create function public.jobforge_set_template_enabled(
  p_template_key text,
  p_enabled boolean,
  p_actor_id text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_template public.jobforge_job_templates;
  v_previous boolean;
begin
  perform jobforge_private.assert_service_role();
  if p_template_key is null then
    perform jobforge_private.invalid('template_key', 'is required');
  end if;
  if p_enabled is null then
    perform jobforge_private.invalid('enabled', 'is required');
  end if;
  if jobforge_private.label_error(p_actor_id) is not null then
    perform jobforge_private.invalid('actor_id', jobforge_private.label_error(p_actor_id));
  end if;

  select t.enabled into v_previous
  from public.jobforge_job_templates t
  where t.template_key = p_template_key
  for update;
  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('template %s not found', p_template_key);
  end if;

  update public.jobforge_job_templates t
  set enabled = p_enabled, updated_at = now()
  where t.template_key = p_template_key
  returning t.* into v_template;

  perform jobforge_private.audit(
    null, null, 'template_update', p_actor_id, null, 'template', p_template_key, 'success', null,
    pg_catalog.jsonb_build_object('enabled', p_enabled, 'previous_enabled', v_previous)
  );
  return pg_catalog.to_jsonb(v_template);
end
$$;

comment on function public.jobforge_set_template_enabled(text, boolean, text) is
  'Enable or disable a job template (global). service_role only.';

revoke all on function public.jobforge_set_template_enabled(text, boolean, text)
  from public, anon, authenticated;
grant execute on function public.jobforge_set_template_enabled(text, boolean, text) to service_role;

-- ---------------------------------------------------------------------------------------
-- Policy tokens and action jobs
-- ---------------------------------------------------------------------------------------

create function public.jobforge_add_policy_key(p_kid text, p_secret text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_key jobforge_private.policy_keys;
begin
  perform jobforge_private.assert_service_role();
  if p_kid is null or p_kid = '' then
    perform jobforge_private.invalid('kid', 'is required');
  end if;
  if pg_catalog.char_length(p_kid) > 255 then
    perform jobforge_private.invalid('kid', 'must be at most 255 characters');
  end if;
  if p_secret is null or pg_catalog.char_length(p_secret) < 32 then
    perform jobforge_private.invalid('secret', 'must be at least 32 characters');
  end if;
  if pg_catalog.char_length(p_secret) > 4096 then
    perform jobforge_private.invalid('secret', 'must be at most 4096 characters');
  end if;

  insert into jobforge_private.policy_keys as k (kid, secret)
  values (p_kid, p_secret)
  on conflict (kid) do nothing
  returning k.* into v_key;
  if not found then
    raise exception using
      errcode = 'PT409', message = pg_catalog.format('policy key %s already exists', p_kid);
  end if;

  perform jobforge_private.audit(
    null, null, 'policy_key_add', null, null, 'policy_key', p_kid, 'success', null, '{}'::jsonb
  );
  return pg_catalog.jsonb_build_object('kid', v_key.kid, 'created_at', v_key.created_at);
end
$$;

comment on function public.jobforge_add_policy_key(text, text) is
  'Add an HS256 policy-token key (secret of at least 32 characters; never returned). service_role only.';

revoke all on function public.jobforge_add_policy_key(text, text) from public, anon, authenticated;
grant execute on function public.jobforge_add_policy_key(text, text) to service_role;

create function public.jobforge_retire_policy_key(p_kid text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_key jobforge_private.policy_keys;
  v_already boolean;
begin
  perform jobforge_private.assert_service_role();
  if p_kid is null or p_kid = '' then
    perform jobforge_private.invalid('kid', 'is required');
  end if;

  select k.retired_at is not null into v_already
  from jobforge_private.policy_keys k
  where k.kid = p_kid
  for update;
  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('policy key %s not found', p_kid);
  end if;

  -- Retiring twice keeps the first retirement time.
  update jobforge_private.policy_keys k
  set retired_at = coalesce(k.retired_at, now())
  where k.kid = p_kid
  returning k.* into v_key;

  perform jobforge_private.audit(
    null, null, 'policy_key_retire', null, null, 'policy_key', p_kid,
    case when v_already then 'skipped' else 'success' end,
    case when v_already then 'already retired' end,
    pg_catalog.jsonb_build_object('retired_at', v_key.retired_at)
  );
  return pg_catalog.jsonb_build_object('kid', v_key.kid, 'retired_at', v_key.retired_at);
end
$$;

comment on function public.jobforge_retire_policy_key(text) is
  'Retire a policy-token key: tokens signed with it are refused from now on. service_role only.';

revoke all on function public.jobforge_retire_policy_key(text) from public, anon, authenticated;
grant execute on function public.jobforge_retire_policy_key(text) to service_role;

-- Why this RPC exists: jobforge_request_job refuses a bad token with PT403, and an RPC
-- that raises is rolled back, audit row included. So the SDK calls this first: it never
-- raises for a bad token, and its policy_check audit row (success or denied, with the
-- reason) is committed either way. request_job then verifies the token again and
-- consumes it. This one does not consume the jti.
create function public.jobforge_verify_policy_token(
  p_tenant_id uuid,
  p_template_key text,
  p_policy_token text,
  p_actor_id text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_template public.jobforge_job_templates;
  v_check jsonb;
  v_audit_id uuid;
  v_reason text;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_template_key is null then
    perform jobforge_private.invalid('template_key', 'is required');
  end if;
  v_reason := jobforge_private.label_error(p_actor_id);
  if v_reason is not null then
    perform jobforge_private.invalid('actor_id', v_reason);
  end if;
  select t.* into v_template
  from public.jobforge_job_templates t
  where t.template_key = p_template_key;
  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('template %s not found', p_template_key);
  end if;

  v_check := jobforge_private.check_policy_token(
    p_policy_token, p_tenant_id, p_template_key, v_template.required_scopes
  );

  v_audit_id := jobforge_private.audit(
    p_tenant_id, null, 'policy_check', jobforge_private.audit_actor(p_actor_id), null,
    'template', p_template_key,
    case when (v_check ->> 'ok')::boolean then 'success' else 'denied' end,
    v_check ->> 'reason',
    pg_catalog.jsonb_build_object(
      'template_key', p_template_key,
      'kid', v_check -> 'kid',
      'jti', v_check -> 'jti',
      'scopes', v_check -> 'scopes',
      'sub', v_check -> 'sub'
    )
  );

  return pg_catalog.jsonb_build_object(
    'allowed', (v_check ->> 'ok')::boolean,
    'reason', v_check -> 'reason',
    'audit_id', v_audit_id,
    'jti', v_check -> 'jti'
  );
end
$$;

comment on function public.jobforge_verify_policy_token(uuid, text, text, text) is
  'Check a policy token for a tenant and template without consuming it; never raises for a bad token; always writes a policy_check audit row. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_verify_policy_token(uuid, text, text, text) from public, anon;
grant execute on function public.jobforge_verify_policy_token(uuid, text, text, text)
  to authenticated, service_role;

create function public.jobforge_request_job(
  p_tenant_id uuid,
  p_template_key text,
  p_inputs jsonb default '{}',
  p_project_id uuid default null,
  p_trace_id text default null,
  p_actor_id text default null,
  p_dry_run boolean default false,
  p_idempotency_key text default null,
  p_policy_token text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_template public.jobforge_job_templates;
  v_error text[];
  v_reason text;
  v_trace_id text;
  v_actor text;
  v_check jsonb;
  v_payload jsonb;
  v_job jsonb;
  v_details jsonb;
  v_audit_id uuid;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_template_key is null then
    perform jobforge_private.invalid('template_key', 'is required');
  end if;

  select t.* into v_template
  from public.jobforge_job_templates t
  where t.template_key = p_template_key;
  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('template %s not found', p_template_key);
  end if;
  if not v_template.enabled then
    raise exception using
      errcode = 'PT409', message = pg_catalog.format('template %s is disabled', p_template_key);
  end if;

  p_inputs := coalesce(nullif(p_inputs, 'null'::jsonb), '{}'::jsonb);
  if pg_catalog.jsonb_typeof(p_inputs) <> 'object' then
    perform jobforge_private.invalid('inputs', 'must be a JSON object');
  end if;
  if pg_catalog.octet_length(p_inputs::text) > 262144 then
    perform jobforge_private.invalid('inputs', 'must be at most 256 KiB');
  end if;
  v_error := jobforge_private.inputs_error(v_template.input_schema, p_inputs);
  if v_error is not null then
    perform jobforge_private.invalid('inputs.' || v_error[1], v_error[2]);
  end if;
  v_reason := jobforge_private.label_error(p_trace_id);
  if v_reason is not null then
    perform jobforge_private.invalid('trace_id', v_reason);
  end if;
  v_reason := jobforge_private.label_error(p_actor_id);
  if v_reason is not null then
    perform jobforge_private.invalid('actor_id', v_reason);
  end if;
  v_reason := jobforge_private.idempotency_key_error(p_idempotency_key);
  if v_reason is not null then
    perform jobforge_private.invalid('idempotency_key', v_reason);
  end if;

  v_trace_id := coalesce(p_trace_id, gen_random_uuid()::text);
  v_actor := jobforge_private.audit_actor(p_actor_id);
  p_dry_run := coalesce(p_dry_run, false);

  v_details := pg_catalog.jsonb_build_object(
    'template_key', p_template_key,
    -- Input names only: values may be sensitive and inputs carry no redaction hints.
    'input_keys', (
      select coalesce(pg_catalog.jsonb_agg(k.key order by k.key), '[]'::jsonb)
      from pg_catalog.jsonb_object_keys(p_inputs) as k (key)
    ),
    'idempotency_key', p_idempotency_key,
    'dry_run', p_dry_run
  );

  -- Action jobs need a policy token. Any refusal raises PT403 (and rolls back): the SDK
  -- calls jobforge_verify_policy_token first so that the refusal is on record.
  if v_template.is_action_job then
    v_check := jobforge_private.check_policy_token(
      p_policy_token, p_tenant_id, p_template_key, v_template.required_scopes
    );
    if not (v_check ->> 'ok')::boolean then
      raise exception using
        errcode = 'PT403', message = 'policy token refused: ' || (v_check ->> 'reason');
    end if;
    if not p_dry_run then
      -- A token is good for one job. Two concurrent requests with one token: the second
      -- waits on the first's row and finds it taken.
      insert into jobforge_private.policy_token_uses (jti, tenant_id, template_key, expires_at)
      values (
        v_check ->> 'jti', p_tenant_id, p_template_key,
        -- Capped at the year 9999: an absurd exp must not overflow the timestamp.
        pg_catalog.to_timestamp(least((v_check ->> 'exp')::double precision, 253402300799))
      )
      on conflict (jti) do nothing;
      if not found then
        raise exception using errcode = 'PT403', message = 'policy token refused: replayed';
      end if;
    end if;
    v_details := v_details || pg_catalog.jsonb_build_object(
      'policy', pg_catalog.jsonb_build_object(
        'kid', v_check -> 'kid', 'jti', v_check -> 'jti', 'scopes', v_check -> 'scopes'
      )
    );
  end if;

  v_payload := pg_catalog.jsonb_build_object(
    'template_key', p_template_key,
    'inputs', p_inputs,
    'trace_id', v_trace_id,
    'actor_id', v_actor,
    'project_id', p_project_id
  );

  if p_dry_run then
    v_audit_id := jobforge_private.audit(
      p_tenant_id, p_project_id, 'job_request', v_actor, v_trace_id, 'template', p_template_key,
      'dry_run', null, v_details
    );
    return pg_catalog.jsonb_build_object(
      'job', null,
      'trace_id', v_trace_id,
      'audit_id', v_audit_id,
      'dry_run', true,
      'template_key', p_template_key,
      'would_enqueue', pg_catalog.jsonb_build_object(
        'type', p_template_key,
        'payload', v_payload,
        'max_attempts', v_template.default_max_attempts,
        'idempotency_key', p_idempotency_key
      )
    );
  end if;

  v_job := jobforge_private.enqueue_job(
    p_tenant_id, p_template_key, v_payload, p_idempotency_key, null, v_template.default_max_attempts
  );

  v_audit_id := jobforge_private.audit(
    p_tenant_id, p_project_id, 'job_request', v_actor, v_trace_id, 'job', v_job ->> 'id',
    'success', null,
    v_details || pg_catalog.jsonb_build_object(
      'job_id', v_job -> 'id',
      -- The key was taken: the job returned is the one requested earlier.
      'deduplicated', (v_job ->> 'created_at')::timestamptz < now()
    )
  );

  return pg_catalog.jsonb_build_object(
    'job', v_job,
    'trace_id', v_trace_id,
    'audit_id', v_audit_id,
    'dry_run', false,
    'template_key', p_template_key,
    'would_enqueue', null
  );
end
$$;

comment on function public.jobforge_request_job(uuid, text, jsonb, uuid, text, text, boolean, text, text) is
  'Request a job from an enabled template: inputs checked against its input_schema, policy token verified and consumed for action templates, dry run supported, one job_request audit row. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_request_job(uuid, text, jsonb, uuid, text, text, boolean, text, text)
  from public, anon;
grant execute on function public.jobforge_request_job(uuid, text, jsonb, uuid, text, text, boolean, text, text)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Artifact manifests
-- ---------------------------------------------------------------------------------------

-- What is wrong with a manifest document, as {field, reason}, or null.
create function jobforge_private.manifest_error(p_manifest jsonb)
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_key text;
  v_output jsonb;
  v_index bigint;
  v_value jsonb;
begin
  if pg_catalog.jsonb_typeof(p_manifest) is distinct from 'object' then
    return array['manifest', 'must be a JSON object'];
  end if;
  if pg_catalog.octet_length(p_manifest::text) > 1048576 then
    return array['manifest', 'must be at most 1 MiB'];
  end if;
  select k.key into v_key
  from pg_catalog.jsonb_object_keys(p_manifest) as k (key)
  where k.key not in ('manifest_version', 'job_type', 'inputs_snapshot_ref', 'logs_ref', 'outputs',
    'metrics', 'env_fingerprint', 'tool_versions', 'status', 'error')
  order by k.key
  limit 1;
  if v_key is not null then
    return array['manifest.' || v_key, 'is not a known field'];
  end if;

  foreach v_key in array array['manifest_version', 'job_type', 'inputs_snapshot_ref', 'logs_ref', 'status'] loop
    v_value := nullif(p_manifest -> v_key, 'null'::jsonb);
    continue when v_value is null;
    if pg_catalog.jsonb_typeof(v_value) <> 'string' then
      return array['manifest.' || v_key, 'must be a string'];
    end if;
    if v_value #>> '{}' = '' then
      return array['manifest.' || v_key, 'must not be empty'];
    end if;
    if pg_catalog.char_length(v_value #>> '{}') > (
      case when v_key in ('inputs_snapshot_ref', 'logs_ref') then 2048
        when v_key = 'manifest_version' then 32 else 255 end
    ) then
      return array['manifest.' || v_key, 'is too long'];
    end if;
  end loop;
  if p_manifest ->> 'status' not in ('pending', 'complete', 'failed') then
    return array['manifest.status', 'must be one of pending, complete, failed'];
  end if;

  foreach v_key in array array['metrics', 'env_fingerprint', 'tool_versions'] loop
    v_value := nullif(p_manifest -> v_key, 'null'::jsonb);
    if v_value is not null and pg_catalog.jsonb_typeof(v_value) <> 'object' then
      return array['manifest.' || v_key, 'must be a JSON object'];
    end if;
  end loop;
  select e.key into v_key
  from pg_catalog.jsonb_each(
    case when pg_catalog.jsonb_typeof(p_manifest -> 'tool_versions') = 'object'
      then p_manifest -> 'tool_versions' else '{}'::jsonb end
  ) as e
  where pg_catalog.jsonb_typeof(e.value) <> 'string'
  order by e.key
  limit 1;
  if v_key is not null then
    return array['manifest.tool_versions.' || v_key, 'must be a string'];
  end if;

  v_value := nullif(p_manifest -> 'outputs', 'null'::jsonb);
  if v_value is not null then
    if pg_catalog.jsonb_typeof(v_value) <> 'array' then
      return array['manifest.outputs', 'must be a JSON array'];
    end if;
    if pg_catalog.jsonb_array_length(v_value) > 10000 then
      return array['manifest.outputs', 'at most 10000 outputs'];
    end if;
    for v_output, v_index in
      select o.value, o.ord - 1 from pg_catalog.jsonb_array_elements(v_value) with ordinality as o (value, ord)
    loop
      if pg_catalog.jsonb_typeof(v_output) <> 'object' then
        return array[pg_catalog.format('manifest.outputs[%s]', v_index), 'must be a JSON object'];
      end if;
      select k.key into v_key
      from pg_catalog.jsonb_object_keys(v_output) as k (key)
      where k.key not in ('name', 'type', 'ref', 'size', 'checksum', 'mime_type')
      order by k.key
      limit 1;
      if v_key is not null then
        return array[pg_catalog.format('manifest.outputs[%s].%s', v_index, v_key), 'is not a known field'];
      end if;
      foreach v_key in array array['name', 'type'] loop
        if coalesce(pg_catalog.jsonb_typeof(v_output -> v_key), 'null') = 'null' then
          return array[pg_catalog.format('manifest.outputs[%s].%s', v_index, v_key), 'is required'];
        end if;
      end loop;
      foreach v_key in array array['name', 'type', 'ref', 'mime_type'] loop
        v_value := nullif(v_output -> v_key, 'null'::jsonb);
        continue when v_value is null;
        if pg_catalog.jsonb_typeof(v_value) <> 'string' or v_value #>> '{}' = ''
          or pg_catalog.char_length(v_value #>> '{}') > (case when v_key = 'ref' then 2048 else 255 end) then
          return array[
            pg_catalog.format('manifest.outputs[%s].%s', v_index, v_key),
            'must be a non-empty string of at most ' || case when v_key = 'ref' then 2048 else 255 end || ' characters'
          ];
        end if;
      end loop;
      v_value := nullif(v_output -> 'size', 'null'::jsonb);
      if v_value is not null and (
        pg_catalog.jsonb_typeof(v_value) <> 'number'
        or v_value::numeric <> pg_catalog.trunc(v_value::numeric)
        or v_value::numeric < 0
      ) then
        return array[pg_catalog.format('manifest.outputs[%s].size', v_index), 'must be an integer >= 0'];
      end if;
      v_value := nullif(v_output -> 'checksum', 'null'::jsonb);
      if v_value is not null and (
        pg_catalog.jsonb_typeof(v_value) <> 'string'
        or (v_value #>> '{}') !~ '^sha256:[0-9a-f]{64}$'
      ) then
        return array[
          pg_catalog.format('manifest.outputs[%s].checksum', v_index),
          'must be sha256:<64 lowercase hex digits>'
        ];
      end if;
    end loop;
  end if;
  return null;
end
$$;

revoke all on function jobforge_private.manifest_error(jsonb)
  from public, anon, authenticated, service_role;

create function public.jobforge_create_manifest(p_run_id uuid, p_tenant_id uuid, p_manifest jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_job public.jobforge_jobs;
  v_error text[];
  v_manifest public.jobforge_artifact_manifests;
  v_existing text;
begin
  perform jobforge_private.assert_service_role();
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_run_id is null then
    perform jobforge_private.invalid('run_id', 'is required');
  end if;

  select j.* into v_job
  from public.jobforge_jobs j
  where j.id = p_run_id and j.tenant_id = p_tenant_id;
  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('run %s not found', p_run_id);
  end if;

  p_manifest := coalesce(nullif(p_manifest, 'null'::jsonb), '{}'::jsonb);
  v_error := jobforge_private.manifest_error(p_manifest);
  if v_error is not null then
    perform jobforge_private.invalid(v_error[1], v_error[2]);
  end if;

  -- One manifest per run. A repeat updates a pending manifest (the fields it gives); a
  -- complete or failed one is final.
  insert into public.jobforge_artifact_manifests as m (
    run_id, tenant_id, project_id, manifest_version, job_type, inputs_snapshot_ref, logs_ref,
    outputs, metrics, env_fingerprint, tool_versions, status, error
  )
  values (
    p_run_id,
    p_tenant_id,
    case when jobforge_private.is_uuid_text(v_job.payload ->> 'project_id')
      then (v_job.payload ->> 'project_id')::uuid end,
    coalesce(p_manifest ->> 'manifest_version', '1.0'),
    coalesce(p_manifest ->> 'job_type', v_job.type),
    p_manifest ->> 'inputs_snapshot_ref',
    p_manifest ->> 'logs_ref',
    coalesce(nullif(p_manifest -> 'outputs', 'null'::jsonb), '[]'::jsonb),
    coalesce(nullif(p_manifest -> 'metrics', 'null'::jsonb), '{}'::jsonb),
    coalesce(nullif(p_manifest -> 'env_fingerprint', 'null'::jsonb), '{}'::jsonb),
    coalesce(nullif(p_manifest -> 'tool_versions', 'null'::jsonb), '{}'::jsonb),
    coalesce(p_manifest ->> 'status', 'pending'),
    nullif(p_manifest -> 'error', 'null'::jsonb)
  )
  on conflict (run_id) do update
  set
    manifest_version = case when p_manifest ? 'manifest_version' then excluded.manifest_version else m.manifest_version end,
    job_type = case when p_manifest ? 'job_type' then excluded.job_type else m.job_type end,
    inputs_snapshot_ref = case when p_manifest ? 'inputs_snapshot_ref' then excluded.inputs_snapshot_ref else m.inputs_snapshot_ref end,
    logs_ref = case when p_manifest ? 'logs_ref' then excluded.logs_ref else m.logs_ref end,
    outputs = case when p_manifest ? 'outputs' then excluded.outputs else m.outputs end,
    metrics = case when p_manifest ? 'metrics' then excluded.metrics else m.metrics end,
    env_fingerprint = case when p_manifest ? 'env_fingerprint' then excluded.env_fingerprint else m.env_fingerprint end,
    tool_versions = case when p_manifest ? 'tool_versions' then excluded.tool_versions else m.tool_versions end,
    status = case when p_manifest ? 'status' then excluded.status else m.status end,
    error = case when p_manifest ? 'error' then excluded.error else m.error end,
    updated_at = now()
  where m.status = 'pending'
  returning m.* into v_manifest;

  if not found then
    select m.status into v_existing
    from public.jobforge_artifact_manifests m
    where m.run_id = p_run_id;
    raise exception using
      errcode = 'PT409',
      message = pg_catalog.format('manifest of run %s is %s and cannot be changed', p_run_id, v_existing);
  end if;

  perform jobforge_private.audit(
    p_tenant_id, v_manifest.project_id, 'manifest_write', null,
    case when pg_catalog.jsonb_typeof(v_job.payload -> 'trace_id') = 'string'
      then pg_catalog.left(v_job.payload ->> 'trace_id', 255) end,
    'run', p_run_id::text, 'success', null,
    pg_catalog.jsonb_build_object(
      'manifest_id', v_manifest.id,
      'job_type', v_manifest.job_type,
      'status', v_manifest.status,
      'outputs', pg_catalog.jsonb_array_length(v_manifest.outputs)
    )
  );
  return pg_catalog.to_jsonb(v_manifest);
end
$$;

comment on function public.jobforge_create_manifest(uuid, uuid, jsonb) is
  'Write the artifact manifest of a run (one per run; a pending one may be updated, a complete or failed one is final). service_role only.';

revoke all on function public.jobforge_create_manifest(uuid, uuid, jsonb) from public, anon, authenticated;
grant execute on function public.jobforge_create_manifest(uuid, uuid, jsonb) to service_role;

create function public.jobforge_get_manifest(p_run_id uuid, p_tenant_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_row jsonb;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  if p_run_id is null then
    perform jobforge_private.invalid('run_id', 'is required');
  end if;

  select pg_catalog.to_jsonb(m) into v_row
  from public.jobforge_artifact_manifests m
  where m.run_id = p_run_id and m.tenant_id = p_tenant_id;
  return v_row;
end
$$;

comment on function public.jobforge_get_manifest(uuid, uuid) is
  'The artifact manifest of a run of a tenant, or null. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_get_manifest(uuid, uuid) from public, anon;
grant execute on function public.jobforge_get_manifest(uuid, uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Triggers
-- ---------------------------------------------------------------------------------------

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
  p_actor_id text default null
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
  -- The jobs this trigger makes must be valid requests of the template.
  v_error := jobforge_private.inputs_error(v_template.input_schema, p_target_inputs);
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
    cooldown_seconds, max_fires_per_hour
  )
  values (
    p_tenant_id, p_project_id, p_name, p_trigger_type,
    case when p_trigger_type = 'cron'
      then pg_catalog.regexp_replace(pg_catalog.btrim(p_cron_expression, E' \t\r\n'), E'\\s+', ' ', 'g') end,
    p_event_type_filter, p_event_source_filter, p_target_template_key, p_target_inputs,
    coalesce(p_enabled, false), coalesce(p_dry_run, false), p_cooldown_seconds, p_max_fires_per_hour
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
      'dry_run', v_trigger.dry_run
    )
  );
  return pg_catalog.to_jsonb(v_trigger);
end
$$;

comment on function public.jobforge_create_trigger(
  uuid, text, text, text, text, text, text, jsonb, boolean, boolean, integer, integer, uuid, text
) is
  'Create a cron or event trigger that requests jobs of a (non-action) template. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_create_trigger(
  uuid, text, text, text, text, text, text, jsonb, boolean, boolean, integer, integer, uuid, text
) from public, anon;
grant execute on function public.jobforge_create_trigger(
  uuid, text, text, text, text, text, text, jsonb, boolean, boolean, integer, integer, uuid, text
) to authenticated, service_role;

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

comment on function public.jobforge_list_triggers(uuid, jsonb) is
  'Triggers of a tenant, newest first; filters trigger_type, enabled, limit, offset. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_list_triggers(uuid, jsonb) from public, anon;
grant execute on function public.jobforge_list_triggers(uuid, jsonb) to authenticated, service_role;

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

  update public.jobforge_triggers t
  set enabled = p_enabled, updated_at = now()
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

comment on function public.jobforge_set_trigger_enabled(uuid, uuid, boolean, text) is
  'Enable or disable a trigger of a tenant. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_set_trigger_enabled(uuid, uuid, boolean, text) from public, anon;
grant execute on function public.jobforge_set_trigger_enabled(uuid, uuid, boolean, text)
  to authenticated, service_role;

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

comment on function public.jobforge_delete_trigger(uuid, uuid, text) is
  'Delete a trigger of a tenant; returns the deleted row. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_delete_trigger(uuid, uuid, text) from public, anon;
grant execute on function public.jobforge_delete_trigger(uuid, uuid, text) to authenticated, service_role;

-- Fire a cron trigger for one schedule slot, exactly once however often and however
-- concurrently it is called: the trigger row is locked, then the slot is claimed by
-- inserting its trigger_fires row; a second call finds it taken.
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

  insert into jobforge_private.trigger_fires (trigger_id, fire_key, job_id, dry_run)
  values (p_trigger_id, 'cron:' || v_slot, null, false)
  on conflict (trigger_id, fire_key) do nothing;
  if not found then
    return v_base || pg_catalog.jsonb_build_object(
      'fired', false, 'job', null, 'dry_run', v_trigger.dry_run,
      'reason', 'already fired for this slot', 'audit_id', null
    );
  end if;

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

comment on function public.jobforge_fire_cron_trigger(uuid, timestamptz) is
  'Fire a cron trigger for one schedule slot, exactly once per (trigger, slot). service_role only.';

revoke all on function public.jobforge_fire_cron_trigger(uuid, timestamptz) from public, anon, authenticated;
grant execute on function public.jobforge_fire_cron_trigger(uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------
-- Audit trail and retention
-- ---------------------------------------------------------------------------------------

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

comment on function public.jobforge_list_audit_logs(uuid, jsonb) is
  'Audit rows of a tenant (or, for service_role with a null tenant, the global rows), newest first; filters action, actor_id, trace_id, target_type, target_id, outcome, from, to, limit, offset. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_list_audit_logs(uuid, jsonb) from public, anon;
grant execute on function public.jobforge_list_audit_logs(uuid, jsonb) to authenticated, service_role;

create function public.jobforge_purge_expired_events(p_retention_days integer default 30)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cutoff timestamptz;
  v_deleted integer;
begin
  perform jobforge_private.assert_service_role();
  if p_retention_days is null or p_retention_days < 1 then
    perform jobforge_private.invalid('retention_days', 'must be at least 1');
  end if;
  v_cutoff := now() - pg_catalog.make_interval(days => p_retention_days);

  delete from public.jobforge_events e where e.created_at < v_cutoff;
  get diagnostics v_deleted = row_count;

  -- Bookkeeping that ages with the events: fire records older than the retention (cron
  -- slots that old are not retried; the hourly limit looks back one hour), and used
  -- token ids whose token has expired (an expired token is refused anyway).
  delete from jobforge_private.trigger_fires f
  where f.fired_at < least(v_cutoff, now() - interval '1 day');
  delete from jobforge_private.policy_token_uses u where u.expires_at < now();

  return v_deleted;
end
$$;

comment on function public.jobforge_purge_expired_events(integer) is
  'Delete events created more than p_retention_days ago (and stale trigger-fire and token-use records); returns the number of events deleted. service_role only.';

revoke all on function public.jobforge_purge_expired_events(integer) from public, anon, authenticated;
grant execute on function public.jobforge_purge_expired_events(integer) to service_role;

-- The only way audit rows are ever removed: the append-only trigger lets a DELETE pass
-- while jobforge.audit_purge is on, which the SET clause below does for this function's
-- execution only.
create function public.jobforge_purge_audit_logs(p_retention_days integer default 365)
returns integer
language plpgsql
security definer
set search_path = ''
set jobforge.audit_purge = 'on'
as $$
declare
  v_deleted integer;
begin
  perform jobforge_private.assert_service_role();
  if p_retention_days is null or p_retention_days < 1 then
    perform jobforge_private.invalid('retention_days', 'must be at least 1');
  end if;

  delete from public.jobforge_audit_logs a
  where a.created_at < now() - pg_catalog.make_interval(days => p_retention_days);
  get diagnostics v_deleted = row_count;
  return v_deleted;
end
$$;

comment on function public.jobforge_purge_audit_logs(integer) is
  'Delete audit rows older than p_retention_days (at least 1); the only way audit rows are removed. service_role only.';

revoke all on function public.jobforge_purge_audit_logs(integer) from public, anon, authenticated;
grant execute on function public.jobforge_purge_audit_logs(integer) to service_role;

-- ---------------------------------------------------------------------------------------
-- jobforge_cancel_job, now audited
-- ---------------------------------------------------------------------------------------

-- Same signature, checks, messages and result as in 001; it also writes one job_cancel
-- audit row in the same transaction.
create or replace function public.jobforge_cancel_job(p_job_id uuid, p_tenant_id uuid)
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

  -- Lock first, so the audit row records the state the job was canceled from.
  select j.status into v_status
  from public.jobforge_jobs j
  where j.id = p_job_id and j.tenant_id = p_tenant_id
  for no key update;

  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('job %s not found', p_job_id);
  end if;
  if v_status not in ('queued', 'running') then
    raise exception using
      errcode = 'PT409',
      message = pg_catalog.format(
        'job %s is %s; only queued or running jobs can be canceled', p_job_id, v_status
      );
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
  returning j.* into v_job;

  perform jobforge_private.audit(
    p_tenant_id,
    case when jobforge_private.is_uuid_text(v_job.payload ->> 'project_id')
      then (v_job.payload ->> 'project_id')::uuid end,
    'job_cancel',
    jobforge_private.audit_actor(null),
    case when pg_catalog.jsonb_typeof(v_job.payload -> 'trace_id') = 'string'
      then pg_catalog.left(v_job.payload ->> 'trace_id', 255) end,
    'job', p_job_id::text, 'success', null,
    pg_catalog.jsonb_build_object('type', v_job.type, 'previous_status', v_status)
  );
  return pg_catalog.to_jsonb(v_job);
end
$$;

comment on function public.jobforge_cancel_job(uuid, uuid) is
  'Cancel a queued or running job; writes a job_cancel audit row. authenticated (own tenants) and service_role.';

revoke all on function public.jobforge_cancel_job(uuid, uuid) from public, anon;
grant execute on function public.jobforge_cancel_job(uuid, uuid) to authenticated, service_role;
