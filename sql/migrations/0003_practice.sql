-- 0003: practice sessions and attempts (practice plan), without the old triggers.
--
-- These tables already exist in the running system, made by the Python back end with
-- three triggers on them that called edge functions. The practice plan replaces the
-- triggers with direct service calls and ClassConnect webhooks, so this migration:
--   1. drops the three triggers, the functions they ran, and the enable/disable helpers;
--   2. creates the tables on an empty database, or adds what an existing one lacks
--      (ADD COLUMN IF NOT EXISTS), keeping every row;
--   3. adds the status check constraints and foreign keys when absent. On an existing
--      table they are added NOT VALID and then validated: should old rows break one, it
--      still holds for every new and updated row, a warning says so, and it stays NOT
--      VALID (re-running this file validates it once the rows are fixed) instead of the
--      migration failing or rows being changed;
--   4. adds the practice plan's indexes, row level security that lets a student read
--      their own sessions and attempts (the frontend's direct reads and Realtime
--      subscriptions), and both tables to the Realtime publication.
--
-- Statuses (the webhook moves them forward only):
--   sessions pending -> processing -> analyzing -> completed | failed
--   attempts pending -> processing -> completed | failed
-- `last_event_at` is the timestamp of the newest webhook event applied to a row: an
-- older event never overwrites a newer one.
--
-- Idempotent: re-running it changes nothing.

BEGIN;

-- 1. The triggers, the functions they call, and the helpers that toggled them.
DO $$
DECLARE
    old_trigger record;
BEGIN
    FOR old_trigger IN
        SELECT t.tgname AS trigger_name,
               c.relname AS table_name,
               t.tgfoid::regprocedure AS function_signature,
               t.tgfoid AS function_oid
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public'
          AND NOT t.tgisinternal
          AND t.tgname IN (
              'practice_session_auto_improve_trigger',
              'practice_session_auto_start_trigger',
              'practice_attempts_auto_submit_trigger'
          )
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON public.%I',
                       old_trigger.trigger_name, old_trigger.table_name);
        -- The function goes too, unless some other trigger still runs it.
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgfoid = old_trigger.function_oid) THEN
            EXECUTE format('DROP FUNCTION IF EXISTS %s', old_trigger.function_signature);
        END IF;
    END LOOP;
END
$$;

DO $$
DECLARE
    helper regprocedure;
BEGIN
    FOR helper IN
        SELECT p.oid::regprocedure
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace
          AND p.proname IN ('disable_practice_triggers', 'enable_practice_triggers')
    LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s', helper);
    END LOOP;
END
$$;

-- 2. The tables: created whole on an empty database, completed on an existing one.
CREATE TABLE IF NOT EXISTS public.practice_sessions (
    id                     uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                uuid         NOT NULL,
    status                 text         NOT NULL DEFAULT 'pending',
    transcript             text,
    improved_transcript    text,
    sentences              jsonb,
    current_sentence_index integer      NOT NULL DEFAULT 0,
    current_word_index     integer      NOT NULL DEFAULT 0,
    attempt_count          integer      NOT NULL DEFAULT 0,
    pronunciation_score    numeric(5,2),
    is_passed              boolean      NOT NULL DEFAULT false,
    error_message          text,
    last_event_at          timestamptz,
    created_at             timestamptz  NOT NULL DEFAULT now(),
    updated_at             timestamptz  NOT NULL DEFAULT now()
);

ALTER TABLE public.practice_sessions
    ADD COLUMN IF NOT EXISTS user_id                uuid,
    ADD COLUMN IF NOT EXISTS status                 text         NOT NULL DEFAULT 'pending',
    ADD COLUMN IF NOT EXISTS transcript             text,
    ADD COLUMN IF NOT EXISTS improved_transcript    text,
    ADD COLUMN IF NOT EXISTS sentences              jsonb,
    ADD COLUMN IF NOT EXISTS current_sentence_index integer      NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS current_word_index     integer      NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS attempt_count          integer      NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS pronunciation_score    numeric(5,2),
    ADD COLUMN IF NOT EXISTS is_passed              boolean      NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS error_message          text,
    ADD COLUMN IF NOT EXISTS last_event_at          timestamptz,
    ADD COLUMN IF NOT EXISTS created_at             timestamptz  NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS updated_at             timestamptz  NOT NULL DEFAULT now();

CREATE TABLE IF NOT EXISTS public.practice_attempts (
    id                     uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id             uuid         NOT NULL,
    attempt_type           text         NOT NULL DEFAULT 'sentence',
    sentence_index         integer,
    status                 text         NOT NULL DEFAULT 'pending',
    pronunciation_score    numeric(5,2),
    pronunciation_analysis jsonb,
    is_passed              boolean,
    feedback_data          jsonb,
    transcription_results  jsonb,
    word_level_scores      jsonb,
    error_message          text,
    last_event_at          timestamptz,
    created_at             timestamptz  NOT NULL DEFAULT now(),
    updated_at             timestamptz  NOT NULL DEFAULT now()
);

ALTER TABLE public.practice_attempts
    ADD COLUMN IF NOT EXISTS session_id             uuid,
    ADD COLUMN IF NOT EXISTS attempt_type           text         NOT NULL DEFAULT 'sentence',
    ADD COLUMN IF NOT EXISTS sentence_index         integer,
    ADD COLUMN IF NOT EXISTS status                 text         NOT NULL DEFAULT 'pending',
    ADD COLUMN IF NOT EXISTS pronunciation_score    numeric(5,2),
    ADD COLUMN IF NOT EXISTS pronunciation_analysis jsonb,
    ADD COLUMN IF NOT EXISTS is_passed              boolean,
    ADD COLUMN IF NOT EXISTS feedback_data          jsonb,
    ADD COLUMN IF NOT EXISTS transcription_results  jsonb,
    ADD COLUMN IF NOT EXISTS word_level_scores      jsonb,
    ADD COLUMN IF NOT EXISTS error_message          text,
    ADD COLUMN IF NOT EXISTS last_event_at          timestamptz,
    ADD COLUMN IF NOT EXISTS created_at             timestamptz  NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS updated_at             timestamptz  NOT NULL DEFAULT now();

-- 3. Constraints, added when absent (found by name for checks, by target for foreign
--    keys, since an existing table may carry its foreign keys under other names).
DO $$
DECLARE
    wanted record;
    table_oid regclass;
BEGIN
    FOR wanted IN
        SELECT * FROM (VALUES
            ('practice_sessions', 'practice_sessions_status_check',
             $c$CHECK (status IN ('pending', 'processing', 'analyzing', 'completed', 'failed'))$c$,
             NULL::text),
            ('practice_attempts', 'practice_attempts_status_check',
             $c$CHECK (status IN ('pending', 'processing', 'completed', 'failed'))$c$,
             NULL::text),
            ('practice_sessions', 'practice_sessions_pronunciation_score_range',
             $c$CHECK (pronunciation_score IS NULL OR pronunciation_score BETWEEN 0 AND 100)$c$,
             NULL::text),
            ('practice_attempts', 'practice_attempts_pronunciation_score_range',
             $c$CHECK (pronunciation_score IS NULL OR pronunciation_score BETWEEN 0 AND 100)$c$,
             NULL::text),
            ('practice_sessions', 'practice_sessions_user_id_fkey',
             $c$FOREIGN KEY (user_id) REFERENCES auth.users (id) ON DELETE CASCADE$c$,
             'auth.users'),
            ('practice_attempts', 'practice_attempts_session_id_fkey',
             $c$FOREIGN KEY (session_id) REFERENCES public.practice_sessions (id) ON DELETE CASCADE$c$,
             'public.practice_sessions')
        ) AS w(table_name, constraint_name, definition, references_table)
    LOOP
        table_oid := format('public.%I', wanted.table_name)::regclass;
        IF wanted.references_table IS NOT NULL AND EXISTS (
            SELECT 1 FROM pg_constraint
            WHERE conrelid = table_oid AND contype = 'f'
              AND confrelid = wanted.references_table::regclass
              AND conname <> wanted.constraint_name
        ) THEN
            CONTINUE;
        END IF;
        IF NOT EXISTS (
            SELECT 1 FROM pg_constraint
            WHERE conrelid = table_oid AND conname = wanted.constraint_name
        ) THEN
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s NOT VALID',
                           table_oid, wanted.constraint_name, wanted.definition);
        END IF;
        IF EXISTS (
            SELECT 1 FROM pg_constraint
            WHERE conrelid = table_oid AND conname = wanted.constraint_name
              AND NOT convalidated
        ) THEN
            BEGIN
                EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT %I',
                               table_oid, wanted.constraint_name);
            EXCEPTION WHEN check_violation OR foreign_key_violation THEN
                RAISE WARNING '% on %: existing rows break it; it holds for new and updated rows and stays NOT VALID until they are fixed',
                    wanted.constraint_name, wanted.table_name;
            END;
        END IF;
    END LOOP;
END
$$;

-- 4. Indexes: the practice plan's three, and the webhook's "latest attempt per sentence".
CREATE INDEX IF NOT EXISTS idx_practice_sessions_user_status
    ON public.practice_sessions (user_id, status);
CREATE INDEX IF NOT EXISTS idx_practice_attempts_session_type
    ON public.practice_attempts (session_id, attempt_type);
CREATE INDEX IF NOT EXISTS idx_practice_sessions_updated_at
    ON public.practice_sessions (updated_at);
CREATE INDEX IF NOT EXISTS idx_practice_attempts_session_sentence
    ON public.practice_attempts (session_id, sentence_index, updated_at DESC);

ALTER TABLE public.practice_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.practice_attempts ENABLE ROW LEVEL SECURITY;

GRANT SELECT ON public.practice_sessions, public.practice_attempts TO authenticated;

DROP POLICY IF EXISTS practice_sessions_read_own ON public.practice_sessions;
CREATE POLICY practice_sessions_read_own ON public.practice_sessions
    FOR SELECT TO authenticated
    USING (user_id = auth.uid());

DROP POLICY IF EXISTS practice_attempts_read_own ON public.practice_attempts;
CREATE POLICY practice_attempts_read_own ON public.practice_attempts
    FOR SELECT TO authenticated
    USING (EXISTS (
        SELECT 1 FROM public.practice_sessions s
        WHERE s.id = practice_attempts.session_id AND s.user_id = auth.uid()
    ));

-- The frontend subscribes to both tables' changes through Supabase Realtime.
DO $$
DECLARE
    practice_table text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime') THEN
        RETURN;
    END IF;
    FOREACH practice_table IN ARRAY ARRAY['practice_sessions', 'practice_attempts'] LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_publication_tables
            WHERE pubname = 'supabase_realtime' AND schemaname = 'public'
              AND tablename = practice_table
        ) THEN
            EXECUTE format('ALTER PUBLICATION supabase_realtime ADD TABLE public.%I', practice_table);
        END IF;
    END LOOP;
END
$$;

COMMIT;
