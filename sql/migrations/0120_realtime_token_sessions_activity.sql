-- 0120: the classroom activity a token session was minted for.
--
-- `realtime-student-guide-token` accepts an optional `activity_id` and keeps it on the
-- session row, so a refresh and the session's history say what the session was for.
-- Not a foreign key: classroom activities live in the platform's own tables, which these
-- migrations do not own.
--
-- Idempotent: re-running it changes nothing.

BEGIN;

ALTER TABLE public.realtime_token_sessions
    ADD COLUMN IF NOT EXISTS activity_id uuid;

COMMIT;
