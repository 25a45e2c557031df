-- 40_templates: the registry of autopilot job templates (13 seeded, all disabled until
-- an administrator enables one), input validation against a template's schema, and
-- request_job, the only way an autopilot.* job enters the queue.

-- JSON Schema, the part the database checks
-- -----------------------------------------
-- A template's input_schema may use only the keywords below. The validation keywords are
-- all checked by schema_error; the annotations are keywords JSON Schema itself never
-- validates ("format" included: an annotation by default in draft 2020-12). A schema with
-- any other keyword is refused when the template is written (the CHECK on
-- input_schema), so the SDK's full JSON Schema check (jsonschema, draft 2020-12) and this
-- one accept and refuse the same inputs.
--
-- One rule on top of JSON Schema, applied the same way by the SDK: an object property
-- whose value is JSON null is absent (so it fails "required", and passes "type").

-- The path of a child: "" + "a" = "a", "a" + "b" = "a.b".
create function jobforge_private.json_path(p_parent text, p_child text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case when p_parent = '' then p_child else p_parent || '.' || p_child end;
end
$$;

-- The JSON types a schema can name.
create function jobforge_private.json_types()
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
begin
  return array['array', 'boolean', 'integer', 'null', 'number', 'object', 'string'];
end
$$;

-- Why a schema uses something the database cannot check, naming where; null when fine.
create function jobforge_private.schema_keyword_error(p_schema jsonb, p_path text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_key text;
  v_value jsonb;
  v_kind text;
  v_error text;
  v_child record;
begin
  if pg_catalog.jsonb_typeof(p_schema) is distinct from 'object' then
    return p_path || ': a schema must be a JSON object';
  end if;
  for v_key, v_value in
    select e.key, e.value from pg_catalog.jsonb_each(p_schema) as e order by e.key
  loop
    v_kind := pg_catalog.jsonb_typeof(v_value);
    v_error := case
      when v_key in (
        'description', 'title', 'format', 'default', 'examples', '$comment',
        'deprecated', 'readOnly', 'writeOnly'
      ) then null
      when v_key = 'type' then
        case
          when v_kind = 'string' and v_value #>> '{}' = any (jobforge_private.json_types())
            then null
          when v_kind = 'array' and pg_catalog.jsonb_array_length(v_value) > 0
            and not exists (
              select from pg_catalog.jsonb_array_elements(v_value) as t (name)
              where pg_catalog.jsonb_typeof(t.name) <> 'string'
                or t.name #>> '{}' <> all (jobforge_private.json_types())
            )
            then null
          else 'must name JSON types ('
            || pg_catalog.array_to_string(jobforge_private.json_types(), ', ') || ')'
        end
      when v_key = 'enum' then
        case when v_kind = 'array' then null else 'must be an array' end
      when v_key in ('minimum', 'maximum') then
        case when v_kind = 'number' then null else 'must be a number' end
      when v_key in ('minLength', 'maxLength', 'minItems', 'maxItems') then
        case
          when v_kind = 'number' and v_value::numeric >= 0
            and v_value::numeric = pg_catalog.trunc(v_value::numeric) then null
          else 'must be a non-negative integer'
        end
      when v_key = 'required' then
        case
          when v_kind = 'array' and not exists (
            select from pg_catalog.jsonb_array_elements(v_value) as r (name)
            where pg_catalog.jsonb_typeof(r.name) <> 'string'
          ) then null
          else 'must be an array of names'
        end
      when v_key = 'additionalProperties' then
        case when v_kind = 'boolean' then null else 'only true or false is checked' end
      when v_key = 'properties' then
        case when v_kind = 'object' then null else 'must be an object' end
      when v_key = 'items' then
        case when v_kind = 'object' then null else 'must be a schema object' end
      else 'is not a keyword the database checks'
    end;
    if v_error is not null then
      return jobforge_private.json_path(p_path, v_key) || ': ' || v_error;
    end if;
  end loop;

  for v_child in
    select jobforge_private.json_path(p_path, 'properties.' || p.key) as path, p.value
    from pg_catalog.jsonb_each(coalesce(p_schema -> 'properties', '{}')) as p
    union all
    select jobforge_private.json_path(p_path, 'items'), p_schema -> 'items'
    where p_schema ? 'items'
    order by 1
  loop
    v_error := jobforge_private.schema_keyword_error(v_child.value, v_child.path);
    if v_error is not null then
      return v_error;
    end if;
  end loop;
  return null;
end
$$;

-- Check a JSON value against a schema of the keywords above. Returns {path, reason} for
-- the first problem found (path "" is the value itself), or null. The order of the checks
-- is part of the contract (the SDK reports the same first problem): the value's own
-- keywords in the order below, then its items by index or its properties by name in
-- byte order (collate "C", whatever the database's collation), depth first. An integer is a number
-- with no fractional part (1.0 counts, as in JSON Schema); booleans are not numbers.
create function jobforge_private.schema_error(p_schema jsonb, p_value jsonb, p_path text)
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_kind text := pg_catalog.jsonb_typeof(p_value);
  v_types jsonb;
  v_name text;
  v_child record;
  v_error text[];
begin
  if pg_catalog.jsonb_typeof(p_schema) is distinct from 'object' then
    return null;
  end if;

  v_types := case pg_catalog.jsonb_typeof(p_schema -> 'type')
    when 'string' then pg_catalog.jsonb_build_array(p_schema -> 'type')
    when 'array' then p_schema -> 'type'
  end;
  if v_types is not null and not exists (
    select from pg_catalog.jsonb_array_elements_text(v_types) as t (name)
    where v_kind = t.name
      or (t.name = 'integer' and v_kind = 'number'
        and p_value::numeric = pg_catalog.trunc(p_value::numeric))
  ) then
    return array[p_path, 'must be ' || (
      select pg_catalog.string_agg(t.name, ' or ')
      from pg_catalog.jsonb_array_elements_text(v_types) as t (name)
    )];
  end if;

  if p_schema ? 'enum' and not exists (
    select from pg_catalog.jsonb_array_elements(p_schema -> 'enum') as e (value)
    where e.value = p_value
  ) then
    return array[p_path, 'must be one of ' || (p_schema ->> 'enum')];
  end if;

  case v_kind
    when 'number' then
      if p_value::numeric < (p_schema ->> 'minimum')::numeric then
        return array[p_path, 'must be at least ' || (p_schema ->> 'minimum')];
      end if;
      if p_value::numeric > (p_schema ->> 'maximum')::numeric then
        return array[p_path, 'must be at most ' || (p_schema ->> 'maximum')];
      end if;
    when 'string' then
      -- Characters, as JSON Schema counts them (code points, not bytes).
      if pg_catalog.char_length(p_value #>> '{}') < (p_schema ->> 'minLength')::numeric then
        return array[p_path, 'must be at least ' || (p_schema ->> 'minLength') || ' characters'];
      end if;
      if pg_catalog.char_length(p_value #>> '{}') > (p_schema ->> 'maxLength')::numeric then
        return array[p_path, 'must be at most ' || (p_schema ->> 'maxLength') || ' characters'];
      end if;
    when 'array' then
      if pg_catalog.jsonb_array_length(p_value) < (p_schema ->> 'minItems')::numeric then
        return array[p_path, 'must have at least ' || (p_schema ->> 'minItems') || ' items'];
      end if;
      if pg_catalog.jsonb_array_length(p_value) > (p_schema ->> 'maxItems')::numeric then
        return array[p_path, 'must have at most ' || (p_schema ->> 'maxItems') || ' items'];
      end if;
      if p_schema ? 'items' then
        for v_child in
          select jobforge_private.json_path(p_path, (e.n - 1)::text) as path, e.value
          from pg_catalog.jsonb_array_elements(p_value) with ordinality as e (value, n)
          order by e.n
        loop
          v_error := jobforge_private.schema_error(p_schema -> 'items', v_child.value, v_child.path);
          if v_error is not null then
            return v_error;
          end if;
        end loop;
      end if;
    when 'object' then
      select r.name into v_name
      from pg_catalog.jsonb_array_elements_text(coalesce(p_schema -> 'required', '[]')) as r (name)
      where coalesce(p_value -> r.name, 'null') = 'null'
      order by r.name collate "C"
      limit 1;
      if v_name is not null then
        return array[jobforge_private.json_path(p_path, v_name), 'is required'];
      end if;
      if p_schema -> 'additionalProperties' = 'false' then
        select k.key into v_name
        from pg_catalog.jsonb_each(p_value) as k
        where k.value <> 'null' and not coalesce(p_schema -> 'properties', '{}') ? k.key
        order by k.key collate "C"
        limit 1;
        if v_name is not null then
          return array[jobforge_private.json_path(p_path, v_name), 'is not a known input'];
        end if;
      end if;
      for v_child in
        select jobforge_private.json_path(p_path, p.key) as path, p.value as schema, p_value -> p.key as value
        from pg_catalog.jsonb_each(coalesce(p_schema -> 'properties', '{}')) as p
        where coalesce(p_value -> p.key, 'null') <> 'null'
        order by p.key collate "C"
      loop
        v_error := jobforge_private.schema_error(v_child.schema, v_child.value, v_child.path);
        if v_error is not null then
          return v_error;
        end if;
      end loop;
    else
      null;
  end case;
  return null;
end
$$;

-- Whether a JSON value is a ciphertext of the SDK's field encryption (encryption.py):
-- the string "jfenc:v1:<key id>:<base64url of nonce, ciphertext and tag>". Only the shape
-- is checked: the database holds no key.
create function jobforge_private.is_ciphertext(p_value jsonb)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  return pg_catalog.jsonb_typeof(p_value) = 'string'
    and (p_value #>> '{}') ~ '^jfenc:v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{39,}$';
end
$$;

-- Check job inputs against the input_schema of a template: the inputs must be a JSON
-- object that satisfies the schema. Returns {name, reason} (the name is a dotted path
-- inside the inputs) or null.
--
-- p_encrypt_fields (the template's encrypt_fields) are top-level inputs stored encrypted:
-- each one given must be a ciphertext, so plaintext cannot be stored there even by a
-- caller bypassing the SDK, and its schema is not checked (it describes the plaintext,
-- which the SDK checked before encrypting it); "required" still applies.
create function jobforge_private.inputs_error(
  p_schema jsonb,
  p_inputs jsonb,
  p_encrypt_fields text[] default '{}'
)
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_name text;
begin
  if pg_catalog.jsonb_typeof(p_inputs) is distinct from 'object' then
    return array['', 'must be a JSON object'];
  end if;
  if coalesce(pg_catalog.cardinality(p_encrypt_fields), 0) > 0 then
    select f.name into v_name
    from pg_catalog.unnest(p_encrypt_fields) as f (name)
    where coalesce(p_inputs -> f.name, 'null') <> 'null'
      and not jobforge_private.is_ciphertext(p_inputs -> f.name)
    order by f.name collate "C"
    limit 1;
    if v_name is not null then
      return array[v_name, 'must be encrypted (a jfenc:v1 ciphertext): the template stores it encrypted'];
    end if;
    p_schema := p_schema || pg_catalog.jsonb_build_object(
      'properties',
      coalesce(p_schema -> 'properties', '{}') || coalesce((
        select pg_catalog.jsonb_object_agg(f.name, '{}'::jsonb)
        from pg_catalog.unnest(p_encrypt_fields) as f (name)
        where coalesce(p_schema -> 'properties', '{}') ? f.name
      ), '{}')
    );
  end if;
  return jobforge_private.schema_error(p_schema, p_inputs, '');
end
$$;

create table public.jobforge_job_templates (
  template_key text primary key
    check (template_key ~ '^autopilot\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$'),
  name text not null,
  description text,
  category text not null check (category = any (jobforge_private.template_categories())),
  version text not null default '1.0.0',
  input_schema jsonb not null default '{"type": "object", "properties": {}}'
    constraint jobforge_job_templates_input_schema_checkable
    check (
      jsonb_typeof(input_schema) = 'object'
      and jobforge_private.schema_keyword_error(input_schema, 'input_schema') is null
    ),
  output_schema jsonb not null default '{"type": "object", "properties": {}}'
    check (jsonb_typeof(output_schema) = 'object'),
  required_scopes text[] not null default '{}',
  required_connectors text[] not null default '{}',
  estimated_cost_tier text check (estimated_cost_tier in ('low', 'medium', 'high')),
  default_max_attempts integer not null default 3 check (default_max_attempts between 1 and 100),
  default_timeout_ms integer not null default 300000 check (default_timeout_ms > 0),
  -- The priority of the jobs the template makes (jobforge_jobs.priority).
  default_priority smallint not null default 0,
  -- Input fields the SDK stores encrypted: the database only ever sees their ciphertext.
  encrypt_fields text[] not null default '{}',
  is_action_job boolean not null default false,
  enabled boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.jobforge_job_templates is
  'JobForge autopilot job templates (global). Enabled only through jobforge_set_template_enabled.';
alter table public.jobforge_job_templates enable row level security;

create policy jobforge_job_templates_select on public.jobforge_job_templates
  for select to authenticated
  using (true);

-- Supabase's default privileges grant everything on new tables to the API roles: take
-- it back; writes go through the RPCs only.
revoke all on table
  public.jobforge_job_templates
  from public, anon, authenticated, service_role;

grant select on table
  public.jobforge_job_templates
  to authenticated, service_role;


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
  if p_category is not null and p_category <> all (jobforge_private.template_categories()) then
    perform jobforge_private.invalid(
      'category',
      'must be one of ' || pg_catalog.array_to_string(jobforge_private.template_categories(), ', ')
    );
  end if;

  select coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t) order by t.template_key), '[]'::jsonb)
  into v_rows
  from public.jobforge_job_templates t
  where (p_category is null or t.category = p_category)
    and (p_enabled is null or t.enabled = p_enabled);
  return v_rows;
end
$$;

comment on function public.jobforge_list_templates is
  'Job templates ordered by key, optionally by category and enabled. authenticated and service_role.';

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

comment on function public.jobforge_get_template is
  'One job template by key (PT404 when unknown). authenticated and service_role.';

-- p_encrypt_fields, when given, replaces the template's encrypt_fields: top-level inputs
-- the SDK stores encrypted (jobforge_private.inputs_error). Each must be a property of
-- the input schema; at most 32, no repeats. Jobs requested before keep their inputs as
-- they were stored.
create function public.jobforge_set_template_enabled(
  p_template_key text,
  p_enabled boolean,
  p_actor_id text default null,
  p_encrypt_fields text[] default null,
  p_default_priority integer default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_template public.jobforge_job_templates;
  v_previous boolean;
  v_previous_fields text[];
  v_previous_priority smallint;
  v_name text;
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

  if jobforge_private.priority_error(p_default_priority) is not null then
    perform jobforge_private.invalid(
      'default_priority', jobforge_private.priority_error(p_default_priority)
    );
  end if;
  if pg_catalog.cardinality(p_encrypt_fields) > 32 then
    perform jobforge_private.invalid('encrypt_fields', 'at most 32 fields');
  end if;
  if pg_catalog.array_position(p_encrypt_fields, null) is not null then
    perform jobforge_private.invalid('encrypt_fields', 'must not hold null');
  end if;
  if pg_catalog.cardinality(p_encrypt_fields)
    <> (select pg_catalog.count(distinct f.name) from pg_catalog.unnest(p_encrypt_fields) as f (name)) then
    perform jobforge_private.invalid('encrypt_fields', 'a field is named twice');
  end if;

  select t.enabled, t.encrypt_fields, t.default_priority
  into v_previous, v_previous_fields, v_previous_priority
  from public.jobforge_job_templates t
  where t.template_key = p_template_key
  for update;
  if not found then
    raise exception using
      errcode = 'PT404', message = pg_catalog.format('template %s not found', p_template_key);
  end if;

  if p_encrypt_fields is not null then
    select f.name into v_name
    from pg_catalog.unnest(p_encrypt_fields) as f (name)
    where not coalesce(
      (select t.input_schema -> 'properties' from public.jobforge_job_templates t
       where t.template_key = p_template_key),
      '{}'
    ) ? f.name
    order by f.name collate "C"
    limit 1;
    if v_name is not null then
      perform jobforge_private.invalid(
        'encrypt_fields',
        pg_catalog.format('%s is not an input of template %s', pg_catalog.left(v_name, 255), p_template_key)
      );
    end if;
  end if;

  update public.jobforge_job_templates t
  set enabled = p_enabled,
    encrypt_fields = coalesce(p_encrypt_fields, t.encrypt_fields),
    default_priority = coalesce(p_default_priority, t.default_priority),
    updated_at = now()
  where t.template_key = p_template_key
  returning t.* into v_template;

  perform jobforge_private.audit(
    null, null, 'template_update', p_actor_id, null, 'template', p_template_key, 'success', null,
    pg_catalog.jsonb_build_object('enabled', p_enabled, 'previous_enabled', v_previous)
      || case when p_encrypt_fields is null then '{}'::jsonb
        else pg_catalog.jsonb_build_object(
          'encrypt_fields', pg_catalog.to_jsonb(p_encrypt_fields),
          'previous_encrypt_fields', pg_catalog.to_jsonb(v_previous_fields)
        ) end
      || case when p_default_priority is null then '{}'::jsonb
        else pg_catalog.jsonb_build_object(
          'default_priority', p_default_priority,
          'previous_default_priority', v_previous_priority
        ) end
  );
  return pg_catalog.to_jsonb(v_template);
end
$$;

comment on function public.jobforge_set_template_enabled is
  'Enable or disable a job template (global), and optionally set the inputs it stores encrypted (p_encrypt_fields) and the priority of its jobs (p_default_priority). service_role only.';

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
  -- PT409 naming a required connector without an enabled config (47_connectors.sql).
  perform jobforge_private.assert_connectors(p_tenant_id, p_template_key, v_template.required_connectors);

  p_inputs := coalesce(nullif(p_inputs, 'null'::jsonb), '{}'::jsonb);
  if pg_catalog.jsonb_typeof(p_inputs) <> 'object' then
    perform jobforge_private.invalid('inputs', 'must be a JSON object');
  end if;
  if pg_catalog.octet_length(p_inputs::text) > 262144 then
    perform jobforge_private.invalid('inputs', 'must be at most 256 KiB');
  end if;
  if jobforge_private.json_depth_error(p_inputs) is not null then
    perform jobforge_private.invalid('inputs', jobforge_private.json_depth_error(p_inputs));
  end if;
  v_error := jobforge_private.inputs_error(
    v_template.input_schema, p_inputs, v_template.encrypt_fields
  );
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
    -- Input names and a digest only: values may be sensitive, inputs carry no redaction
    -- hints, and the trail keeps no content (10_audit.sql).
    'input_keys', jobforge_private.audit_key_names(p_inputs),
    'inputs_sha256', jobforge_private.audit_digest(p_inputs),
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
        errcode = 'PT403',
        message = 'policy token refused: '
          || jobforge_private.public_token_reason(v_check ->> 'reason');
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

  -- The template's settings: attempts, priority, and the timeout of each attempt.
  v_job := pg_catalog.to_jsonb(jobforge_private.enqueue_job(
    p_tenant_id, p_template_key, v_payload, p_idempotency_key, null, v_template.default_max_attempts,
    v_template.default_priority, v_template.default_timeout_ms
  ));

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

comment on function public.jobforge_request_job is
  'Request a job from an enabled template: inputs checked against its input_schema, policy token verified and consumed for action templates, dry run supported, one job_request audit row. authenticated (own tenants) and service_role.';
