-- Supabase compatibility bootstrap for vanilla PostgreSQL.
--
-- Creates, only where missing, the roles and the auth.* helpers that a Supabase
-- database already has and that the JobForge migrations rely on. Every statement is
-- guarded, so on a real Supabase database this file changes nothing, and running it
-- twice is harmless. Roles are cluster-wide: two databases of one server may run this
-- at the same moment, hence the duplicate_object / unique_violation handlers.

do $bootstrap$
declare
  r record;
begin
  for r in
    select *
    from (
      values
        ('anon', 'create role anon nologin noinherit'),
        ('authenticated', 'create role authenticated nologin noinherit'),
        ('service_role', 'create role service_role nologin noinherit bypassrls'),
        -- PostgREST logs in as authenticator and switches to the role named by the JWT.
        -- Created NOLOGIN: a login role without a password would be an open door; an
        -- operator who runs PostgREST gives it LOGIN and a password.
        ('authenticator', 'create role authenticator nologin noinherit')
    ) as wanted (name, ddl)
  loop
    if not exists (select 1 from pg_catalog.pg_roles where rolname = r.name) then
      begin
        execute r.ddl;
      exception
        when duplicate_object or unique_violation then
          null; -- another database of this cluster created it a moment ago
      end;
    end if;
  end loop;
end
$bootstrap$;

grant anon, authenticated, service_role to authenticator;

create schema if not exists auth;

grant usage on schema auth to anon, authenticated, service_role;

-- The claims of the current request, as PostgREST sets them: a transaction-local GUC
-- holding the verified JWT payload. Missing or empty means "no claims", never "all".
-- Each helper is created only when missing: Supabase's own definitions are left alone.
do $helpers$
begin
  if pg_catalog.to_regprocedure('auth.jwt()') is null then
    create function auth.jwt()
    returns jsonb
    language sql
    stable
    as $fn$
      select coalesce(
        nullif(pg_catalog.current_setting('request.jwt.claims', true), ''),
        '{}'
      )::jsonb
    $fn$;
  end if;

  if pg_catalog.to_regprocedure('auth.uid()') is null then
    create function auth.uid()
    returns uuid
    language sql
    stable
    as $fn$
      select nullif(auth.jwt() ->> 'sub', '')::uuid
    $fn$;
  end if;

  if pg_catalog.to_regprocedure('auth.role()') is null then
    create function auth.role()
    returns text
    language sql
    stable
    as $fn$
      select nullif(auth.jwt() ->> 'role', '')
    $fn$;
  end if;
end
$helpers$;

grant execute on function auth.jwt(), auth.uid(), auth.role()
  to anon, authenticated, service_role;
