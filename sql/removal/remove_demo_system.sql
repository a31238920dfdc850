-- Removes the demo system (isolation spec, "Easy Removal"): its three tables with
-- everything in them, the demo relay's counting function, its rate-limit windows, and
-- its role. Production keeps working: no production table, function or grant refers
-- to the demo system (the retention sweeps and the erasure reach the demo tables only
-- when they exist).
--
--   psql "$DB_URL" -v ON_ERROR_STOP=1 -f sql/removal/remove_demo_system.sql
--
-- Afterwards also remove the `realtime-voice-demo-relay` component from spin.toml and
-- its `demo_db_url` variable.
--
-- It leaves a row in public.voice_edge_removed_components, which the migration runner
-- (scripts/migrate.sh, `make migrate`) reads: from then on it skips the demo's own
-- migrations and seed (the files listed in sql/removal/demo_files.txt), so re-applying
-- the migrations on every deploy does not bring the demo back. To ask for it back:
-- `RESTORE_DEMO=1 make migrate DB_URL=…` (which applies them again and deletes the
-- row). Whoever applies sql/migrations by hand with psql after a removal must skip
-- those files too.
--
-- Idempotent: running it again on a database without the demo changes nothing.

BEGIN;

CREATE TABLE IF NOT EXISTS public.voice_edge_removed_components (
    component  text        PRIMARY KEY,
    removed_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.voice_edge_removed_components ENABLE ROW LEVEL SECURITY;

DROP TABLE IF EXISTS public.demo_interactions CASCADE;
DROP TABLE IF EXISTS public.demo_voice_sessions CASCADE;
DROP TABLE IF EXISTS public.demo_activities CASCADE;
DROP FUNCTION IF EXISTS public.demo_rate_limit_hit(text, bigint);
DROP TABLE IF EXISTS public.rate_limits_demo;
DELETE FROM public.rate_limits WHERE bucket_key LIKE 'demo:%';

-- The role is the cluster's, not the database's: it can go only once no database of
-- the cluster grants it anything. Here it loses everything it holds in this database;
-- if another database still names it, it stays (its login untouched, since that
-- database's demo may still use it) and a notice says so.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_relay') THEN
        EXECUTE 'DROP OWNED BY demo_relay';
        BEGIN
            DROP ROLE demo_relay;
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'demo_relay stays (with no privilege in this database): another database of this cluster still grants it something (%)', SQLERRM;
        END;
    END IF;
END
$$;

INSERT INTO public.voice_edge_removed_components (component) VALUES ('demo')
ON CONFLICT (component) DO NOTHING;

COMMIT;
