-- 0160: how long the functions keep what they store, and the sweeps that enforce it
-- (contract section 7a).
--
-- data_retention_settings: ONE row, the retention of every table the migrations
--   create, changeable without a deploy:
--       UPDATE public.data_retention_settings SET session_metrics = interval '30 days';
--   Personal content goes first, bookkeeping later:
--     delivery_content   30 days  a processed or ignored delivery's payload and raw_body
--                                 (ClassConnect's transcripts and word scores) are
--                                 emptied (payload '{}', raw_body NULL); the row stays
--     delivery_rows      35 days  then the row (id, type, status, times) goes. Standard
--                                 Webhooks senders retry for about a day (Svix: ~28 h),
--                                 so an id is still recognised long after any retry
--     failed_deliveries  90 days  a failed delivery waits that long for a replay (a
--                                 replayed one is processed, and follows the two above)
--     demo_interactions, demo_sessions, token_sessions, session_metrics,
--     session_errors     90 days  the dashboard reads at most 30 days (MAX_WINDOW_HOURS);
--                                 a refresh needs a token session for 60 minutes
--     search_cache       2 days   answers are fresh for 10 minutes and served stale for
--                                 at most 24 hours
--     rate_limit_windows 2 minutes a window is stale once the next minute has begun
--     health_probes      1 hour   a probe's answer is stale after 30 seconds
--     rollout_audit      730 days who changed the rollout (admins' ids, no student data)
--     erasure_audit      1095 days who erased which user id and when (0161)
--     batch_size         1000     rows one sweep changes at most per table
--   Not swept: voice_feature_flags and demo_activities (configuration and demo material,
--   no personal data) and the platform's own tables: practice_sessions,
--   practice_attempts, manual_assessments, voice_sessions, voice_interactions.
--
-- public.retention_sweep(p_batch): one bounded pass over every table: at most
--   `batch_size` rows per table (row locks taken with SKIP LOCKED, so a sweep never
--   waits on a request and two sweeps never wait on each other); answers the counts as
--   jsonb. pg_cron runs it every minute where the database has pg_cron (0162).
-- public.retention_sweep_if_due(): what the functions call after a response when there
--   is no pg_cron job: sweeps at most once a minute whoever calls (the gate is the one
--   row of retention_sweep_state, claimed with SKIP LOCKED), answers NULL when it did
--   not sweep.
--
-- The demo tables are reached with dynamic SQL, so the sweeps keep working after the
-- demo system is removed (sql/removal/remove_demo_system.sql). Only the owner (the
-- functions' db_url, pg_cron's jobs) may execute these functions.
--
-- Idempotent: the settings row is only inserted when absent (an operator's changes are
-- kept); the functions are replaced.

BEGIN;

CREATE TABLE IF NOT EXISTS public.data_retention_settings (
    singleton          boolean     PRIMARY KEY DEFAULT true,
    delivery_content   interval    NOT NULL DEFAULT interval '30 days',
    delivery_rows      interval    NOT NULL DEFAULT interval '35 days',
    failed_deliveries  interval    NOT NULL DEFAULT interval '90 days',
    demo_interactions  interval    NOT NULL DEFAULT interval '90 days',
    demo_sessions      interval    NOT NULL DEFAULT interval '90 days',
    token_sessions     interval    NOT NULL DEFAULT interval '90 days',
    session_metrics    interval    NOT NULL DEFAULT interval '90 days',
    session_errors     interval    NOT NULL DEFAULT interval '90 days',
    search_cache       interval    NOT NULL DEFAULT interval '2 days',
    rate_limit_windows interval    NOT NULL DEFAULT interval '2 minutes',
    health_probes      interval    NOT NULL DEFAULT interval '1 hour',
    rollout_audit      interval    NOT NULL DEFAULT interval '730 days',
    erasure_audit      interval    NOT NULL DEFAULT interval '1095 days',
    batch_size         integer     NOT NULL DEFAULT 1000,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT data_retention_settings_one_row CHECK (singleton),
    CONSTRAINT data_retention_settings_positive CHECK (
        delivery_content > interval '0' AND delivery_rows > interval '0'
        AND failed_deliveries > interval '0' AND demo_interactions > interval '0'
        AND demo_sessions > interval '0' AND token_sessions > interval '0'
        AND session_metrics > interval '0' AND session_errors > interval '0'
        AND search_cache > interval '0' AND health_probes > interval '0'
        AND rollout_audit > interval '0' AND erasure_audit > interval '0'),
    -- Content goes first: a row is never deleted before its content would be emptied.
    CONSTRAINT data_retention_settings_content_first CHECK (delivery_rows >= delivery_content),
    -- A shorter one would delete the window being counted and reset every limit.
    CONSTRAINT data_retention_settings_rate_limit_windows CHECK (rate_limit_windows >= interval '2 minutes'),
    CONSTRAINT data_retention_settings_batch_size CHECK (batch_size BETWEEN 1 AND 100000)
);

INSERT INTO public.data_retention_settings (singleton) VALUES (true)
ON CONFLICT (singleton) DO NOTHING;

-- The once-a-minute gate of the sweeps the functions run themselves, and what the last
-- sweep did (for operators).
CREATE TABLE IF NOT EXISTS public.retention_sweep_state (
    singleton     boolean     PRIMARY KEY DEFAULT true,
    last_sweep_at timestamptz NOT NULL DEFAULT '-infinity',
    last_result   jsonb,
    CONSTRAINT retention_sweep_state_one_row CHECK (singleton)
);

INSERT INTO public.retention_sweep_state (singleton) VALUES (true)
ON CONFLICT (singleton) DO NOTHING;

ALTER TABLE public.data_retention_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.retention_sweep_state ENABLE ROW LEVEL SECURITY;

-- Deliveries whose content is still there, oldest first (what the content sweep reads).
CREATE INDEX IF NOT EXISTS idx_webhook_events_content_kept
    ON public.webhook_events (received_at)
    WHERE payload <> '{}'::jsonb OR raw_body IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_webhook_events_received_at
    ON public.webhook_events (received_at);

-- Deletes (or, with p_set, updates) at most p_batch rows of p_table matching p_where,
-- skipping rows locked by someone else; answers how many.
CREATE OR REPLACE FUNCTION public.retention_batch(
    p_table text, p_where text, p_batch integer, p_cutoff timestamptz, p_set text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    v_count bigint;
BEGIN
    IF to_regclass('public.' || p_table) IS NULL THEN
        RETURN 0;
    END IF;
    IF p_set IS NULL THEN
        EXECUTE format(
            'DELETE FROM public.%I WHERE ctid = ANY (ARRAY (SELECT ctid FROM public.%I WHERE %s LIMIT $1 FOR UPDATE SKIP LOCKED))',
            p_table, p_table, p_where)
        USING p_batch, p_cutoff;
    ELSE
        EXECUTE format(
            'UPDATE public.%I SET %s WHERE ctid = ANY (ARRAY (SELECT ctid FROM public.%I WHERE %s LIMIT $1 FOR UPDATE SKIP LOCKED))',
            p_table, p_set, p_table, p_where)
        USING p_batch, p_cutoff;
    END IF;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$fn$;

CREATE OR REPLACE FUNCTION public.retention_sweep(p_batch integer DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    s public.data_retention_settings;
    v_batch integer;
    v_now timestamptz := clock_timestamp();
    v_result jsonb := '{}'::jsonb;
BEGIN
    SELECT * INTO s FROM public.data_retention_settings WHERE singleton;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'data_retention_settings has no row: apply 0160 again';
    END IF;
    v_batch := greatest(1, coalesce(p_batch, s.batch_size));

    -- Personal content first.
    v_result := v_result || jsonb_build_object('webhook_events_content_emptied',
        public.retention_batch('webhook_events',
            $w$status IN ('processed', 'ignored') AND received_at < $2
               AND (payload <> '{}'::jsonb OR raw_body IS NOT NULL)$w$,
            v_batch, v_now - s.delivery_content,
            $s$payload = '{}'::jsonb, raw_body = NULL$s$));
    v_result := v_result || jsonb_build_object('demo_interactions',
        public.retention_batch('demo_interactions', 'created_at < $2', v_batch,
                               v_now - s.demo_interactions));
    v_result := v_result || jsonb_build_object('demo_voice_sessions',
        public.retention_batch('demo_voice_sessions', 'started_at < $2', v_batch,
                               v_now - s.demo_sessions));
    v_result := v_result || jsonb_build_object('voice_session_errors',
        public.retention_batch('voice_session_errors', 'created_at < $2', v_batch,
                               v_now - s.session_errors));
    v_result := v_result || jsonb_build_object('voice_session_metrics',
        public.retention_batch('voice_session_metrics', 'created_at < $2', v_batch,
                               v_now - s.session_metrics));
    v_result := v_result || jsonb_build_object('realtime_token_sessions',
        public.retention_batch('realtime_token_sessions', 'created_at < $2', v_batch,
                               v_now - s.token_sessions));
    v_result := v_result || jsonb_build_object('search_cache',
        public.retention_batch('search_cache', 'created_at < $2', v_batch,
                               v_now - s.search_cache));
    -- Then bookkeeping.
    v_result := v_result || jsonb_build_object('webhook_events_failed',
        public.retention_batch('webhook_events', $w$status = 'failed' AND received_at < $2$w$,
                               v_batch, v_now - s.failed_deliveries));
    v_result := v_result || jsonb_build_object('webhook_events',
        public.retention_batch('webhook_events',
            $w$status IN ('processed', 'ignored') AND received_at < $2$w$,
            v_batch, v_now - s.delivery_rows));
    v_result := v_result || jsonb_build_object('rate_limits',
        public.retention_batch('rate_limits', 'window_start < $2', v_batch,
                               v_now - s.rate_limit_windows));
    v_result := v_result || jsonb_build_object('rate_limits_demo',
        public.retention_batch('rate_limits_demo', 'window_start < $2', v_batch,
                               v_now - s.rate_limit_windows));
    v_result := v_result || jsonb_build_object('health_probes',
        public.retention_batch('health_probes', 'started_at < $2', v_batch,
                               v_now - s.health_probes));
    v_result := v_result || jsonb_build_object('voice_rollout_audit',
        public.retention_batch('voice_rollout_audit', 'created_at < $2', v_batch,
                               v_now - s.rollout_audit));
    v_result := v_result || jsonb_build_object('data_erasure_audit',
        public.retention_batch('data_erasure_audit', 'created_at < $2', v_batch,
                               v_now - s.erasure_audit));
    RETURN v_result;
END
$fn$;

-- The sweep of the functions themselves: NULL (nothing done) when pg_cron runs the
-- sweep job, when a sweep started less than a minute ago, or when another caller is
-- claiming the gate right now; else one sweep, recorded in retention_sweep_state.
CREATE OR REPLACE FUNCTION public.retention_sweep_if_due()
RETURNS jsonb
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    v_scheduled boolean := false;
    v_result jsonb;
BEGIN
    IF to_regclass('cron.job') IS NOT NULL THEN
        BEGIN
            EXECUTE $q$SELECT EXISTS (SELECT 1 FROM cron.job
                                       WHERE jobname = 'voice-edge-retention-sweep' AND active)$q$
               INTO v_scheduled;
        EXCEPTION WHEN insufficient_privilege THEN
            v_scheduled := false;
        END;
    END IF;
    IF v_scheduled THEN
        RETURN NULL;
    END IF;
    -- Most calls end here, reading one row without a lock.
    IF (SELECT last_sweep_at FROM public.retention_sweep_state WHERE singleton)
       > now() - interval '1 minute' THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM public.retention_sweep_state
      WHERE singleton AND last_sweep_at <= now() - interval '1 minute'
      FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    v_result := public.retention_sweep();
    UPDATE public.retention_sweep_state
       SET last_sweep_at = now(), last_result = v_result
     WHERE singleton;
    RETURN v_result;
END
$fn$;

-- Supabase exposes functions of `public` through its REST API: nobody but the owner
-- may run these.
DO $$
DECLARE
    fn text;
    api_role text;
BEGIN
    FOREACH fn IN ARRAY ARRAY[
        'public.retention_batch(text, text, integer, timestamptz, text)',
        'public.retention_sweep(integer)',
        'public.retention_sweep_if_due()'] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
        FOREACH api_role IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = api_role) THEN
                EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', fn, api_role);
            END IF;
        END LOOP;
    END LOOP;
END
$$;

COMMIT;
