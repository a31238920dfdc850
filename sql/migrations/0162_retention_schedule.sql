-- 0162: the retention sweep on pg_cron, where the database has it.
--
-- Supabase projects schedule work with pg_cron (Database → Extensions → pg_cron, or
-- `CREATE EXTENSION pg_cron`; it lives in the `postgres` database). When the extension
-- is there, this schedules one named job in this database:
--   voice-edge-retention-sweep   every minute   public.retention_sweep(), its counts kept
--                                               in retention_sweep_state.last_result
-- (one bounded batch per table a minute: with the default batch of 1000, up to
-- 1.44 million rows a day per table). cron.schedule replaces a job of the same name, so
-- re-running this changes nothing. Without pg_cron it only says so (NOTICE) and the
-- functions sweep after their responses instead, at most once a minute
-- (public.retention_sweep_if_due, 0160).
--
-- See the jobs and their runs:
--   SELECT jobid, jobname, schedule, command, active FROM cron.job;
--   SELECT status, return_message, start_time, end_time FROM cron.job_run_details
--    WHERE jobid = (SELECT jobid FROM cron.job WHERE jobname = 'voice-edge-retention-sweep')
--    ORDER BY start_time DESC LIMIT 10;
-- Stop it: SELECT cron.unschedule('voice-edge-retention-sweep');
--
-- Idempotent: re-running it changes nothing.

BEGIN;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        PERFORM cron.schedule('voice-edge-retention-sweep', '* * * * *',
            'UPDATE public.retention_sweep_state SET last_sweep_at = now(), last_result = public.retention_sweep() WHERE singleton');
        RAISE NOTICE 'pg_cron: job voice-edge-retention-sweep scheduled every minute';
    ELSE
        RAISE NOTICE 'pg_cron is not installed in this database: no sweep job scheduled; the functions sweep after their responses, at most once a minute (see README, "Data and its lifecycle")';
    END IF;
END
$$;

COMMIT;
