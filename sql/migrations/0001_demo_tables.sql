-- 0001: the demo system's tables (isolation spec).
--
-- The demo system is a parallel system that shares nothing with production but the
-- OpenAI key: these three tables are the whole of its data, and removing the demo system
-- is dropping them. Nothing here touches manual_assessments, voice_sessions or
-- voice_interactions, and no other table may be named demo_* (the isolation spec's
-- check counts exactly three).
--
-- demo_activities: what a demo is about. `content` holds the type's material:
--   readflow       {"passage", "target_wpm", "focus_words": [..], "comprehension_questions": [{"question", "answer"}]}
--   pronunciation  {"focus_sound", "words": [{"word", "phonemes": [..], "ipa", "tip"}], "sentences": [..]}
--   speed-quiz     {"topic", "time_limit_seconds", "questions": [{"question", "answer", "accepted_answers": [..]}]}
-- demo_voice_sessions: one per demo started by a (possibly anonymous) signed-in user;
--   `session_config` is what was sent to OpenAI, `telemetry` what the client reported.
-- demo_interactions: what was said and done in a session (word timings in `words`).
--
-- Idempotent: re-running it changes nothing.

BEGIN;

CREATE TABLE IF NOT EXISTS public.demo_activities (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    demo_type    text        NOT NULL,
    language     text        NOT NULL DEFAULT 'en',
    grade_level  integer     NOT NULL DEFAULT 1,
    title        text        NOT NULL,
    description  text,
    content      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    is_published boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT demo_activities_demo_type_check
        CHECK (demo_type IN ('readflow', 'pronunciation', 'speed-quiz')),
    CONSTRAINT demo_activities_grade_level_check
        CHECK (grade_level BETWEEN 0 AND 12),
    CONSTRAINT demo_activities_content_is_object
        CHECK (jsonb_typeof(content) = 'object')
);

CREATE INDEX IF NOT EXISTS idx_demo_activities_published_type
    ON public.demo_activities (demo_type, language)
    WHERE is_published;

CREATE TABLE IF NOT EXISTS public.demo_voice_sessions (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    demo_activity_id uuid        NOT NULL REFERENCES public.demo_activities (id) ON DELETE CASCADE,
    student_id       uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    status           text        NOT NULL DEFAULT 'active',
    session_config   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    openai_call_id   text,
    telemetry        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    started_at       timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT demo_voice_sessions_status_check
        CHECK (status IN ('active', 'ended')),
    -- An ended session has its end time and only an ended one has.
    CONSTRAINT demo_voice_sessions_ended_at_matches_status
        CHECK ((status = 'ended') = (ended_at IS NOT NULL)),
    CONSTRAINT demo_voice_sessions_telemetry_is_object
        CHECK (jsonb_typeof(telemetry) = 'object')
);

CREATE INDEX IF NOT EXISTS idx_demo_voice_sessions_student
    ON public.demo_voice_sessions (student_id, started_at DESC);
CREATE INDEX IF NOT EXISTS idx_demo_voice_sessions_activity
    ON public.demo_voice_sessions (demo_activity_id);

CREATE TABLE IF NOT EXISTS public.demo_interactions (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    demo_session_id  uuid        NOT NULL REFERENCES public.demo_voice_sessions (id) ON DELETE CASCADE,
    interaction_type text        NOT NULL,
    transcript       text,
    words            jsonb,
    payload          jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT demo_interactions_interaction_type_not_blank
        CHECK (length(btrim(interaction_type)) > 0),
    CONSTRAINT demo_interactions_words_is_array
        CHECK (words IS NULL OR jsonb_typeof(words) = 'array')
);

CREATE INDEX IF NOT EXISTS idx_demo_interactions_session
    ON public.demo_interactions (demo_session_id, created_at);

-- Row level security: the frontend reads published activities (signed in or not) and a
-- student's own sessions and interactions. Writes go through the demo relay only (its
-- own policies are in 0008, with its role).
ALTER TABLE public.demo_activities ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.demo_voice_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.demo_interactions ENABLE ROW LEVEL SECURITY;

GRANT SELECT ON public.demo_activities TO anon, authenticated;
GRANT SELECT ON public.demo_voice_sessions, public.demo_interactions TO authenticated;

DROP POLICY IF EXISTS demo_activities_read_published ON public.demo_activities;
CREATE POLICY demo_activities_read_published ON public.demo_activities
    FOR SELECT TO anon, authenticated
    USING (is_published);

DROP POLICY IF EXISTS demo_voice_sessions_read_own ON public.demo_voice_sessions;
CREATE POLICY demo_voice_sessions_read_own ON public.demo_voice_sessions
    FOR SELECT TO authenticated
    USING (student_id = auth.uid());

DROP POLICY IF EXISTS demo_interactions_read_own ON public.demo_interactions;
CREATE POLICY demo_interactions_read_own ON public.demo_interactions
    FOR SELECT TO authenticated
    USING (EXISTS (
        SELECT 1 FROM public.demo_voice_sessions s
        WHERE s.id = demo_interactions.demo_session_id AND s.student_id = auth.uid()
    ));

COMMIT;
