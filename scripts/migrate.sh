#!/usr/bin/env bash
# Applies sql/migrations/NNNN_*.sql to a database with psql, in name order, one progress
# line per file, stopping at the first error (`make migrate DB_URL=…`).
#
#   scripts/migrate.sh 'postgres://user:password@host:5432/postgres'
#
# Every migration is idempotent and runs in its own transaction, so re-running this
# after a failure (or on an up-to-date database) is safe. The connection string is
# never printed.
#
# DB_CA_CERT (the PEM of the app's `db_ca_cert`; the deploy workflow has it) makes psql
# verify the server as the app does: `sslmode=verify-full` with that CA as `sslrootcert`
# (libpq's `require` alone encrypts without checking who answers). A connection string
# whose sslmode allows plain text is then refused. Only sql/migrations is applied: sql/local is for local databases and
# must never reach a Supabase project; sql/seed is applied separately when wanted.
set -euo pipefail

db_url="${1:-${DB_URL:-}}"
if [[ -z "$db_url" ]]; then
    echo "usage: $0 DB_URL   (or DB_URL=… $0)" >&2
    exit 2
fi
if ! command -v psql >/dev/null 2>&1; then
    echo "migrate: psql is not installed (Debian: apt-get install postgresql-client)" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ -n "${DB_CA_CERT:-}" ]]; then
    private="$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/voice-edge-migrate.XXXXXX")"
    trap 'rm -rf "$private"' EXIT
    printf '%s\n' "$DB_CA_CERT" >"$private/ca.crt"
    if ! db_url="$(URL="$db_url" CA="$private/ca.crt" python3 - <<'PY'
import os, sys
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
url = urlsplit(os.environ["URL"])
if url.scheme not in ("postgres", "postgresql"):
    sys.exit("migrate: with DB_CA_CERT set, the connection string must be a postgres:// URL")
params = parse_qsl(url.query, keep_blank_values=True)
modes = [value for key, value in params if key == "sslmode"]
if any(mode not in ("prefer", "require", "verify-ca", "verify-full") for mode in modes):
    sys.exit("migrate: with DB_CA_CERT set, sslmode=%s would allow plain text: use sslmode=require" % modes[-1])
params = [(k, v) for k, v in params if k not in ("sslmode", "sslrootcert")]
params += [("sslmode", "verify-full"), ("sslrootcert", os.environ["CA"])]
print(urlunsplit(url._replace(query=urlencode(params))))
PY
    )"; then
        exit 2
    fi
    echo "migrate: verifying the server against DB_CA_CERT (sslmode=verify-full)"
fi
shopt -s nullglob
migrations=("$root"/sql/migrations/[0-9][0-9][0-9][0-9]_*.sql)
if (( ${#migrations[@]} == 0 )); then
    echo "migrate: no migrations in $root/sql/migrations" >&2
    exit 1
fi

# After sql/removal/remove_demo_system.sql, the demo's own files stay out unless asked
# for with RESTORE_DEMO=1 (sql/removal/demo_files.txt lists them).
demo_removed="$(psql "$db_url" --no-psqlrc -tA -c \
    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'voice_edge_removed_components'" 2>/dev/null || echo 0)"
if [[ "$demo_removed" = 1 ]]; then
    demo_removed="$(psql "$db_url" --no-psqlrc -tA -c \
        "SELECT count(*) FROM public.voice_edge_removed_components WHERE component = 'demo'")"
fi
skip_demo=0
if [[ "$demo_removed" = 1 ]]; then
    if [[ "${RESTORE_DEMO:-0}" = 1 ]]; then
        echo "migrate: RESTORE_DEMO=1: the demo system's migrations are applied again"
    else
        echo "migrate: the demo system was removed (sql/removal): its migrations are skipped (RESTORE_DEMO=1 brings it back)"
        skip_demo=1
    fi
fi
is_demo_file() {
    grep -qx "sql/migrations/$1" "$root/sql/removal/demo_files.txt"
}

count=${#migrations[@]}
index=0
for migration in "${migrations[@]}"; do
    index=$((index + 1))
    name="$(basename "$migration")"
    if (( skip_demo )) && is_demo_file "$name"; then
        printf 'migrate: [%d/%d] %s skipped (demo removed)\n' "$index" "$count" "$name"
        continue
    fi
    printf 'migrate: [%d/%d] %s\n' "$index" "$count" "$name"
    # NOTICEs ("already exists, skipping") are the idempotence at work, not news.
    if ! psql "$db_url" --no-psqlrc --quiet -v ON_ERROR_STOP=1 \
        -c 'SET client_min_messages = warning' -f "$migration"; then
        echo "migrate: $name failed; it was rolled back and later migrations were not applied" >&2
        exit 1
    fi
done
if [[ "$demo_removed" = 1 && "${RESTORE_DEMO:-0}" = 1 ]]; then
    psql "$db_url" --no-psqlrc --quiet -v ON_ERROR_STOP=1 \
        -c "DELETE FROM public.voice_edge_removed_components WHERE component = 'demo'"
    echo "migrate: the demo system is back (apply sql/seed for its activities)"
fi
echo "migrate: $count migrations applied"
