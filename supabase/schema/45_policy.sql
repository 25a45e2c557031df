-- 45_policy: signed policy tokens that action jobs must carry. HS256 is computed in SQL
-- on top of sha256() (no pgcrypto); keys live in a private table no API role can read;
-- a token's jti is accepted once.

-- base64url without padding -> bytes. The caller checks the alphabet first; a length
-- that cannot be base64 raises (the caller catches it).
create function jobforge_private.base64url_decode(p_text text)
returns bytea
language plpgsql
immutable
set search_path = ''
as $$
begin
  return pg_catalog.decode(
    pg_catalog.rpad(
      pg_catalog.translate(p_text, '-_', '+/'),
      (pg_catalog.char_length(p_text) + 3) / 4 * 4,
      '='
    ),
    'base64'
  );
end
$$;

-- bytes -> base64url without padding. Used to refuse non-canonical encodings (the
-- decoder ignores the unused low bits of the last character, so without this check two
-- different strings would carry the same signature).
create function jobforge_private.base64url_encode(p_bytes bytea)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return pg_catalog.rtrim(
    pg_catalog.translate(pg_catalog.encode(p_bytes, 'base64'), E'+/\n', '-_'),
    '='
  );
end
$$;

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
alter table jobforge_private.policy_keys enable row level security;
alter table jobforge_private.policy_token_uses enable row level security;

-- Supabase's default privileges grant everything on new tables to the API roles: take
-- it back; writes go through the RPCs only.
revoke all on table
  jobforge_private.policy_keys,
  jobforge_private.policy_token_uses
  from public, anon, authenticated, service_role;


-- Verify a policy token (docs/architecture.md, "Policy tokens") for a tenant and a template. Never
-- raises: returns {"ok": bool, "reason": text or null, "kid", "jti", "scopes", "sub",
-- "exp"} (the claims as far as they could be read). Does not consume the jti.
--
-- Compact JWS, base64url without padding; header alg exactly HS256 and a kid that is a
-- current policy key; signature HMAC-SHA256 over "header.payload" as sent, with the key
-- UTF-8 bytes of the secret; claims iss "jobforge", exp in the future, nbf and iat not
-- more than 60 s in the future, tid the tenant, aud the template key (or an array with
-- it), scp an array holding every required scope, jti present (at most 128 characters)
-- and never used. The SDK's validate_policy_token (policy.py) takes the same steps in the
-- same order, and a test feeds one table of tokens to both.

-- What an API caller is told of a refusal: an unknown, retired or forged key is one
-- reason, "invalid token", so that a prober cannot tell which kids exist or were retired;
-- the policy_check audit row keeps the detailed reason.
create function jobforge_private.public_token_reason(p_reason text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_reason in ('unknown key', 'retired key', 'bad signature') then 'invalid token'
    else p_reason
  end;
end
$$;

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

    -- Compared as digests of the two values: bytea equality stops at the first differing
    -- byte, which would tell a prober how much of a forged signature is right; the
    -- digests of two values share no prefix a prober could steer.
    if pg_catalog.sha256(jobforge_private.hmac_sha256(
      pg_catalog.convert_to(v_key.secret, 'UTF8'),
      pg_catalog.convert_to(v_parts[1] || '.' || v_parts[2], 'UTF8')
    )) <> pg_catalog.sha256(v_signature) then
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
      or pg_catalog.char_length(v_claims ->> 'jti') > 128 then
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

comment on function public.jobforge_add_policy_key is
  'Add an HS256 policy-token key (secret of at least 32 characters; never returned). service_role only.';

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

comment on function public.jobforge_retire_policy_key is
  'Retire a policy-token key: tokens signed with it are refused from now on. service_role only.';

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

  -- A user may verify as often as they like, but their verifications write at most 60
  -- audit rows per tenant and minute: beyond that the verdict is answered without a row
  -- (audit_id null), so no caller can grow the audit trail without bound. The service
  -- role (a trusted backend) is always audited. The request itself (job_request) is
  -- audited whatever this says.
  if not jobforge_private.caller_is_trusted() and (
    select pg_catalog.count(*)
    from (
      select 1
      from public.jobforge_audit_logs a
      where a.tenant_id = p_tenant_id
        and a.created_at > now() - interval '1 minute'
        and a.action = 'policy_check'
      limit 60
    ) as recent
  ) >= 60 then
    return pg_catalog.jsonb_build_object(
      'allowed', (v_check ->> 'ok')::boolean,
      'reason', jobforge_private.public_token_reason(v_check ->> 'reason'),
      'audit_id', null,
      'jti', v_check -> 'jti'
    );
  end if;

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
    'reason', jobforge_private.public_token_reason(v_check ->> 'reason'),
    'audit_id', v_audit_id,
    'jti', v_check -> 'jti'
  );
end
$$;

comment on function public.jobforge_verify_policy_token is
  'Check a policy token for a tenant and template without consuming it; never raises for a bad token; writes a policy_check audit row (for authenticated callers at most 60 per tenant and minute). authenticated (own tenants) and service_role.';
