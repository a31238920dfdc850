#!/usr/bin/env bash
# A throwaway local PostgreSQL for `make up`: data under .local/pg (git-ignored), listening
# on 127.0.0.1 only, with Supabase's auth schema stood in for (sql/local), every
# migration and the demo seed applied, and the demo relay's role given a password.
# With pg_cron installed (Debian: postgresql-15-cron; scripts/setup.sh installs it) the
# server preloads it, the extension is created in the app's database before the
# migrations, and 0162 schedules the retention sweep job there, as on Supabase
# (`SELECT * FROM cron.job` shows it).
#
#   scripts/localdb.sh start    start it (creating it first if needed) and apply sql/;
#                               when it is already running, just re-apply (idempotent)
#   scripts/localdb.sh stop     stop it (the data stays)
#   scripts/localdb.sh status   say whether it runs (exit 0) or not (exit 3)
#   scripts/localdb.sh url      print the superuser connection string (`db_url`)
#   scripts/localdb.sh demo-url print demo_relay's connection string (`demo_db_url`)
#   scripts/localdb.sh host     print `127.0.0.1:<port>` (`db_host`)
#   scripts/localdb.sh ca       print the path of the CA that signs its certificate
#                               (with LOCAL_PG_TLS=1: `--variable db_ca_cert=@<path>`)
#   scripts/localdb.sh env      print them as SPIN_VARIABLE_* shell exports (with
#                               LOCAL_PG_TLS=1, db_ca_cert too):
#                               eval "$(scripts/localdb.sh env)"
#   scripts/localdb.sh destroy  stop it and delete .local/pg
#
# PGPORT picks the port (default 54329). When run as root the server runs as the
# `postgres` user, which PostgreSQL requires. The passwords are fixed and public: this
# database is for local development only.
#
# LOCAL_PG_TLS=1 runs it as Supabase runs the hosted one: TLS only (`ssl=on`, and
# `hostssl` the only way in over TCP), with a server certificate for 127.0.0.1 signed by
# a CA made here once (.local/pg/tls/ca.crt, openssl). The app's connection strings then
# say `sslmode=require` and the app is given the CA as `db_ca_cert`; psql here verifies
# the server with it (`sslmode=verify-full`). Without it (the default), plain TCP on
# loopback, as before. `start` switches a running server to the mode asked for.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="$root/.local/pg"
data="$base/data"
log="$base/postgres.log"
port="${PGPORT:-54329}"
database="voice_edge"
superuser_password="postgres"
demo_relay_password="demo-relay-local"
tls_dir="$base/tls"
mode_file="$base/mode"
if [[ "${LOCAL_PG_TLS:-}" == 1 ]]; then mode=tls; else mode=plain; fi

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

# Whether this machine's PostgreSQL has pg_cron (Debian's postgresql-15-cron).
has_pg_cron() {
    [[ -f "$(pg_config --pkglibdir 2>/dev/null || echo /nonexistent)/pg_cron.so" ]] \
        || ls /usr/lib/postgresql/*/lib/pg_cron.so >/dev/null 2>&1
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

# The mode the server was last started in (`plain` or `tls`).
running_mode() {
    if is_running && [[ -f "$mode_file" ]]; then cat "$mode_file"; else echo "$mode"; fi
}

# What the app's connection strings ask for: TLS when the server insists on it.
app_sslmode() {
    if [[ "$(running_mode)" == tls ]]; then echo require; else echo disable; fi
}

superuser_url() {
    echo "postgres://postgres:${superuser_password}@127.0.0.1:$(running_port)/${1:-$database}?sslmode=$(app_sslmode)"
}

demo_relay_url() {
    echo "postgres://demo_relay:${demo_relay_password}@127.0.0.1:$(running_port)/$database?sslmode=$(app_sslmode)"
}

# The superuser's URL for psql here: with TLS, libpq verifies the server against the CA.
psql_url() {
    if [[ "$(running_mode)" == tls ]]; then
        echo "postgres://postgres:${superuser_password}@127.0.0.1:$(running_port)/${1:-$database}?sslmode=verify-full&sslrootcert=$tls_dir/ca.crt"
    else
        superuser_url "$@"
    fi
}

run_sql() {
    psql "$(psql_url)" --no-psqlrc --quiet -v ON_ERROR_STOP=1 \
        -c 'SET client_min_messages = warning' "$@"
}

# A CA and a server certificate it signs for 127.0.0.1 and localhost, made once.
make_certificates() {
    [[ -f "$tls_dir/server.crt" && -f "$tls_dir/ca.crt" ]] && return
    require openssl
    say "making a local CA and the server's certificate in $tls_dir"
    mkdir -p "$tls_dir"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
    openssl req -x509 -nodes "${ec[@]}" -keyout "$tls_dir/ca.key" -out "$tls_dir/ca.crt" \
        -days 825 -subj "/O=voice-edge local/CN=voice-edge local database CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        >"$tls_dir/server.ext"
    openssl req -new -nodes "${ec[@]}" -keyout "$tls_dir/server.key" -out "$tls_dir/server.csr" \
        -subj "/O=voice-edge local/CN=127.0.0.1" 2>/dev/null
    openssl x509 -req -in "$tls_dir/server.csr" -CA "$tls_dir/ca.crt" -CAkey "$tls_dir/ca.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days 825 -extfile "$tls_dir/server.ext" \
        -out "$tls_dir/server.crt" 2>/dev/null
    rm -f "$tls_dir/server.csr" "$tls_dir/server.ext"
    # PostgreSQL refuses a key others can read; the server's user must own it.
    chmod 600 "$tls_dir/server.key" "$tls_dir/ca.key"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres:postgres "$tls_dir" "$tls_dir/server.key" "$tls_dir/server.crt"
    fi
}

# pg_hba.conf for the mode: the socket always; TCP on loopback plain, or TLS only.
write_hba() {
    local tcp=host
    [[ "$mode" == tls ]] && tcp=hostssl
    printf '%s\n' "# written by scripts/localdb.sh ($mode)" \
        "local  all  all                scram-sha-256" \
        "$tcp  all  all  127.0.0.1/32  scram-sha-256" >"$data/pg_hba.conf"
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
    if is_running && [[ "$(running_mode)" != "$mode" ]]; then
        say "running without the mode asked for ($(running_mode), not $mode): restarting"
        port="$(running_port)"
        as_server_user pg_ctl stop -D "$data" -m fast -w >/dev/null
    fi
    if is_running && has_pg_cron && [[ ! -f "$base/pg_cron" ]]; then
        say "running without pg_cron, which is now installed: restarting"
        port="$(running_port)"
        as_server_user pg_ctl stop -D "$data" -m fast -w >/dev/null
    fi
    if is_running; then
        say "already running on 127.0.0.1:$(running_port) ($mode); re-applying sql/"
    else
        local options="-p $port -c listen_addresses=127.0.0.1 -k $data"
        if has_pg_cron; then
            options+=" -c shared_preload_libraries=pg_cron -c cron.database_name=$database"
            options+=" -c cron.use_background_workers=on -c max_worker_processes=16"
        fi
        if [[ "$mode" == tls ]]; then
            make_certificates
            options+=" -c ssl=on -c ssl_cert_file=$tls_dir/server.crt -c ssl_key_file=$tls_dir/server.key"
        fi
        write_hba
        say "starting on 127.0.0.1:$port ($mode)"
        if ! as_server_user pg_ctl start -D "$data" -l "$log" -w -t 60 -o "$options" >/dev/null; then
            tail -n 20 "$log" >&2 || true
            die "the server did not start (is port $port taken? set PGPORT)"
        fi
        echo "$mode" >"$mode_file"
        if has_pg_cron; then touch "$base/pg_cron"; else rm -f "$base/pg_cron"; fi
    fi

    export PGPASSWORD="$superuser_password"
    if [[ "$(psql "$(psql_url postgres)" --no-psqlrc -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$database'")" != 1 ]]; then
        psql "$(psql_url postgres)" --no-psqlrc --quiet -c "CREATE DATABASE $database"
    fi
    say "applying sql/local/supabase_auth.sql (local stand-in for Supabase's auth schema)"
    run_sql -f "$root/sql/local/supabase_auth.sql" >/dev/null
    if [[ -f "$base/pg_cron" ]]; then
        say "pg_cron: creating the extension (the migrations schedule the retention sweep)"
        run_sql -c "CREATE EXTENSION IF NOT EXISTS pg_cron"
    fi
    DB_CA_CERT= "$root/scripts/migrate.sh" "$(psql_url)" | sed 's/^/localdb: /'
    if [[ "$(run_sql -tAc "SELECT to_regclass('public.demo_activities') IS NOT NULL")" == t ]]; then
        for seed in "$root"/sql/seed/*.sql; do
            say "seeding $(basename "$seed")"
            run_sql -f "$seed"
        done
        run_sql -c "ALTER ROLE demo_relay WITH LOGIN PASSWORD '$demo_relay_password'"
    else
        say "the demo system was removed (sql/removal): no demo seed"
    fi
    if [[ -f "$base/pg_cron" ]]; then
        say "pg_cron jobs: $(run_sql -tAc "SELECT string_agg(jobname || ' (' || schedule || ')', ', ') FROM cron.job")"
    fi

    say "ready"
    echo "  db_url      = $(superuser_url)"
    echo "  demo_db_url = $(demo_relay_url)"
    echo "  db_host     = 127.0.0.1:$(running_port)"
    if [[ "$mode" == tls ]]; then
        echo "  db_ca_cert  = @$tls_dir/ca.crt   (TLS only: hostssl, verified against this CA)"
    fi
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
        say "running on 127.0.0.1:$(running_port) ($(running_mode)), data in $data"
    else
        say "not running"
        exit 3
    fi
}

env_exports() {
    echo "export SPIN_VARIABLE_DB_URL='$(superuser_url)'"
    echo "export SPIN_VARIABLE_DEMO_DB_URL='$(demo_relay_url)'"
    echo "export SPIN_VARIABLE_DB_HOST='127.0.0.1:$(running_port)'"
    if [[ "$(running_mode)" == tls ]]; then
        echo "export SPIN_VARIABLE_DB_CA_CERT='$(cat "$tls_dir/ca.crt")'"
    else
        echo "export SPIN_VARIABLE_DB_CA_CERT=''"
    fi
}

ca_path() {
    [[ -f "$tls_dir/ca.crt" ]] || die "no local CA yet: run LOCAL_PG_TLS=1 $0 start"
    echo "$tls_dir/ca.crt"
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
    ca) ca_path ;;
    env) env_exports ;;
    destroy) destroy ;;
    *)
        echo "usage: [LOCAL_PG_TLS=1] $0 start|stop|status|url|demo-url|host|ca|env|destroy" >&2
        exit 2
        ;;
esac
