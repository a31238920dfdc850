-- 0140: practice_record_scored, a scored attempt applied in one statement.
--
-- ClassConnect's most frequent delivery, `practice.attempt.scored`, is applied by one
-- call of this function: it dedupes the delivery by its `webhook-id`, writes the
-- attempt, recomputes the session's results, records the delivery in webhook_events,
-- and answers in one row what became of it. One statement is one transaction (nothing
-- can be left open on a pooled connection), one round trip instead of two, and its
-- plans are cached per connection by PL/pgSQL instead of being planned afresh per
-- request (Spin prepares every statement anew).
--
-- The rules are the contract's (section 5) and are the same as the functions' own
-- model, shared/src/practice/apply.rs and scores.rs, against which the integration
-- tests check this function (tests/integration/tests/practice_webhook.rs):
--   - an event older than what last shaped the attempt, or one that would move a
--     failed attempt to completed, changes nothing (the delivery is still recorded);
--   - attempt_count is the session's attempts; pronunciation_score the mean, rounded
--     to 2 places, of each sentence index's most recent scored attempt (by the scoring
--     event's time, then id); is_passed that every sentence (or the one, without a
--     sentence list) has a most recent scored attempt that passed; the session becomes
--     completed once every sentence is scored, unless it failed.
--
-- What it leaves to the caller, answering without writing anything: a delivery already
-- processed or ignored ('duplicate'), a session that does not exist ('no_session'), an
-- attempt id of another session ('other_session'). The caller then takes its locked
-- path, which records such deliveries as failed with their reason.
--
-- A delivery that takes over a `failed` row (the same webhook-id failed before, and
-- its fixed body now arrives) replaces the stored body: payload becomes this body and
-- raw_body (0130), which a replay prefers when it is set, is cleared, so a replay
-- processes the body last accepted (contract section 5).
--
-- Supabase exposes functions of `public` through its REST API: EXECUTE is revoked from
-- everyone but the owner (the functions connect as the owner through db_url).
--
-- Idempotent: CREATE OR REPLACE, then the same grants.

BEGIN;

CREATE OR REPLACE FUNCTION public.practice_record_scored(
    p_event_id        text,
    p_event_type      text,
    p_payload         jsonb,
    p_session_id      uuid,
    p_attempt_id      uuid,
    p_sentence_index  integer,
    p_score           numeric,
    p_is_passed       boolean,
    p_analysis        jsonb,
    p_feedback        jsonb,
    p_transcription   jsonb,
    p_word_scores     jsonb,
    p_at              timestamptz
) RETURNS text
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = public, pg_temp
AS $function$
DECLARE
    v_event_status   text;
    v_session_status text;
    v_sentence_count integer;
    v_attempt        record;
    v_sentences      integer;
    v_scored         integer;
    v_passed         integer;
    v_score          numeric;
BEGIN
    -- Deliveries of one id take turns, as on every other path (webhook_events.rs).
    PERFORM pg_advisory_xact_lock(hashtext('practice-webhook delivery'), hashtext(p_event_id));

    SELECT status INTO v_event_status FROM webhook_events WHERE id = p_event_id;
    IF v_event_status IN ('processed', 'ignored') THEN
        RETURN 'duplicate';
    END IF;

    -- The session's lock orders every change to it; what is read after it is current.
    SELECT status,
           CASE WHEN jsonb_typeof(sentences) = 'array' THEN jsonb_array_length(sentences) END
      INTO v_session_status, v_sentence_count
      FROM practice_sessions WHERE id = p_session_id
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN 'no_session';
    END IF;

    SELECT session_id, status, last_event_at INTO v_attempt
      FROM practice_attempts WHERE id = p_attempt_id
       FOR NO KEY UPDATE;
    IF FOUND AND v_attempt.session_id <> p_session_id THEN
        RETURN 'other_session';
    END IF;

    IF FOUND AND (p_at < v_attempt.last_event_at OR v_attempt.status = 'failed') THEN
        NULL;  -- older than what stands, or backwards: nothing changes
    ELSE
        INSERT INTO practice_attempts AS a
            (id, session_id, sentence_index, status, pronunciation_score, is_passed,
             pronunciation_analysis, feedback_data, transcription_results,
             word_level_scores, error_message, last_event_at)
        VALUES (p_attempt_id, p_session_id, p_sentence_index, 'completed', p_score,
                p_is_passed, p_analysis, p_feedback, p_transcription, p_word_scores, NULL,
                p_at)
        ON CONFLICT (id) DO UPDATE
           SET sentence_index = excluded.sentence_index,
               status = excluded.status,
               pronunciation_score = excluded.pronunciation_score,
               is_passed = excluded.is_passed,
               pronunciation_analysis = excluded.pronunciation_analysis,
               feedback_data = excluded.feedback_data,
               transcription_results = excluded.transcription_results,
               word_level_scores = excluded.word_level_scores,
               error_message = NULL,
               last_event_at = excluded.last_event_at,
               updated_at = now();

        v_sentences := greatest(coalesce(v_sentence_count, 0), 1);
        WITH latest AS (
            SELECT DISTINCT ON (sentence_index)
                   sentence_index, pronunciation_score, coalesce(is_passed, false) AS passed
              FROM practice_attempts
             WHERE session_id = p_session_id
               AND status = 'completed'
               AND sentence_index IS NOT NULL
               AND pronunciation_score IS NOT NULL
             ORDER BY sentence_index,
                      coalesce(last_event_at, '-infinity'::timestamptz) DESC,
                      id DESC
        )
        SELECT round(avg(pronunciation_score), 2),
               count(*) FILTER (WHERE sentence_index >= 0 AND sentence_index < v_sentences),
               count(*) FILTER (WHERE sentence_index >= 0 AND sentence_index < v_sentences
                                  AND passed)
          INTO v_score, v_scored, v_passed
          FROM latest;

        UPDATE practice_sessions
           SET attempt_count = (SELECT count(*) FROM practice_attempts
                                 WHERE session_id = p_session_id),
               pronunciation_score = v_score,
               is_passed = (v_passed = v_sentences),
               status = CASE WHEN v_scored = v_sentences AND v_session_status <> 'failed'
                             THEN 'completed' ELSE status END,
               updated_at = now()
         WHERE id = p_session_id;
    END IF;

    INSERT INTO webhook_events AS e (id, event_type, status, payload, error, processed_at)
    VALUES (p_event_id, p_event_type, 'processed', p_payload, NULL, now())
    ON CONFLICT (id) DO UPDATE
       SET event_type = excluded.event_type,
           status = excluded.status,
           payload = excluded.payload,
           raw_body = NULL,
           error = NULL,
           attempts = e.attempts + 1,
           processed_at = excluded.processed_at
     WHERE e.status = 'failed';
    RETURN 'processed';
END;
$function$;

REVOKE ALL ON FUNCTION public.practice_record_scored(
    text, text, jsonb, uuid, uuid, integer, numeric, boolean, jsonb, jsonb, jsonb, jsonb,
    timestamptz) FROM PUBLIC;
DO $revoke$
DECLARE
    client_role text;
BEGIN
    FOREACH client_role IN ARRAY ARRAY['anon', 'authenticated', 'service_role', 'demo_relay'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = client_role) THEN
            EXECUTE format(
                'REVOKE ALL ON FUNCTION public.practice_record_scored(text, text, jsonb, uuid, '
                'uuid, integer, numeric, boolean, jsonb, jsonb, jsonb, jsonb, timestamptz) FROM %I',
                client_role);
        END IF;
    END LOOP;
END
$revoke$;

COMMIT;
