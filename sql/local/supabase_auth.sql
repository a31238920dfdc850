-- =====================================================================================
-- LOCAL ONLY — NEVER APPLY THIS FILE TO A SUPABASE PROJECT.
--
-- A stand-in for the parts of Supabase's own schema that the migrations rely on, so that
-- they apply unchanged to a plain PostgreSQL for local runs (scripts/localdb.sh) and tests
-- (tests/testkit). Every Supabase project already has all of this, owned and managed by
-- Supabase; applying this file there would at best do nothing and at worst fight
-- Supabase's own definitions. `make migrate` never applies it.
--
-- What it stands in for:
--   * the roles anon, authenticated and service_role (NOLOGIN, as on Supabase, where
--     PostgREST switches to them with SET ROLE);
--   * schema auth with auth.users (the columns we read) and the functions auth.uid(),
--     auth.role() and auth.jwt(), which read the request's JWT claims from the setting
--     `request.jwt.claims` exactly as Supabase's do;
--   * the default privileges Supabase gives those roles on schema public (row level
--     security, not grants, is what keeps rows private there);
--   * the publication supabase_realtime, which Supabase Realtime streams changes from.
--
-- Idempotent: applying it twice changes nothing.
-- =====================================================================================

BEGIN;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE IF NOT EXISTS auth.users (
    id                 uuid        PRIMARY KEY,
    email              text,
    raw_app_meta_data  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    raw_user_meta_data jsonb       NOT NULL DEFAULT '{}'::jsonb,
    is_anonymous       boolean     NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- The claims of the request's JWT, as PostgREST sets them (`request.jwt.claims`), with the
-- older per-claim setting honoured first, as Supabase's own functions do.
CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
$$;

CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$$;

CREATE OR REPLACE FUNCTION auth.role() RETURNS text
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(
        nullif(current_setting('request.jwt.claim.role', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
$$;

GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION auth.jwt(), auth.uid(), auth.role() TO anon, authenticated, service_role;

GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;

-- Supabase creates this publication empty; tables join it to stream their changes.
-- PostgreSQL warns that wal_level is too low to publish, which is harmless for local runs
-- (they have no Realtime server), so the warning is silenced for the rest of this
-- transaction, of which this is the last statement.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime') THEN
        PERFORM set_config('client_min_messages', 'error', true);
        CREATE PUBLICATION supabase_realtime;
    END IF;
END
$$;

COMMIT;
