-- 0130: webhook_events.raw_body, the delivery's bytes when `payload` cannot be them.
--
-- `payload` is jsonb, and jsonb (like text) cannot hold a NUL character: a correctly
-- signed delivery whose JSON holds "\u0000" in any string, or a body that is not JSON
-- at all, cannot be stored as sent. Such a delivery is refused with 400 and stored as
-- `failed` (so the sender's retry or an operator's replay can process it again); its
-- `payload` is then the body's text as a JSON string (with anything jsonb refuses
-- replaced), for people to read, and `raw_body` holds its bytes exactly as they came,
-- which is what a replay reads. For every other delivery `raw_body` is NULL and
-- `payload` is the body.
--
-- Safe on a database with data: one nullable column, no rewrite of existing rows.
-- Idempotent: re-running it changes nothing.

BEGIN;

ALTER TABLE public.webhook_events
    ADD COLUMN IF NOT EXISTS raw_body bytea;

COMMENT ON COLUMN public.webhook_events.raw_body IS
    'The delivery''s bytes exactly as received, when payload cannot hold them (a NUL in a string, a body that is not JSON); NULL otherwise.';

COMMIT;
