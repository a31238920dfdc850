-- 0006: rate_limits, fixed-window request counters shared by every instance of every
-- function (token minting, SDP relaying, search).
--
-- A request counts itself with one statement,
--   INSERT … VALUES ($key, $window_start, 1)
--   ON CONFLICT (bucket_key, window_start) DO UPDATE SET count = rate_limits.count + 1
--   RETURNING count
-- which is atomic under any concurrency. Old windows can be deleted at any time
-- (`window_start < now() - interval '1 hour'`); the index on window_start serves that.
-- The demo relay's role may use this table too (0008). No frontend role may: row level
-- security is on with no policy for them.
--
-- Idempotent: re-running it changes nothing.

BEGIN;

CREATE TABLE IF NOT EXISTS public.rate_limits (
    bucket_key   text        NOT NULL,
    window_start timestamptz NOT NULL,
    count        integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket_key, window_start),
    CONSTRAINT rate_limits_count_check CHECK (count >= 0)
);

CREATE INDEX IF NOT EXISTS idx_rate_limits_window_start
    ON public.rate_limits (window_start);

ALTER TABLE public.rate_limits ENABLE ROW LEVEL SECURITY;

COMMIT;
