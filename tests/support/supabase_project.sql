-- A database shaped like a hosted Supabase project, as far as the JobForge migrations
-- can tell. Test support only; never shipped.
--
-- How to use it:
--   1. As the cluster's superuser, create an empty database and run this file in it
--      (psql -v ON_ERROR_STOP=1 -f tests/support/supabase_project.sql, or psycopg:
--      the file has no psql meta-commands). tests/support/supabase_project.py does both:
--      make_supabase_project(admin_url, dbname) returns a URL that logs in as the owner.
--   2. Apply the migrations connected AS jobforge_project_owner, never as the superuser:
--      that role plays Supabase's `postgres` (hosted, `postgres` is no superuser), so a
--      migration that needs the superuser fails here exactly as it fails on Supabase,
--      e.g. `create function ... set jobforge.x = 'on'` on PostgreSQL 15: "permission
--      denied to set parameter".
--
-- The cluster's superuser plays supabase_admin. Hosted Supabase calls the owner role
-- `postgres`; here `postgres` is the superuser, so the owner has a fixed name of its
-- own: jobforge_project_owner (LOGIN, no password: the test clusters use trust auth).
--
-- What it mirrors (supabase/postgres migrations/db: 00000000000000-initial-schema,
-- 10000000000000_demote-postgres, 20230201083204_grant_auth_roles_to_postgres,
-- 20240606060239_grant_predefined_roles_to_postgres, 20250421084701_revoke_admin_roles_
-- from_postgres; supabase/auth 20240624145325_recreate_auth_functions):
--   * roles anon, authenticated (NOLOGIN), service_role (NOLOGIN BYPASSRLS), authenticator
--     (NOINHERIT, member of the three);
--   * the owner: NOSUPERUSER CREATEDB CREATEROLE LOGIN REPLICATION BYPASSRLS, member of
--     anon, authenticated, service_role, pg_read_all_data and pg_signal_backend; it owns the
--     database, hence (PostgreSQL 15+) schema public through pg_database_owner; its
--     search_path is "$user", public, extensions;
--   * Supabase's default privileges: everything the owner (or the superuser) creates in
--     public is granted ALL to anon, authenticated and service_role;
--   * schema auth owned by the superuser: USAGE for the API roles and the owner, no CREATE
--     for the owner; auth.uid(), auth.role(), auth.email(), auth.jwt() exactly as
--     Supabase Auth defines them (auth.jwt() is NULL, not '{}', without claims);
--   * schema extensions with pgcrypto and uuid-ossp, ALL for the owner, USAGE for the API
--     roles.
-- Not mirrored: auth.users and the other tables of Supabase Auth, storage, realtime,
-- graphql, vault, pgsodium, the API roles' statement timeouts and authenticator's LOGIN
-- (created NOLOGIN, as supabase/bootstrap does: no passwordless login role on a shared
-- cluster).
--
-- Roles are cluster-wide and several databases may run this file at the same moment:
-- each role and each membership is created only when missing, and a concurrent creator
-- winning the race (duplicate_object / unique_violation) is not an error. Attributes of
-- roles that exist already are left alone, except the owner's, which are set when they
-- differ. Everything else is per database. Running the file twice is harmless.

do $roles$
declare
  r record;
begin
  for r in
    select *
    from (
      values
        ('anon', 'create role anon nologin'),
        ('authenticated', 'create role authenticated nologin'),
        ('service_role', 'create role service_role nologin bypassrls'),
        ('authenticator', 'create role authenticator nologin noinherit'),
        ('jobforge_project_owner',
         'create role jobforge_project_owner login nosuperuser createdb createrole'
         ' replication bypassrls')
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

  -- The owner's attributes are what the tests rely on: set them when they differ.
  if exists (
    select 1
    from pg_catalog.pg_roles
    where rolname = 'jobforge_project_owner'
      and (rolsuper or not rolcreatedb or not rolcreaterole or not rolcanlogin
           or not rolreplication or not rolbypassrls or not rolinherit)
  ) then
    alter role jobforge_project_owner
      nosuperuser createdb createrole login replication bypassrls inherit;
  end if;
end
$roles$;

do $members$
declare
  m record;
begin
  for m in
    select *
    from (
      values
        ('anon', 'authenticator'),
        ('authenticated', 'authenticator'),
        ('service_role', 'authenticator'),
        ('anon', 'jobforge_project_owner'),
        ('authenticated', 'jobforge_project_owner'),
        ('service_role', 'jobforge_project_owner'),
        ('pg_read_all_data', 'jobforge_project_owner'),
        ('pg_signal_backend', 'jobforge_project_owner')
    ) as wanted (granted, member)
  loop
    if not exists (
      select 1
      from pg_catalog.pg_auth_members am
      where am.roleid = m.granted::regrole and am.member = m.member::regrole
    ) then
      begin
        execute format('grant %I to %I', m.granted, m.member);
      exception
        when duplicate_object or unique_violation then
          null; -- granted by another database's run a moment ago
      end;
    end if;
  end loop;
end
$members$;

-- Per database from here on. The owner owns the database, as `postgres` owns the
-- database `postgres` on Supabase; on PostgreSQL 15+ schema public belongs to
-- pg_database_owner, so the owner has CREATE and USAGE on it as there.
do $database$
begin
  execute format('alter database %I owner to jobforge_project_owner', current_database());
  execute format(
    'alter role jobforge_project_owner in database %I set search_path = "$user", public, extensions',
    current_database()
  );
end
$database$;

-- Before PostgreSQL 15 (or from an old template) public may belong to the superuser:
-- then give the owner the CREATE it has on Supabase.
do $public$
begin
  if not pg_catalog.has_schema_privilege('jobforge_project_owner', 'public', 'CREATE') then
    grant create on schema public to jobforge_project_owner;
  end if;
end
$public$;
grant usage on schema public to jobforge_project_owner, anon, authenticated, service_role;

-- Supabase's default privileges: the owner's (and supabase_admin's, here the superuser's)
-- new tables, functions and sequences in public are the API roles' to use.
alter default privileges for role jobforge_project_owner in schema public
  grant all on tables to anon, authenticated, service_role;
alter default privileges for role jobforge_project_owner in schema public
  grant all on functions to anon, authenticated, service_role;
alter default privileges for role jobforge_project_owner in schema public
  grant all on sequences to anon, authenticated, service_role;

alter default privileges in schema public
  grant all on tables to jobforge_project_owner, anon, authenticated, service_role;
alter default privileges in schema public
  grant all on functions to jobforge_project_owner, anon, authenticated, service_role;
alter default privileges in schema public
  grant all on sequences to jobforge_project_owner, anon, authenticated, service_role;

-- Extensions live in their own schema.
create schema if not exists extensions;
-- Where the server ships them (the embedded PostgreSQL has neither): the migrations must
-- not depend on them either way.
do $extensions$
declare
  v_name text;
begin
  foreach v_name in array array['uuid-ossp', 'pgcrypto'] loop
    if exists (select 1 from pg_catalog.pg_available_extensions where name = v_name) then
      execute format('create extension if not exists %I with schema extensions', v_name);
    end if;
  end loop;
end
$extensions$;
grant all on schema extensions to jobforge_project_owner;
grant usage on schema extensions to anon, authenticated, service_role;
grant all on all tables in schema extensions to jobforge_project_owner;
grant all on all sequences in schema extensions to jobforge_project_owner;
grant all on all routines in schema extensions to jobforge_project_owner;

-- Supabase Auth's schema: the owner may use it, not create in it.
create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role, jobforge_project_owner;
revoke create on schema auth from jobforge_project_owner;

-- The helpers as Supabase Auth defines them (the GUCs are PostgREST's: the whole
-- verified JWT payload in request.jwt.claims, the older one-claim-per-GUC form first).
create or replace function auth.uid()
  returns uuid
  set search_path to ''
as $func$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$func$ language sql stable;

create or replace function auth.role()
  returns text
  set search_path to ''
as $func$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.role', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
$func$ language sql stable;

create or replace function auth.email()
  returns text
  set search_path to ''
as $func$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.email', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
    )::text
$func$ language sql stable;

create or replace function auth.jwt()
  returns jsonb
  set search_path to ''
as $func$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim', true), ''),
      nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
$func$ language sql stable;

comment on function auth.uid() is 'Deprecated. Use auth.jwt() -> ''sub'' instead.';
comment on function auth.role() is 'Deprecated. Use auth.jwt() -> ''role'' instead.';
comment on function auth.email() is 'Deprecated. Use auth.jwt() -> ''email'' instead.';
