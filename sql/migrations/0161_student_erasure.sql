-- 0161: one student's data erased on request (contract section 7a), and its audit.
--
-- public.erase_student_data(p_user_id, p_reason, p_include_practice, p_actor_id,
-- p_actor_role) removes or empties everything the functions stored about one user, in
-- one transaction, and answers the count per table as jsonb:
--   realtime_token_sessions, voice_session_metrics, voice_session_errors  deleted
--   rate_limits                 the windows keyed on the user (`<action>:user:<id>`)
--   rate_limits_demo            the demo relay's windows keyed on the user (0132)
--   demo_interactions, demo_voice_sessions   deleted (when the demo system is there)
--   webhook_events              deliveries about the user's practice sessions: payload
--                               emptied ('{}') and raw_body NULL; the row and its id
--                               stay, so a sender's retry is still a duplicate
--   practice_attempts, practice_sessions     deleted, only with p_include_practice
--                               (a later delivery for such a session is answered as
--                               for an unknown session: 404, kept as failed)
-- Running it again finds nothing more (every count 0). Each call writes one
-- data_erasure_audit row: the user id, the actor, the reason, the counts and the time,
-- nothing else about the student. The reason is the operator's: it should say why
-- (a parent's request, ticket number), never who the student is.
--
-- Only service_role may execute it (SECURITY DEFINER: it runs with the owner's rights,
-- whatever grants service_role has), for operators who call it through Supabase's RPC
-- (`supabase.rpc('erase_student_data', {p_user_id, p_reason, p_include_practice})`);
-- the functions call it as the owner from `POST /functions/v1/voice-monitoring/erase`.
-- With no p_actor_role, the actor is the caller's JWT role (`request.jwt.claims`) or
-- the session's role.
--
-- Idempotent: CREATE … IF NOT EXISTS, CREATE OR REPLACE, then the same grants.

BEGIN;

CREATE TABLE IF NOT EXISTS public.data_erasure_audit (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The erased user; not a foreign key, since the user may be deleted next.
    user_id          uuid        NOT NULL,
    include_practice boolean     NOT NULL,
    actor_id         uuid,
    actor_role       text        NOT NULL,
    reason           text        NOT NULL,
    counts           jsonb       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT data_erasure_audit_reason_not_blank CHECK (length(btrim(reason)) > 0)
);

CREATE INDEX IF NOT EXISTS idx_data_erasure_audit_user
    ON public.data_erasure_audit (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_data_erasure_audit_created_at
    ON public.data_erasure_audit (created_at);

-- Row level security with no policy: only the owner (the functions) and service_role
-- (BYPASSRLS on Supabase) read it.
ALTER TABLE public.data_erasure_audit ENABLE ROW LEVEL SECURITY;

CREATE OR REPLACE FUNCTION public.erase_student_data(
    p_user_id          uuid,
    p_reason           text,
    p_include_practice boolean DEFAULT false,
    p_actor_id         uuid DEFAULT NULL,
    p_actor_role       text DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    v_sessions text[];
    v_counts jsonb := '{}'::jsonb;
    v_count bigint;
    v_role text;
    v_audit uuid;
    v_at timestamptz;
BEGIN
    IF p_user_id IS NULL THEN
        RAISE EXCEPTION 'erase_student_data: p_user_id is required' USING ERRCODE = '22023';
    END IF;
    IF p_reason IS NULL OR length(btrim(p_reason)) = 0 OR length(p_reason) > 500 THEN
        RAISE EXCEPTION 'erase_student_data: p_reason of 1 to 500 characters is required'
            USING ERRCODE = '22023';
    END IF;
    v_role := coalesce(
        p_actor_role,
        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role',
        current_user);

    -- One erasure of a user at a time (a second waits and then finds nothing).
    PERFORM pg_advisory_xact_lock(hashtext('erase_student_data'), hashtext(p_user_id::text));

    -- Deliveries about the user's practice sessions: their content goes, their ids stay.
    SELECT coalesce(array_agg(id::text), '{}') INTO v_sessions
      FROM public.practice_sessions WHERE user_id = p_user_id;
    UPDATE public.webhook_events e
       SET payload = '{}'::jsonb, raw_body = NULL
     WHERE (e.payload <> '{}'::jsonb OR e.raw_body IS NOT NULL)
       AND EXISTS (
           SELECT 1 FROM unnest(v_sessions) AS s(id)
            WHERE lower(e.payload -> 'data' ->> 'session_id') = s.id
               -- A body stored as text (not a JSON object) or as raw bytes.
               OR (jsonb_typeof(e.payload) <> 'object' AND lower(e.payload::text) LIKE '%' || s.id || '%')
               OR (e.raw_body IS NOT NULL
                   AND position(convert_to(s.id, 'UTF8') IN e.raw_body) > 0));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('webhook_events', v_count);

    IF p_include_practice THEN
        DELETE FROM public.practice_attempts a
         WHERE a.session_id IN (SELECT id FROM public.practice_sessions WHERE user_id = p_user_id);
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_counts := v_counts || jsonb_build_object('practice_attempts', v_count);
        DELETE FROM public.practice_sessions WHERE user_id = p_user_id;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_counts := v_counts || jsonb_build_object('practice_sessions', v_count);
    ELSE
        v_counts := v_counts || jsonb_build_object('practice_attempts', 0, 'practice_sessions', 0);
    END IF;

    IF to_regclass('public.demo_voice_sessions') IS NOT NULL THEN
        EXECUTE 'DELETE FROM public.demo_interactions i USING public.demo_voice_sessions s
                  WHERE i.demo_session_id = s.id AND s.student_id = $1'
          USING p_user_id;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_counts := v_counts || jsonb_build_object('demo_interactions', v_count);
        EXECUTE 'DELETE FROM public.demo_voice_sessions WHERE student_id = $1' USING p_user_id;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_counts := v_counts || jsonb_build_object('demo_voice_sessions', v_count);
    END IF;

    DELETE FROM public.realtime_token_sessions WHERE user_id = p_user_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('realtime_token_sessions', v_count);
    DELETE FROM public.voice_session_metrics WHERE user_id = p_user_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('voice_session_metrics', v_count);
    DELETE FROM public.voice_session_errors WHERE user_id = p_user_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('voice_session_errors', v_count);
    -- Keys are `<action>:user:<id>` (and `demo:<action>:user:<id>` for the demo relay).
    DELETE FROM public.rate_limits WHERE bucket_key LIKE '%:user:' || p_user_id::text;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('rate_limits', v_count);
    -- The demo relay counts in its own table (0132): `demo:<action>:user:<id>`.
    IF to_regclass('public.rate_limits_demo') IS NOT NULL THEN
        EXECUTE 'DELETE FROM public.rate_limits_demo WHERE bucket_key LIKE ''%:user:'' || $1::text'
          USING p_user_id;
        GET DIAGNOSTICS v_count = ROW_COUNT;
    ELSE
        v_count := 0;
    END IF;
    v_counts := v_counts || jsonb_build_object('rate_limits_demo', v_count);

    INSERT INTO public.data_erasure_audit
        (user_id, include_practice, actor_id, actor_role, reason, counts)
    VALUES (p_user_id, coalesce(p_include_practice, false), p_actor_id, v_role, p_reason, v_counts)
    RETURNING id, created_at INTO v_audit, v_at;

    RETURN jsonb_build_object(
        'counts', v_counts,
        'audit_id', v_audit,
        'erased_at', to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
END
$fn$;

REVOKE ALL ON FUNCTION public.erase_student_data(uuid, text, boolean, uuid, text) FROM PUBLIC;
DO $$
DECLARE
    api_role text;
BEGIN
    FOREACH api_role IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = api_role) THEN
            EXECUTE format('REVOKE ALL ON FUNCTION public.erase_student_data(uuid, text, boolean, uuid, text) FROM %I',
                           api_role);
        END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION public.erase_student_data(uuid, text, boolean, uuid, text) TO service_role;
    END IF;
END
$$;

COMMIT;
