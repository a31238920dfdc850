-- 0007: search_cache, voice-agent-search's answers by normalised query and locale.
--
-- `cache_key` is derived from the normalised query (trimmed, lower-cased, inner
-- whitespace folded) and the locale. An answer younger than 10 minutes is served instead
-- of calling the upstream; one up to 24 hours old is served (marked stale) when the
-- upstream fails; older rows can be deleted at any time (index on created_at). Only the
-- functions' own connection uses it: row level security is on with no policy.
--
-- Idempotent: re-running it changes nothing.

BEGIN;

CREATE TABLE IF NOT EXISTS public.search_cache (
    cache_key        text        PRIMARY KEY,
    normalized_query text        NOT NULL,
    locale           text,
    answer           text        NOT NULL,
    citations        jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT search_cache_citations_is_array
        CHECK (jsonb_typeof(citations) = 'array')
);

CREATE INDEX IF NOT EXISTS idx_search_cache_created_at
    ON public.search_cache (created_at);

ALTER TABLE public.search_cache ENABLE ROW LEVEL SECURITY;

COMMIT;
