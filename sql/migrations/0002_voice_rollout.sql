-- 0002: the WebRTC rollout of the migration guide — the feature flag, the session metrics
-- and errors that clients report, and an audit trail of rollout changes.
--
-- voice_feature_flags: `voice_webrtc_migration` starts disabled at 0 %; a user is
--   enrolled when the flag is enabled and bucket(user_id) < rollout_percentage.
-- voice_session_metrics / voice_session_errors: one row per reported session / error,
--   read in time windows per implementation for the dashboard summary (hence the
--   (implementation_type, created_at) and (created_at) indexes).
-- voice_rollout_audit: who changed the flag, from what to what, why, and whether a red
--   flag was overridden.
--
-- Idempotent: re-running it changes nothing (the flag row is only inserted when absent,
-- so a rollout in progress is never reset).

BEGIN;

CREATE TABLE IF NOT EXISTS public.voice_feature_flags (
    flag_name          text        PRIMARY KEY,
    enabled            boolean     NOT NULL DEFAULT false,
    rollout_percentage integer     NOT NULL DEFAULT 0,
    description        text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    CONSTRAINT voice_feature_flags_rollout_percentage_check
        CHECK (rollout_percentage BETWEEN 0 AND 100)
);

INSERT INTO public.voice_feature_flags (flag_name, enabled, rollout_percentage, description)
VALUES (
    'voice_webrtc_migration', false, 0,
    'Student dashboard voice over WebRTC with ephemeral tokens instead of the WebSocket relay'
)
ON CONFLICT (flag_name) DO NOTHING;

CREATE TABLE IF NOT EXISTS public.voice_session_metrics (
    id                    uuid             PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id               uuid             NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    session_id            text,
    implementation_type   text             NOT NULL,
    connection_success    boolean          NOT NULL,
    connection_time_ms    integer,
    avg_latency_ms        double precision,
    p95_latency_ms        double precision,
    p99_latency_ms        double precision,
    audio_chunks_sent     integer,
    audio_chunks_received integer,
    buffer_underruns      integer,
    reconnection_attempts integer,
    duration_ms           integer,
    created_at            timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT voice_session_metrics_implementation_type_check
        CHECK (implementation_type IN ('webrtc', 'websocket')),
    CONSTRAINT voice_session_metrics_non_negative CHECK (
        coalesce(connection_time_ms, 0) >= 0
        AND coalesce(avg_latency_ms, 0) >= 0
        AND coalesce(p95_latency_ms, 0) >= 0
        AND coalesce(p99_latency_ms, 0) >= 0
        AND coalesce(audio_chunks_sent, 0) >= 0
        AND coalesce(audio_chunks_received, 0) >= 0
        AND coalesce(buffer_underruns, 0) >= 0
        AND coalesce(reconnection_attempts, 0) >= 0
        AND coalesce(duration_ms, 0) >= 0
    )
);

CREATE INDEX IF NOT EXISTS idx_voice_session_metrics_created_at
    ON public.voice_session_metrics (created_at);
CREATE INDEX IF NOT EXISTS idx_voice_session_metrics_implementation_created_at
    ON public.voice_session_metrics (implementation_type, created_at);
CREATE INDEX IF NOT EXISTS idx_voice_session_metrics_user_created_at
    ON public.voice_session_metrics (user_id, created_at DESC);

CREATE TABLE IF NOT EXISTS public.voice_session_errors (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    implementation_type text        NOT NULL,
    error_type          text        NOT NULL,
    error_message       text        NOT NULL,
    stack_trace         text,
    is_retryable        boolean     NOT NULL DEFAULT false,
    context             jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT voice_session_errors_implementation_type_check
        CHECK (implementation_type IN ('webrtc', 'websocket'))
);

CREATE INDEX IF NOT EXISTS idx_voice_session_errors_created_at
    ON public.voice_session_errors (created_at);
CREATE INDEX IF NOT EXISTS idx_voice_session_errors_implementation_created_at
    ON public.voice_session_errors (implementation_type, created_at);
CREATE INDEX IF NOT EXISTS idx_voice_session_errors_user_created_at
    ON public.voice_session_errors (user_id, created_at DESC);

CREATE TABLE IF NOT EXISTS public.voice_rollout_audit (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    flag_name       text        NOT NULL REFERENCES public.voice_feature_flags (flag_name) ON UPDATE CASCADE,
    actor_id        uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    actor_role      text        NOT NULL,
    from_enabled    boolean     NOT NULL,
    to_enabled      boolean     NOT NULL,
    from_percentage integer     NOT NULL,
    to_percentage   integer     NOT NULL,
    reason          text        NOT NULL,
    forced          boolean     NOT NULL DEFAULT false,
    red_flags       jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT voice_rollout_audit_percentages_check
        CHECK (from_percentage BETWEEN 0 AND 100 AND to_percentage BETWEEN 0 AND 100),
    CONSTRAINT voice_rollout_audit_reason_not_blank
        CHECK (length(btrim(reason)) > 0)
);

CREATE INDEX IF NOT EXISTS idx_voice_rollout_audit_flag_created_at
    ON public.voice_rollout_audit (flag_name, created_at DESC);

-- Row level security. Teachers and admins (app_metadata.role in the JWT) see the whole
-- dashboard; a student sees their own metrics and errors; every signed-in user may read
-- the flags (the frontend decides WebRTC or WebSocket from them). Writes come from the
-- functions' own connection, which is not subject to these policies.
ALTER TABLE public.voice_feature_flags ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.voice_session_metrics ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.voice_session_errors ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.voice_rollout_audit ENABLE ROW LEVEL SECURITY;

GRANT SELECT ON public.voice_feature_flags, public.voice_session_metrics,
    public.voice_session_errors, public.voice_rollout_audit TO authenticated;

DROP POLICY IF EXISTS voice_feature_flags_read ON public.voice_feature_flags;
CREATE POLICY voice_feature_flags_read ON public.voice_feature_flags
    FOR SELECT TO authenticated
    USING (true);

DROP POLICY IF EXISTS voice_session_metrics_read_own ON public.voice_session_metrics;
CREATE POLICY voice_session_metrics_read_own ON public.voice_session_metrics
    FOR SELECT TO authenticated
    USING (user_id = auth.uid());

DROP POLICY IF EXISTS voice_session_metrics_read_staff ON public.voice_session_metrics;
CREATE POLICY voice_session_metrics_read_staff ON public.voice_session_metrics
    FOR SELECT TO authenticated
    USING (coalesce(auth.jwt() -> 'app_metadata' ->> 'role', '') IN ('teacher', 'admin'));

DROP POLICY IF EXISTS voice_session_errors_read_own ON public.voice_session_errors;
CREATE POLICY voice_session_errors_read_own ON public.voice_session_errors
    FOR SELECT TO authenticated
    USING (user_id = auth.uid());

DROP POLICY IF EXISTS voice_session_errors_read_staff ON public.voice_session_errors;
CREATE POLICY voice_session_errors_read_staff ON public.voice_session_errors
    FOR SELECT TO authenticated
    USING (coalesce(auth.jwt() -> 'app_metadata' ->> 'role', '') IN ('teacher', 'admin'));

DROP POLICY IF EXISTS voice_rollout_audit_read_staff ON public.voice_rollout_audit;
CREATE POLICY voice_rollout_audit_read_staff ON public.voice_rollout_audit
    FOR SELECT TO authenticated
    USING (coalesce(auth.jwt() -> 'app_metadata' ->> 'role', '') IN ('teacher', 'admin'));

-- The dashboard subscribes to new metrics through Supabase Realtime.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime')
       AND NOT EXISTS (
           SELECT 1 FROM pg_publication_tables
           WHERE pubname = 'supabase_realtime' AND schemaname = 'public'
             AND tablename = 'voice_session_metrics')
    THEN
        ALTER PUBLICATION supabase_realtime ADD TABLE public.voice_session_metrics;
    END IF;
END
$$;

COMMIT;
