-- 0005: realtime_token_sessions, one row per Realtime token session minted by
-- realtime-student-guide-token.
--
-- The `sessionId` a client gets with its token is this row's id; refreshing checks the
-- owner (`user_id`, or `client_key` for anonymous demo-guide callers, whose user_id is
-- null), the count of refreshes so far and the age of the session.
--
-- Idempotent: re-running it changes nothing.

BEGIN;

CREATE TABLE IF NOT EXISTS public.realtime_token_sessions (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid        REFERENCES auth.users (id) ON DELETE CASCADE,
    client_key        text        NOT NULL,
    persona           text        NOT NULL,
    language          text        NOT NULL,
    model             text        NOT NULL,
    voice             text        NOT NULL,
    refresh_count     integer     NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_refreshed_at timestamptz,
    CONSTRAINT realtime_token_sessions_persona_check
        CHECK (persona IN ('student-tutor', 'demo-guide')),
    CONSTRAINT realtime_token_sessions_refresh_count_check
        CHECK (refresh_count >= 0)
);

CREATE INDEX IF NOT EXISTS idx_realtime_token_sessions_user_created_at
    ON public.realtime_token_sessions (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_realtime_token_sessions_created_at
    ON public.realtime_token_sessions (created_at);

-- A signed-in user may read their own token sessions (never the tokens: they are not
-- stored).
ALTER TABLE public.realtime_token_sessions ENABLE ROW LEVEL SECURITY;

GRANT SELECT ON public.realtime_token_sessions TO authenticated;

DROP POLICY IF EXISTS realtime_token_sessions_read_own ON public.realtime_token_sessions;
CREATE POLICY realtime_token_sessions_read_own ON public.realtime_token_sessions
    FOR SELECT TO authenticated
    USING (user_id = auth.uid());

COMMIT;
