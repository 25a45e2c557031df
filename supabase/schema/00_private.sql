-- 00_private: the private schema, the vocabularies, tenancy checks and shared helpers.
--
-- The contract every RPC of this schema keeps (docs/architecture.md, "The database
-- contract"):
--   * SECURITY DEFINER with an empty search_path, every object named with its schema,
--     and the caller's right to p_tenant_id checked before anything else;
--   * errors: PT400 invalid input ("field: reason"), PT403 not allowed, PT404 no such
--     object for this tenant (never revealing another tenant's), PT409 state conflict;
--   * who may call it is said once, in 90_api.sql.
--
-- Callers: service_role (and any superuser or BYPASSRLS role) acts for any tenant;
-- authenticated acts for the tenants named by app_metadata.tenant_id / tenant_ids of its
-- JWT and reads their rows through RLS; anon can do nothing.

create schema jobforge_private;

comment on schema jobforge_private is
  'JobForge internals: helpers used by the RPCs and RLS policies. Not an API.';

revoke all on schema jobforge_private from public;
-- RLS policies call jobforge_private.jwt_tenant_ids() as the querying role, which needs
-- USAGE on the schema. Every function in it is revoked from everyone else anyway.
grant usage on schema jobforge_private to authenticated, service_role;

-- Helpers are SECURITY INVOKER and, except jwt_tenant_ids(), executable by no API role.
-- Every function of this library, helpers included, has SET search_path = '' and names
-- every object outside pg_catalog with its schema (pg_catalog is searched even with an
-- empty search_path), so none depends on the search_path of its caller (Supabase's
-- function_search_path_mutable lint).
--
-- What that SET costs decides the shape of the helpers (PostgreSQL 15, per call in a
-- transaction of its own, as an RPC call is):
--   * a plpgsql function pays about a microsecond for it, so every helper is plpgsql,
--     even a one-expression rule (some 3 us a call in all);
--   * a SQL function with a SET clause is never inlined, and the SQL-function executor
--     that runs it instead plans its body again at each first call of a statement:
--     some 20 us a call, ten times the plpgsql function;
--   * so a rule checked for every element of a batch is not called as a function at all:
--     job_specs_error (20_jobs.sql) and event_specs_error (30_events.sql) check a whole
--     batch in one call, with the rules written out in one scan. The single-item RPCs
--     call the one-value helpers instead (the batch check of a single element costs some
--     50 us more); the tests pin both paths to the same messages.

-- Vocabularies. Each list of allowed words is written here once: table CHECKs, input
-- checks and their messages read it, and tests/unit pins the SDK's enums to it. The
-- planner calls these while planning and uses the constant: once per plan in an RPC, and
-- once per statement in a CHECK (a SQL function would cost each INSERT into its table
-- those 20 us; see above).
create function jobforge_private.job_statuses()
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
begin
  return array['queued', 'running', 'succeeded', 'failed', 'dead', 'canceled'];
end
$$;

create function jobforge_private.source_apps()
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
begin
  return array['settler', 'aias', 'keys', 'readylayer', 'jobforge', 'external'];
end
$$;

create function jobforge_private.source_modules()
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
begin
  return array['ops', 'support', 'growth', 'finops', 'core'];
end
$$;

create function jobforge_private.template_categories()
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
begin
  return array['ops', 'support', 'growth', 'finops'];
end
$$;

-- Raise an input error. The message always starts with the field name and a colon:
-- the SDK reads the field from it.
create function jobforge_private.invalid(p_field text, p_reason text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = 'PT400', message = p_field || ': ' || p_reason;
end
$$;

-- The caps every JSON argument meets (docs/execution-plane-contract.md, "Input
-- limits"): containers nested at most 64 deep, and a size per argument. A deeper value is
-- refused before it is stored: the answers that carry it back nest it a few levels deeper
-- still, and clients' JSON parsers stop at some depth (pydantic's near 200), so a row
-- that deep could not be read back, by a worker claiming it or by a list holding it.
-- A container nested 65 deep is one found at level 64 (the root is level 0). The SDK
-- (models/_base.py, MAX_JSON_DEPTH) refuses the same values with the same words.
-- The batch helpers (job_specs_error, event_specs_error) and jobforge_complete_jobs
-- spell the same jsonpath out; a change here is made there too. They walk a value only
-- when its jsonb takes more than 256 bytes: every level of nesting costs at least a
-- container header and a slot in its parent (8 bytes), so the smallest value nested 65
-- deep takes 520 (half of that is the margin). That holds for the values they check, which -> and
-- jsonb_array_elements build afresh (never compressed); a function argument may arrive
-- compressed from a table, so the single-value check here always walks (some 3 us for
-- a typical payload).
create function jobforge_private.json_depth_error(p_value jsonb)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when pg_catalog.jsonb_path_exists(
      p_value, 'strict $.**{64} ? (@.type() == "object" || @.type() == "array")'
    ) then 'must be nested at most 64 levels deep'
  end;
end
$$;

-- The depth cap and a size cap (the text form as jsonb prints it, in bytes).
create function jobforge_private.json_error(p_value jsonb, p_max_bytes integer)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_value is null then
    return null;
  end if;
  if pg_catalog.octet_length(p_value::text) > p_max_bytes then
    return 'must be at most ' || case
      when p_max_bytes % 1048576 = 0 then (p_max_bytes / 1048576)::text || ' MiB'
      else (p_max_bytes / 1024)::text || ' KiB'
    end;
  end if;
  return jobforge_private.json_depth_error(p_value);
end
$$;

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
set search_path = ''
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

-- The tenants named by the JWT of the current request: app_metadata.tenant_id plus the
-- elements of app_metadata.tenant_ids. Values that are not UUIDs are ignored; no claims
-- at all give an empty array, never "all tenants".
--
-- Called by the RLS policies as the querying role, hence granted to authenticated. It is
-- SECURITY INVOKER: it reads nothing but the claims of the caller.
--
-- Claims that are not JSON at all (request.jwt.claims set by hand, or by a proxy that
-- does not check the token) are an authentication failure, PT403, not bad input of the
-- call (22P02, which the API would answer with 400): refused, never read as "no tenant".
create function jobforge_private.jwt_tenant_ids()
returns uuid[]
language plpgsql
stable
set search_path = ''
as $$
declare
  v_meta jsonb;
  v_ids uuid[];
begin
  begin
    v_meta := auth.jwt() -> 'app_metadata';
  exception
    when invalid_text_representation then
      raise exception using
        errcode = 'PT403', message = 'invalid JWT: request.jwt.claims is not a JSON object';
  end;
  if v_meta is null or pg_catalog.jsonb_typeof(v_meta) <> 'object' then
    return '{}'::uuid[];
  end if;

  select coalesce(pg_catalog.array_agg(distinct c.value::uuid), '{}'::uuid[])
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

-- Refuse unless the caller may act for the tenant (PT403), or no tenant is given (PT400).
create function jobforge_private.assert_tenant(p_tenant_id uuid)
returns void
language plpgsql
stable
set search_path = ''
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

-- Refuse unless the caller is trusted. Worker RPCs are granted to service_role only; this
-- is the second lock on the same door.
create function jobforge_private.assert_service_role()
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  if not jobforge_private.caller_is_trusted() then
    raise exception using errcode = 'PT403', message = 'service_role required';
  end if;
end
$$;

-- A UUID given inside a JSON document: only what the uuid type is sure to accept.
-- (event_specs_error applies the same pattern to every element of a batch inline.)
create function jobforge_private.is_uuid_text(p_value text)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  return p_value ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$';
end
$$;

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

-- A string filter that must be one of p_choices (a vocabulary of this file).
create function jobforge_private.filter_choice(p_filters jsonb, p_key text, p_choices text[])
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
  if pg_catalog.jsonb_typeof(v_value) <> 'string' or v_value #>> '{}' <> all (p_choices) then
    perform jobforge_private.invalid(
      p_key, 'must be one of ' || pg_catalog.array_to_string(p_choices, ', ')
    );
  end if;
  return v_value #>> '{}';
end
$$;

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
