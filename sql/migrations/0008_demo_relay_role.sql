-- 0008: demo_relay, the database role of the realtime-voice-demo-relay function.
--
-- The isolation spec wants the demo system unable to reach production data. The relay
-- therefore connects with its own role (the `demo_db_url` variable), which can use the
-- three demo tables and nothing else: no manual_assessments, voice_sessions,
-- voice_interactions, practice, rollout or rate-limit table. (It counts its requests
-- through one function that 0132 creates and grants it; it never gets rate_limits.)
--
-- This file grants only what the finished migrations leave the role: a run stopped
-- right after it leaves demo_relay with no more than its end state. Earlier versions
-- of this file granted it SELECT, INSERT, UPDATE, DELETE on rate_limits with a
-- USING (true) policy; re-running this version on such a database takes both back.
--
-- It is created NOLOGIN. An operator gives it a password once per environment:
--     ALTER ROLE demo_relay WITH LOGIN PASSWORD '…';
-- and puts `postgres://demo_relay:…@host:port/db` in `demo_db_url` (the local run and
-- the tests do this themselves). Re-running this file never takes the login away.
--
-- Row level security is on for the three tables, and demo_relay is neither their owner
-- nor BYPASSRLS, so it gets policies of its own (TO demo_relay) rather than BYPASSRLS:
--   * only a superuser may grant BYPASSRLS, and Supabase's `postgres` role is not one;
--   * BYPASSRLS would also cover any table the role were ever granted by mistake, while
--     a policy is scoped to one table and shows up in pg_policies beside the frontend's;
--   * the relay serves every demo user through this one role, so its policies let it
--     see all demo sessions; the function itself checks that a session belongs to the
--     caller before touching it. Activities are limited to published ones, so the relay
--     can never serve a draft.
--
-- Idempotent: re-running it changes nothing.

BEGIN;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_relay') THEN
        CREATE ROLE demo_relay NOLOGIN NOINHERIT;
    END IF;
END
$$;

-- Nothing but what is granted below: take back anything granted to it on other tables
-- (rate_limits included, which an earlier version of this file granted).
DO $$
DECLARE
    other_table regclass;
BEGIN
    FOR other_table IN
        SELECT c.oid::regclass
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace
          AND c.relname NOT IN ('demo_activities', 'demo_voice_sessions', 'demo_interactions')
          AND EXISTS (
              SELECT 1 FROM aclexplode(c.relacl) acl
              WHERE acl.grantee = (SELECT oid FROM pg_roles WHERE rolname = 'demo_relay')
          )
    LOOP
        EXECUTE format('REVOKE ALL ON %s FROM demo_relay', other_table);
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public TO demo_relay;
GRANT SELECT ON public.demo_activities TO demo_relay;
GRANT SELECT, INSERT, UPDATE ON public.demo_voice_sessions TO demo_relay;
GRANT SELECT, INSERT ON public.demo_interactions TO demo_relay;

DROP POLICY IF EXISTS demo_relay_read_published ON public.demo_activities;
CREATE POLICY demo_relay_read_published ON public.demo_activities
    FOR SELECT TO demo_relay
    USING (is_published);

DROP POLICY IF EXISTS demo_relay_sessions ON public.demo_voice_sessions;
CREATE POLICY demo_relay_sessions ON public.demo_voice_sessions
    FOR ALL TO demo_relay
    USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS demo_relay_interactions ON public.demo_interactions;
CREATE POLICY demo_relay_interactions ON public.demo_interactions
    FOR ALL TO demo_relay
    USING (true) WITH CHECK (true);

-- An earlier version of this file let the role at every counter.
DROP POLICY IF EXISTS demo_relay_rate_limits ON public.rate_limits;

COMMIT;
