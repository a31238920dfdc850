-- 0121: rate_limits becomes an UNLOGGED table.
--
-- Its rows are per-minute request counters: after a crash PostgreSQL empties an
-- unlogged table, which costs at most one minute of a limit. In exchange a counted
-- request writes no WAL and its commit waits for no disk flush, which takes a
-- millisecond or more off every rate-limited request (token minting, SDP relaying,
-- search). Unlogged tables are not replicated either: a promoted standby starts with
-- fresh windows, as after a crash.
--
-- A table named in a publication cannot be unlogged; there the table stays
-- as it is (rate limits work the same, only slower) and a notice says so.
--
-- Idempotent: a table that is unlogged already is left alone.

BEGIN;

DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relname = 'rate_limits' AND c.relpersistence = 'p'
    ) THEN
        BEGIN
            ALTER TABLE public.rate_limits SET UNLOGGED;
        EXCEPTION WHEN object_not_in_prerequisite_state THEN
            RAISE NOTICE 'rate_limits stays logged: %', SQLERRM;
        END;
    END IF;
END
$$;

COMMIT;
