#!/usr/bin/env bash
# `make test-e2e`: the end-to-end tests of tests/e2e, with the clients the users run
# (supabase-js, standardwebhooks, jose, headless Chromium through playwright-core),
# against the built app.
#
# It installs what is missing (tests/e2e's npm packages with `npm ci`; Debian's chromium
# with apt-get), then starts, each on a free loopback port: a throwaway PostgreSQL under
# target/e2e/ (Supabase's auth stand-in, the migrations, the demo seed, demo_relay's
# password), the OpenAI stand-in, and the app in our Spin-compatible host with
# SPIN_VARIABLE_*; runs `node --test`; and always stops all three and removes the data.
#
# Needs `make build` first (the components, target/{release,host}/voice-edge-host and
# openai-standin). E2E_KEEP=1 keeps target/e2e/run-* and its logs for a look afterwards.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
e2e="$root/tests/e2e"
say() { echo "e2e: $*"; }
die() { echo "e2e: $*" >&2; exit 1; }

# --- tools ------------------------------------------------------------------------------

command -v node >/dev/null 2>&1 || die "node is not installed (Node 20 or later: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (apt-get install npm)"
for tool in initdb pg_ctl postgres psql; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (run scripts/setup.sh)"
done

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
    [[ "$(id -u)" == 0 ]] || die "$chromium is missing: sudo apt-get install chromium"
    say "installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

find_binary() {
    local name="$1"
    for candidate in "$root/target/release/$name" "$root/target/host/$name"; do
        [[ -x "$candidate" ]] && { echo "$candidate"; return 0; }
    done
    die "$name is not built: run make build"
}
host_bin="$(find_binary voice-edge-host)"
standin_bin="$(find_binary openai-standin)"
for source in $(python3 - "$root/spin.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as handle:
    manifest = tomllib.load(handle)
for component in manifest["component"].values():
    print(component["source"])
PY
); do
    [[ -f "$root/$source" ]] || die "$source is not built: run make build"
done

say "npm ci in tests/e2e"
(cd "$e2e" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)

# --- the run's directory and its cleanup --------------------------------------------------

mkdir -p "$root/target/e2e"
run_dir="$(mktemp -d "$root/target/e2e/run-XXXXXX")"
data="$run_dir/pg"
pids=()

as_server_user() {
    if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -f "$data/postmaster.pid" ]]; then
        as_server_user pg_ctl stop -D "$data" -m fast -w >/dev/null 2>&1 || true
    fi
    if ((status != 0)); then
        for log in "$run_dir"/*.log; do
            [[ -f "$log" ]] || continue
            echo "---- last lines of $(basename "$log")" >&2
            tail -n 30 "$log" >&2
        done
    fi
    if [[ "${E2E_KEEP:-0}" == 1 ]]; then
        say "kept $run_dir"
    else
        rm -rf "$run_dir"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports, chosen by the kernel.
read -r pg_port standin_port app_port page_port < <(python3 - <<'PY'
import socket
sockets = [socket.socket() for _ in range(4)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))
for s in sockets:
    s.close()
PY
)

# --- PostgreSQL ---------------------------------------------------------------------------

superuser_password="e2e-superuser-$RANDOM$RANDOM"
demo_relay_password="e2e-demo-relay-$RANDOM$RANDOM"
database=voice_edge_e2e
say "PostgreSQL on 127.0.0.1:$pg_port"
if [[ "$(id -u)" == 0 ]]; then
    chown postgres:postgres "$run_dir"
    chmod 755 "$run_dir"
fi
printf '%s\n' "$superuser_password" >"$run_dir/.pw"
[[ "$(id -u)" == 0 ]] && chown postgres:postgres "$run_dir/.pw"
as_server_user initdb --pgdata="$data" --username=postgres --auth=scram-sha-256 \
    --pwfile="$run_dir/.pw" --encoding=UTF8 --locale=C >"$run_dir/initdb.log" 2>&1 \
    || die "initdb failed (see above)"
rm -f "$run_dir/.pw"
as_server_user pg_ctl start -D "$data" -l "$run_dir/postgres.log" -w -t 60 \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $data -c fsync=off" >/dev/null \
    || die "PostgreSQL did not start"

db_url="postgres://postgres:$superuser_password@127.0.0.1:$pg_port/$database?sslmode=disable"
demo_db_url="postgres://demo_relay:$demo_relay_password@127.0.0.1:$pg_port/$database?sslmode=disable"
psql "postgres://postgres:$superuser_password@127.0.0.1:$pg_port/postgres?sslmode=disable" \
    --no-psqlrc --quiet -c "CREATE DATABASE $database" >/dev/null
run_sql() { psql "$db_url" --no-psqlrc --quiet -v ON_ERROR_STOP=1 -c 'SET client_min_messages = warning' "$@"; }
run_sql -f "$root/sql/local/supabase_auth.sql" >/dev/null
"$root/scripts/migrate.sh" "$db_url" >"$run_dir/migrate.log"
for seed in "$root"/sql/seed/*.sql; do
    run_sql -f "$seed" >/dev/null
done
run_sql -c "ALTER ROLE demo_relay WITH LOGIN PASSWORD '$demo_relay_password'" >/dev/null

# --- secrets of this run ------------------------------------------------------------------

eval "$(python3 - <<'PY'
import base64, secrets
print("jwt_secret=" + secrets.token_urlsafe(48))
print("webhook_old=whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
print("webhook_new=whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
print("openai_key=sk-e2e-" + secrets.token_hex(12))
PY
)"

# --- the OpenAI stand-in and the app ------------------------------------------------------

say "OpenAI stand-in on 127.0.0.1:$standin_port"
"$standin_bin" --listen "127.0.0.1:$standin_port" --api-key "$openai_key" >"$run_dir/standin.log" 2>&1 &
pids+=($!)

page_origin="http://127.0.0.1:$page_port"
runtime="${VOICE_EDGE_RUNTIME:-host}"
case "$runtime" in
    host) say "the app on 127.0.0.1:$app_port through voice-edge-host (allowed origin $page_origin)" ;;
    spin)
        spin_bin="${SPIN_BIN:-$(command -v spin || true)}"
        [[ -x "$spin_bin" ]] || die "VOICE_EDGE_RUNTIME=spin but no Spin: set SPIN_BIN or put spin on the PATH"
        say "the app on 127.0.0.1:$app_port through $("$spin_bin" --version) (allowed origin $page_origin)"
        ;;
    *) die "VOICE_EDGE_RUNTIME=$runtime: expected host or spin" ;;
esac
(
    cd "$run_dir"
    export SPIN_VARIABLE_DB_URL="$db_url"
    export SPIN_VARIABLE_DEMO_DB_URL="$demo_db_url"
    export SPIN_VARIABLE_DB_HOST="127.0.0.1:$pg_port"
    export SPIN_VARIABLE_SUPABASE_JWT_SECRET="$jwt_secret"
    export SPIN_VARIABLE_CLASSCONNECT_WEBHOOK_SECRET="$webhook_new $webhook_old"
    export SPIN_VARIABLE_OPENAI_API_KEY="$openai_key"
    export SPIN_VARIABLE_OPENAI_BASE_URL="http://127.0.0.1:$standin_port"
    export SPIN_VARIABLE_ALLOWED_ORIGINS="$page_origin"
    if [[ "$runtime" == spin ]]; then
        # Component output to Spin's own stdout too (the app log the tests read). Spin
        # 4.1 refuses the documented empty --log-dir, so the files go to the run's folder.
        exec "$spin_bin" up -f "$root/spin.toml" --listen "127.0.0.1:$app_port" \
            --log-dir "$run_dir/spin-logs" --state-dir "$run_dir/spin-state"
    fi
    exec "$host_bin" -f "$root/spin.toml" --listen "127.0.0.1:$app_port" \
        --cache-dir "$root/target/voice-edge-host-cache"
) >"$run_dir/app.log" 2>&1 &
pids+=($!)

wait_for() {
    local url="$1" name="$2"
    for _ in $(seq 1 600); do
        if python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$url" 2>/dev/null; then
            return 0
        fi
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null || die "$name exited before it answered"
        done
        sleep 0.1
    done
    die "$name did not answer $url within 60 s"
}
wait_for "http://127.0.0.1:$standin_port/__standin/health" "the OpenAI stand-in"
wait_for "http://127.0.0.1:$app_port/functions/v1/health" "the app"

# --- the tests ----------------------------------------------------------------------------

# supabase-js makes a Realtime client, which needs WebSocket: built into Node 22, behind
# --experimental-websocket in Node 20. One test file at a time: they share the database
# and the rollout flag.
say "running node --test"
set +e
(
    cd "$e2e"
    E2E_BASE_URL="http://127.0.0.1:$app_port" \
    E2E_DB_URL="$db_url" \
    E2E_JWT_SECRET="$jwt_secret" \
    E2E_WEBHOOK_SECRET_NEW="$webhook_new" \
    E2E_WEBHOOK_SECRET_OLD="$webhook_old" \
    E2E_OPENAI_KEY="$openai_key" \
    E2E_STANDIN_URL="http://127.0.0.1:$standin_port" \
    E2E_PAGE_PORT="$page_port" \
    E2E_APP_LOG="$run_dir/app.log" \
    E2E_CHROMIUM="$chromium" \
    node --experimental-websocket --test --test-concurrency=1 --test-reporter=spec tests/
)
status=$?
set -e
exit "$status"
