-- 50_manifests: the artifact manifest of every run (outputs, metrics, env fingerprint,
-- tool versions), written by workers and read by apps.

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
alter table public.jobforge_artifact_manifests enable row level security;

create policy jobforge_artifact_manifests_tenant_select on public.jobforge_artifact_manifests
  for select to authenticated
  using (tenant_id = any ((select jobforge_private.jwt_tenant_ids())::uuid[]));

-- Supabase's default privileges grant everything on new tables to the API roles: take
-- it back; writes go through the RPCs only.
revoke all on table
  public.jobforge_artifact_manifests
  from public, anon, authenticated, service_role;

grant select on table
  public.jobforge_artifact_manifests
  to authenticated, service_role;


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
  if jobforge_private.json_depth_error(p_manifest) is not null then
    return array['manifest', jobforge_private.json_depth_error(p_manifest)];
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

comment on function public.jobforge_create_manifest is
  'Write the artifact manifest of a run (one per run; a pending one may be updated, a complete or failed one is final). service_role only.';

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

comment on function public.jobforge_get_manifest is
  'The artifact manifest of a run of a tenant, or null. authenticated (own tenants) and service_role.';

-- Retention of manifests by run age: the manifests of finished runs (succeeded, dead,
-- canceled, as jobforge_purge_finished_jobs counts them) that finished more than
-- p_older_than ago, at most p_batch_size per call, the jobs themselves kept. A manifest
-- can be up to 1 MiB where its job row is small, so an app may keep manifests for less
-- time than jobs; it cannot keep them longer, since a manifest goes with its job (ON
-- DELETE CASCADE). A run still queued or running keeps its manifest whatever its age.
create function public.jobforge_purge_manifests(
  p_older_than interval,
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
  v_deleted integer;
  v_more boolean;
begin
  perform jobforge_private.assert_service_role();
  v_cutoff := jobforge_private.retention_cutoff(p_older_than, p_batch_size);

  v_ids := array(
    select m.id
    from public.jobforge_artifact_manifests m
    join public.jobforge_jobs j on j.id = m.run_id
    where j.status in ('succeeded', 'dead', 'canceled') and j.finished_at < v_cutoff
    limit p_batch_size + 1
    for update of m skip locked
  );
  delete from public.jobforge_artifact_manifests m where m.id = any (v_ids[1:p_batch_size]);
  get diagnostics v_deleted = row_count;
  v_more := pg_catalog.cardinality(v_ids) > p_batch_size;

  perform jobforge_private.audit_purge(
    'jobforge_artifact_manifests', v_deleted, v_cutoff,
    pg_catalog.jsonb_build_object('batch_size', p_batch_size, 'more', v_more)
  );
  return pg_catalog.json_build_object('deleted', v_deleted, 'more', v_more);
end
$$;

comment on function public.jobforge_purge_manifests is
  'Delete up to p_batch_size (1-10000) manifests of succeeded, dead or canceled runs finished more than p_older_than ago (the jobs stay); answers {deleted, more} (call again while more); one retention_purge audit row. service_role only.';
