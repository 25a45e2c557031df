-- 47_connectors: a tenant's connector configs (the table is jobforge_connector_configs,
-- in 20_jobs.sql), the RPCs that write and list them, and the check request_job makes
-- of a template's required_connectors.
--
-- Who: a signed-in user for the tenants of its JWT, and the service role for any
-- (assert_tenant), like the triggers: a tenant wires up its own connectors. Every write
-- adds one audit row.
--
-- Secrets are write-only. They live in the secrets column, which no API role may select
-- (column grants in 20_jobs.sql; RLS only ever filters rows), no RPC answers (set and
-- list answer the names of the secret keys, secret_keys, and nothing of their values),
-- and no audit row holds (it records key names only, never a value nor a digest of one:
-- a digest of a short token is as good as the token to whoever can guess it). Sending
-- no secrets (null) keeps the stored ones, since a caller cannot read them back to send
-- them again; sending an object replaces them all ({} clears them).

-- Why a connector type is refused, or null. The same rule as the CHECK on
-- jobforge_connector_configs.connector_type (20_jobs.sql): a lowercase identifier, as
-- templates name their required_connectors. There is no list of connector types: a
-- connector is whatever a tenant's workers know how to use.
create function jobforge_private.connector_type_error(p_value text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_value is null then 'is required'
    when pg_catalog.char_length(p_value) > 63 then 'must be at most 63 characters'
    when p_value !~ '^[a-z][a-z0-9_]*$'
      then 'must be a lowercase identifier (a letter, then letters, digits or _)'
  end;
end
$$;

-- What the RPCs answer for a row: every column but secrets, and the sorted names of the
-- secret keys. The columns are listed one by one, so a column added later is not
-- answered until it is added here.
create function jobforge_private.connector_config_answer(p_row public.jobforge_connector_configs)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  return pg_catalog.jsonb_build_object(
    'id', p_row.id,
    'tenant_id', p_row.tenant_id,
    'connector_type', p_row.connector_type,
    'config', p_row.config,
    'enabled', p_row.enabled,
    'secret_keys', jobforge_private.audit_key_names(p_row.secrets),
    'created_at', p_row.created_at,
    'updated_at', p_row.updated_at
  );
end
$$;

create function public.jobforge_set_connector_config(
  p_tenant_id uuid,
  p_connector_type text,
  p_config jsonb default '{}',
  p_secrets jsonb default null,
  p_enabled boolean default false,
  p_actor_id text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_reason text;
  v_previous boolean;
  v_inserted boolean;
  v_row public.jobforge_connector_configs;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);

  v_reason := jobforge_private.connector_type_error(p_connector_type);
  if v_reason is not null then
    perform jobforge_private.invalid('connector_type', v_reason);
  end if;
  p_config := coalesce(nullif(p_config, 'null'::jsonb), '{}'::jsonb);
  if pg_catalog.jsonb_typeof(p_config) <> 'object' then
    perform jobforge_private.invalid('config', 'must be a JSON object');
  end if;
  v_reason := jobforge_private.json_error(p_config, 65536);
  if v_reason is not null then
    perform jobforge_private.invalid('config', v_reason);
  end if;
  -- The reasons never quote the value: it is a secret.
  p_secrets := nullif(p_secrets, 'null'::jsonb);
  if p_secrets is not null then
    if pg_catalog.jsonb_typeof(p_secrets) <> 'object' then
      perform jobforge_private.invalid('secrets', 'must be a JSON object');
    end if;
    v_reason := jobforge_private.json_error(p_secrets, 16384);
    if v_reason is not null then
      perform jobforge_private.invalid('secrets', v_reason);
    end if;
  end if;
  v_reason := jobforge_private.label_error(p_actor_id);
  if v_reason is not null then
    perform jobforge_private.invalid('actor_id', v_reason);
  end if;
  p_enabled := coalesce(p_enabled, false);

  select c.enabled into v_previous
  from public.jobforge_connector_configs c
  where c.tenant_id = p_tenant_id and c.connector_type = p_connector_type
  for no key update;
  v_inserted := not found;

  insert into public.jobforge_connector_configs as c
    (tenant_id, connector_type, config, secrets, enabled)
  values
    (p_tenant_id, p_connector_type, p_config, coalesce(p_secrets, '{}'::jsonb), p_enabled)
  on conflict (tenant_id, connector_type) do update
  set
    config = excluded.config,
    secrets = coalesce(p_secrets, c.secrets),
    enabled = excluded.enabled,
    updated_at = now()
  returning c.* into v_row;

  perform jobforge_private.audit(
    p_tenant_id, null, 'connector_config_set', jobforge_private.audit_actor(p_actor_id), null,
    'connector', p_connector_type, 'success', null,
    pg_catalog.jsonb_build_object(
      'connector_type', p_connector_type,
      'inserted', v_inserted,
      'enabled', p_enabled,
      'previous_enabled', v_previous,
      'config_keys', jobforge_private.audit_key_names(p_config),
      'secret_keys', jobforge_private.audit_key_names(v_row.secrets),
      'secrets_replaced', p_secrets is not null
    )
  );
  return jobforge_private.connector_config_answer(v_row);
end
$$;

comment on function public.jobforge_set_connector_config is
  'Create or replace the config of one connector of a tenant: config (an object, at most 64 KiB), enabled, and secrets (an object, at most 16 KiB; null keeps the stored ones). Answers the row without secrets, with secret_keys. Audited (connector_config_set). authenticated (own tenants) and service_role.';

create function public.jobforge_list_connector_configs(p_tenant_id uuid)
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

  select coalesce(
    pg_catalog.jsonb_agg(jobforge_private.connector_config_answer(c) order by c.connector_type),
    '[]'::jsonb
  )
  into v_rows
  from public.jobforge_connector_configs c
  where c.tenant_id = p_tenant_id;
  return v_rows;
end
$$;

comment on function public.jobforge_list_connector_configs is
  'The connector configs of a tenant by connector type, without secrets (secret_keys names them). authenticated (own tenants) and service_role.';

create function public.jobforge_delete_connector_config(
  p_tenant_id uuid,
  p_connector_type text,
  p_actor_id text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_reason text;
  v_row public.jobforge_connector_configs;
begin
  perform jobforge_private.assert_tenant(p_tenant_id);
  v_reason := jobforge_private.connector_type_error(p_connector_type);
  if v_reason is not null then
    perform jobforge_private.invalid('connector_type', v_reason);
  end if;
  v_reason := jobforge_private.label_error(p_actor_id);
  if v_reason is not null then
    perform jobforge_private.invalid('actor_id', v_reason);
  end if;

  delete from public.jobforge_connector_configs c
  where c.tenant_id = p_tenant_id and c.connector_type = p_connector_type
  returning c.* into v_row;
  if not found then
    raise exception using
      errcode = 'PT404',
      message = pg_catalog.format('connector config %s not found', p_connector_type);
  end if;

  perform jobforge_private.audit(
    p_tenant_id, null, 'connector_config_delete', jobforge_private.audit_actor(p_actor_id), null,
    'connector', p_connector_type, 'success', null,
    pg_catalog.jsonb_build_object(
      'connector_type', p_connector_type,
      'previous_enabled', v_row.enabled,
      'secret_keys', jobforge_private.audit_key_names(v_row.secrets)
    )
  );
  return jobforge_private.connector_config_answer(v_row);
end
$$;

comment on function public.jobforge_delete_connector_config is
  'Delete the config of one connector of a tenant (secrets with it); answers the deleted row without secrets. Audited (connector_config_delete). authenticated (own tenants) and service_role.';

-- The first connector of p_required (in its order) that the tenant has no enabled config
-- for, or null when every one has one.
create function jobforge_private.missing_connector(p_tenant_id uuid, p_required text[])
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  if coalesce(pg_catalog.cardinality(p_required), 0) = 0 then
    return null;
  end if;
  return (
    select r.name
    from pg_catalog.unnest(p_required) with ordinality as r (name, n)
    left join public.jobforge_connector_configs c
      on c.tenant_id = p_tenant_id and c.connector_type = r.name
    where c.enabled is not true
    order by r.n
    limit 1
  );
end
$$;

-- request_job's check (40_templates.sql): every connector the template requires has an
-- enabled config for the tenant, else PT409 naming the first one missing, in the
-- template's order. A dry run is refused the same way: it answers what a real request
-- would do, and that would be refused. Checked when the job is requested: disabling or
-- deleting a config later leaves the jobs already queued alone. (A trigger's fire skips
-- instead, with the connector as its reason: 60_triggers.sql.)
create function jobforge_private.assert_connectors(
  p_tenant_id uuid,
  p_template_key text,
  p_required text[]
)
returns void
language plpgsql
stable
set search_path = ''
as $$
declare
  v_name text := jobforge_private.missing_connector(p_tenant_id, p_required);
begin
  if v_name is not null then
    raise exception using
      errcode = 'PT409',
      message = pg_catalog.format(
        'template %s requires connector %s, which %s', p_template_key, v_name,
        case
          when exists (
            select 1
            from public.jobforge_connector_configs c
            where c.tenant_id = p_tenant_id and c.connector_type = v_name
          ) then 'is disabled for this tenant'
          else 'has no config for this tenant'
        end
      );
  end if;
end
$$;
