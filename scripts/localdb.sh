#!/usr/bin/env bash
# A throwaway local PostgreSQL for `make up`: data under .local/pg (git-ignored), listening
# on 127.0.0.1 only, with Supabase's auth schema stood in for (sql/local), every
# migration and the demo seed applied, and the demo relay's role given a password.
#
#   scripts/localdb.sh start    start it (creating it first if needed) and apply sql/;
#                               when it is already running, just re-apply (idempotent)
#   scripts/localdb.sh stop     stop it (the data stays)
#   scripts/localdb.sh status   say whether it runs (exit 0) or not (exit 3)
#   scripts/localdb.sh url      print the superuser connection string (`db_url`)
#   scripts/localdb.sh demo-url print demo_relay's connection string (`demo_db_url`)
#   scripts/localdb.sh host     print `127.0.0.1:<port>` (`db_host`)
#   scripts/localdb.sh env      print all three as SPIN_VARIABLE_* shell exports:
#                               eval "$(scripts/localdb.sh env)"
#   scripts/localdb.sh destroy  stop it and delete .local/pg
#
# PGPORT picks the port (default 54329). When run as root the server runs as the
# `postgres` user, which PostgreSQL requires. The passwords are fixed and public: this
# database is for local development only.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="$root/.local/pg"
data="$base/data"
log="$base/postgres.log"
port="${PGPORT:-54329}"
database="voice_edge"
superuser_password="postgres"
demo_relay_password="demo-relay-local"

say() { echo "localdb: $*"; }
die() { echo "localdb: $*" >&2; exit 1; }

# Runs a server-side command as the user PostgreSQL must run as.
as_server_user() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

require() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (PostgreSQL 15 server and client are needed)"
    done
}

is_running() {
    [[ -f "$data/PG_VERSION" ]] && as_server_user pg_ctl status -D "$data" >/dev/null 2>&1
}

# The port of the running server (from its pid file), else the configured one.
running_port() {
    if is_running && [[ -f "$data/postmaster.pid" ]]; then
        sed -n 4p "$data/postmaster.pid"
    else
        echo "$port"
    fi
}

superuser_url() {
    echo "postgres://postgres:${superuser_password}@127.0.0.1:$(running_port)/${1:-$database}?sslmode=disable"
}

demo_relay_url() {
    echo "postgres://demo_relay:${demo_relay_password}@127.0.0.1:$(running_port)/$database?sslmode=disable"
}

run_sql() {
    psql "$(superuser_url)" --no-psqlrc --quiet -v ON_ERROR_STOP=1 \
        -c 'SET client_min_messages = warning' "$@"
}

init_cluster() {
    say "creating a cluster in $data"
    mkdir -p "$base"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres:postgres "$base"
    fi
    chmod 700 "$base"
    local password_file="$base/.superuser-password"
    printf '%s\n' "$superuser_password" >"$password_file"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres:postgres "$password_file"
    fi
    as_server_user initdb --pgdata="$data" --username=postgres --auth=scram-sha-256 \
        --pwfile="$password_file" --encoding=UTF8 --locale=C >/dev/null
    rm -f "$password_file"
}

start() {
    require initdb pg_ctl postgres psql
    [[ -f "$data/PG_VERSION" ]] || init_cluster
    if is_running; then
        say "already running on 127.0.0.1:$(running_port); re-applying sql/"
    else
        say "starting on 127.0.0.1:$port"
        if ! as_server_user pg_ctl start -D "$data" -l "$log" -w -t 60 \
            -o "-p $port -c listen_addresses=127.0.0.1 -k $data" >/dev/null; then
            tail -n 20 "$log" >&2 || true
            die "the server did not start (is port $port taken? set PGPORT)"
        fi
    fi

    export PGPASSWORD="$superuser_password"
    if [[ "$(psql "$(superuser_url postgres)" --no-psqlrc -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$database'")" != 1 ]]; then
        psql "$(superuser_url postgres)" --no-psqlrc --quiet -c "CREATE DATABASE $database"
    fi
    say "applying sql/local/supabase_auth.sql (local stand-in for Supabase's auth schema)"
    run_sql -f "$root/sql/local/supabase_auth.sql" >/dev/null
    "$root/scripts/migrate.sh" "$(superuser_url)" | sed 's/^/localdb: /'
    for seed in "$root"/sql/seed/*.sql; do
        say "seeding $(basename "$seed")"
        run_sql -f "$seed"
    done
    run_sql -c "ALTER ROLE demo_relay WITH LOGIN PASSWORD '$demo_relay_password'"

    say "ready"
    echo "  db_url      = $(superuser_url)"
    echo "  demo_db_url = $(demo_relay_url)"
    echo "  db_host     = 127.0.0.1:$(running_port)"
}

stop() {
    if is_running; then
        as_server_user pg_ctl stop -D "$data" -m fast -w >/dev/null
        say "stopped"
    else
        say "not running"
    fi
}

status() {
    if is_running; then
        say "running on 127.0.0.1:$(running_port), data in $data"
    else
        say "not running"
        exit 3
    fi
}

env_exports() {
    echo "export SPIN_VARIABLE_DB_URL='$(superuser_url)'"
    echo "export SPIN_VARIABLE_DEMO_DB_URL='$(demo_relay_url)'"
    echo "export SPIN_VARIABLE_DB_HOST='127.0.0.1:$(running_port)'"
}

destroy() {
    stop
    rm -rf "$base"
    say "removed $base"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    url) superuser_url ;;
    demo-url) demo_relay_url ;;
    host) echo "127.0.0.1:$(running_port)" ;;
    env) env_exports ;;
    destroy) destroy ;;
    *)
        echo "usage: $0 start|stop|status|url|demo-url|host|env|destroy" >&2
        exit 2
        ;;
esac
