-- 0150: which metrics rows come from anonymous sign-ins.
--
-- voice-monitoring's summary counts distinct users (a red flag stands only when at
-- least three users are each over its threshold, and every number is a mean over
-- users). An anonymous sign-in (a JWT with is_anonymous: true, from supabase-js's
-- signInAnonymously) is a user anyone can mint at will, so its reports are kept but
-- not counted: the function records here, from the token, whether the reporter was
-- one. Rows written before this migration are from before anyone could tell; they
-- count as signed-in users' (the default), as they did.
--
-- Idempotent: re-running it changes nothing.

BEGIN;

ALTER TABLE public.voice_session_metrics
    ADD COLUMN IF NOT EXISTS reporter_anonymous boolean NOT NULL DEFAULT false;

COMMIT;
