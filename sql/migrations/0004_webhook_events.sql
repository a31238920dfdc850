-- 0004: webhook_events, the practice webhook's record of every authenticated delivery.
--
-- The id is the delivery's `webhook-id` (Standard Webhooks): inserting it in the same
-- transaction as the event's effects is what makes processing exactly-once — a repeated
-- id collides on the primary key and changes nothing. Failed events stay here with their
-- error so that the sender's retry, or an operator's replay, can process them again.
-- Only the functions' own connection reads or writes it: row level security is on with
-- no policy, so the frontend's roles see nothing.
--
-- Idempotent: re-running it changes nothing.

BEGIN;

CREATE TABLE IF NOT EXISTS public.webhook_events (
    id           text        PRIMARY KEY,
    event_type   text        NOT NULL,
    status       text        NOT NULL,
    payload      jsonb       NOT NULL,
    error        text,
    attempts     integer     NOT NULL DEFAULT 1,
    received_at  timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    CONSTRAINT webhook_events_status_check
        CHECK (status IN ('processed', 'ignored', 'failed')),
    CONSTRAINT webhook_events_attempts_check
        CHECK (attempts >= 1)
);

-- Replaying failed events, oldest first.
CREATE INDEX IF NOT EXISTS idx_webhook_events_status_received_at
    ON public.webhook_events (status, received_at);

ALTER TABLE public.webhook_events ENABLE ROW LEVEL SECURITY;

COMMIT;
