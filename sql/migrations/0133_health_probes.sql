-- 0133: health_probes, the last answer of each upstream probe the health function makes.
--
-- `GET /functions/v1/health?deep=1` needs no auth and asks OpenAI whether the
-- configured model is reachable. Instances are fresh per request, so the only place a
-- "probed a moment ago" can live is here: a request claims the probe with one
-- statement (`started_at` at least 30 s old, or no row yet); only the claimant calls
-- OpenAI and writes `ok` and `answered_at`; everyone else is answered from the row.
-- So whoever asks, and however often, OpenAI is called at most once per 30 s.
-- Only the functions' own connection uses it: row level security is on with no policy.
--
-- Idempotent: re-running it changes nothing.

BEGIN;

CREATE TABLE IF NOT EXISTS public.health_probes (
    probe       text        PRIMARY KEY,
    ok          boolean,
    started_at  timestamptz NOT NULL,
    answered_at timestamptz
);

ALTER TABLE public.health_probes ENABLE ROW LEVEL SECURITY;

COMMIT;
