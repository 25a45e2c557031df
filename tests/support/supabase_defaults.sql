-- What a Supabase database grants by default and the vanilla bootstrap deliberately does
-- not: EXECUTE on every new function and ALL on every new table and sequence in public
-- for the API roles. The test template applies it before the migrations, so every
-- "revoke ... from anon/authenticated" in them is exercised exactly as on Supabase, and a
-- forgotten one makes the privilege tests fail.
alter default privileges in schema public
  grant execute on functions to anon, authenticated, service_role;
alter default privileges in schema public
  grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public
  grant all on sequences to anon, authenticated, service_role;
