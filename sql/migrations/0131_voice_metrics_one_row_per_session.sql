-- 0131: one metrics row per user and session; error reports name their session.
--
-- voice-monitoring now keeps one row of voice_session_metrics per (user_id,
-- session_id): a report for a session the user already reported replaces it, so one
-- user cannot count a session many times. Rows without a session_id stay one per
-- report (NULLs are distinct in a unique index). Existing duplicates are resolved
-- first, keeping each pair's newest row, so the unique index can be built on a
-- database that already has data.
--
-- voice_session_errors gets an optional session_id, so that the summary's error rate
-- can be the share of sessions with an error instead of a count of error posts.
--
-- Idempotent: re-running it changes nothing.

BEGIN;

DELETE FROM public.voice_session_metrics older
 USING public.voice_session_metrics newer
 WHERE older.user_id = newer.user_id
   AND older.session_id = newer.session_id
   AND (older.created_at, older.id) < (newer.created_at, newer.id);

CREATE UNIQUE INDEX IF NOT EXISTS voice_session_metrics_user_session_key
    ON public.voice_session_metrics (user_id, session_id);

ALTER TABLE public.voice_session_errors
    ADD COLUMN IF NOT EXISTS session_id text;

COMMIT;
