-- 0132: demo_relay holds its own demo tables and one counting function, nothing else.
--
-- Earlier versions of 0008 let the demo relay's role read, update and delete
-- `rate_limits`, whose keys carry production user ids and client addresses: the demo
-- system could see who mints tokens and reset or exhaust anyone's counter. 0008 no
-- longer grants that (and takes it back where an earlier version did), but its revokes
-- cover tables in `public` only. From here on the role holds:
--   * USAGE on schema public;
--   * SELECT on demo_activities (published ones, by its policy), SELECT, INSERT,
--     UPDATE on demo_voice_sessions, SELECT, INSERT on demo_interactions;
--   * EXECUTE on public.demo_rate_limit_hit(text, bigint), a SECURITY DEFINER function
--     that counts one request against a key under the `demo:` prefix and answers the
--     count (NULL when over the limit) and the seconds left in the window. It can reach
--     no other key, read nothing, and reset nothing.
--
-- The demo's counters live in a table of their own, rate_limits_demo, not in the
-- production rate_limits: a compromised relay calling the function in a loop with
-- ever new keys can only grow the demo's table, never slow a production
-- rate-limited request. And the function accepts only the key shapes the relay uses
-- (voice_edge_shared's demo and ratelimit modules): `<action>:user:<uuid>`,
-- `<action>:ip:<IPv4>`, `<action>:ip6:<IPv6 /64>`, `<action>:ip:unknown` and the
-- anonymous ceiling `<action>:anon`, for the actions sessions, interactions, sdp and
-- mint; any other key is refused (SQLSTATE 22023) and writes nothing.
-- Every other privilege granted to it, on any table, view, sequence, function or
-- schema in any schema, any default privilege naming it and any role membership, is
-- taken back. (What PUBLIC holds by default, such as EXECUTE on functions that run
-- with the caller's own rights, gives it nothing more.)
--
-- No file grants the role more than this end state (0008 grants a subset of it), so a
-- migration run stopped between any two files never leaves the role with more; this
-- file takes back whatever else a role of that name holds on an older database.
-- Idempotent: re-running it changes nothing.

BEGIN;

DO $$
DECLARE
    demo oid := (SELECT oid FROM pg_roles WHERE rolname = 'demo_relay');
    item record;
BEGIN
    IF demo IS NULL THEN
        RAISE EXCEPTION 'role demo_relay is missing: apply 0008 first';
    END IF;

    -- Tables, views, materialized views, foreign tables and sequences, with their
    -- column privileges (a table-level REVOKE takes those too).
    FOR item IN
        SELECT c.oid::regclass AS name, c.relkind
          FROM pg_class c
         WHERE EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = demo)
            OR EXISTS (SELECT 1 FROM pg_attribute att, aclexplode(att.attacl) a
                        WHERE att.attrelid = c.oid AND a.grantee = demo)
    LOOP
        IF item.relkind = 'S' THEN
            EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM demo_relay', item.name);
        ELSE
            EXECUTE format('REVOKE ALL ON TABLE %s FROM demo_relay', item.name);
        END IF;
    END LOOP;

    -- Functions and procedures.
    FOR item IN
        SELECT p.oid::regprocedure AS name
          FROM pg_proc p
         WHERE EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = demo)
    LOOP
        EXECUTE format('REVOKE ALL ON ROUTINE %s FROM demo_relay', item.name);
    END LOOP;

    -- Schemas (USAGE on public is granted again below).
    FOR item IN
        SELECT n.nspname AS name
          FROM pg_namespace n
         WHERE EXISTS (SELECT 1 FROM aclexplode(n.nspacl) a WHERE a.grantee = demo)
    LOOP
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM demo_relay', item.name);
    END LOOP;

    -- Types and domains.
    FOR item IN
        SELECT t.oid::regtype AS name
          FROM pg_type t
         WHERE EXISTS (SELECT 1 FROM aclexplode(t.typacl) a WHERE a.grantee = demo)
    LOOP
        EXECUTE format('REVOKE ALL ON TYPE %s FROM demo_relay', item.name);
    END LOOP;

    -- Default privileges that would hand it future objects.
    FOR item IN
        SELECT d.defaclrole::regrole AS owner, n.nspname AS schema_name,
               CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES'
                    WHEN 'f' THEN 'FUNCTIONS' WHEN 'T' THEN 'TYPES' WHEN 'n' THEN 'SCHEMAS'
               END AS kind
          FROM pg_default_acl d
          LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
         WHERE EXISTS (SELECT 1 FROM aclexplode(d.defaclacl) a WHERE a.grantee = demo)
    LOOP
        IF item.schema_name IS NULL THEN
            EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %s REVOKE ALL ON %s FROM demo_relay',
                           item.owner, item.kind);
        ELSE
            EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA %I REVOKE ALL ON %s FROM demo_relay',
                           item.owner, item.schema_name, item.kind);
        END IF;
    END LOOP;

    -- Memberships: it acts as no other role.
    FOR item IN
        SELECT m.roleid::regrole AS name FROM pg_auth_members m WHERE m.member = demo
    LOOP
        EXECUTE format('REVOKE %s FROM demo_relay', item.name);
    END LOOP;
END
$$;

DROP POLICY IF EXISTS demo_relay_rate_limits ON public.rate_limits;

-- The demo's counters, apart from production's (named so that the isolation spec's
-- check, exactly three tables LIKE 'demo_%', still holds). Unlogged like rate_limits (0121):
-- after a crash they start afresh, which costs at most a minute of a limit. Row level
-- security on and no policy: only the function (run as its owner) touches it.
CREATE UNLOGGED TABLE IF NOT EXISTS public.rate_limits_demo (
    bucket_key   text        NOT NULL,
    window_start timestamptz NOT NULL,
    count        integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket_key, window_start),
    CONSTRAINT rate_limits_demo_count_check CHECK (count >= 0)
);
CREATE INDEX IF NOT EXISTS idx_rate_limits_demo_window_start
    ON public.rate_limits_demo (window_start);
ALTER TABLE public.rate_limits_demo ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.rate_limits_demo FROM PUBLIC;
DO $$
DECLARE
    api_role text;
BEGIN
    FOREACH api_role IN ARRAY ARRAY['anon', 'authenticated', 'demo_relay'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = api_role) THEN
            EXECUTE format('REVOKE ALL ON public.rate_limits_demo FROM %I', api_role);
        END IF;
    END LOOP;
END
$$;

-- Earlier versions of the function counted in rate_limits under `demo:`: those
-- windows are at most a minute old and now live in rate_limits_demo.
DELETE FROM public.rate_limits WHERE bucket_key LIKE 'demo:%';

GRANT USAGE ON SCHEMA public TO demo_relay;
GRANT SELECT ON public.demo_activities TO demo_relay;
GRANT SELECT, INSERT, UPDATE ON public.demo_voice_sessions TO demo_relay;
GRANT SELECT, INSERT ON public.demo_interactions TO demo_relay;

-- Counts one request of the demo relay against `demo:` || p_key in rate_limits_demo,
-- allowing p_limit a minute, in the same fixed windows as every other rate limit (voice_edge_shared's
-- ratelimit module). Answers one row: the request's position in the window, or NULL
-- when the window was already full (then nothing was written), and the seconds left
-- in the window. The first request of a window sweeps a batch of expired windows.
CREATE OR REPLACE FUNCTION public.demo_rate_limit_hit(p_key text, p_limit bigint)
RETURNS TABLE (count bigint, seconds_left bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_window timestamptz := date_trunc('minute', now());
    v_count bigint;
BEGIN
    IF p_key IS NULL OR p_limit IS NULL OR p_limit < 1
       OR p_key !~ ('^(sessions|interactions|sdp|mint):('
                    || 'user:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
                    || '|ip:((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}'
                    || '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
                    || '|ip:unknown|ip6:[0-9a-f:]{2,39}/64|anon)$') THEN
        RAISE EXCEPTION 'demo_rate_limit_hit: not a key of the demo relay, or not a positive limit'
            USING ERRCODE = '22023';
    END IF;
    INSERT INTO public.rate_limits_demo AS r (bucket_key, window_start, count)
    VALUES ('demo:' || p_key, v_window, 1)
    ON CONFLICT (bucket_key, window_start)
    DO UPDATE SET count = r.count + 1 WHERE r.count < p_limit
    RETURNING r.count INTO v_count;
    IF v_count = 1 THEN
        DELETE FROM public.rate_limits_demo
         WHERE ctid = ANY (ARRAY (
               SELECT x.ctid FROM public.rate_limits_demo x
                WHERE x.window_start < v_window - interval '1 minute'
                LIMIT 500 FOR UPDATE SKIP LOCKED));
    END IF;
    RETURN QUERY SELECT v_count,
                        ceil(extract(epoch FROM v_window + interval '1 minute' - now()))::bigint;
END
$fn$;

-- Functions are executable by PUBLIC by default, and Supabase's default privileges
-- grant new functions in public to its API roles: only the demo relay may count here.
REVOKE ALL ON FUNCTION public.demo_rate_limit_hit(text, bigint) FROM PUBLIC;
DO $$
DECLARE
    api_role text;
BEGIN
    FOREACH api_role IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = api_role) THEN
            EXECUTE format('REVOKE ALL ON FUNCTION public.demo_rate_limit_hit(text, bigint) FROM %I',
                           api_role);
        END IF;
    END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION public.demo_rate_limit_hit(text, bigint) TO demo_relay;

COMMIT;
