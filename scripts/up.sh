#!/usr/bin/env bash
# `make up`: everything a person needs to try the app locally.
#  1. a throwaway PostgreSQL under .local/pg with the migrations and demo data applied;
#  2. development secrets in .local/dev.env (made once, reused);
#  3. the OpenAI stand-in on 127.0.0.1:9100 unless OPENAI_API_KEY is set;
#  4. the app on http://127.0.0.1:3000, served by real Spin (`spin up`) when Spin is
#     installed (production's runtime), else by our Spin-compatible host;
#     RUNTIME=host or RUNTIME=spin chooses.
# LOCAL_PG_TLS=1 runs the database as Supabase runs it: TLS only, with a certificate
# signed by a local CA that the app is given as `db_ca_cert` (--variable
# db_ca_cert=@.local/pg/tls/ca.crt), so every connection is verified TLS.
set -euo pipefail
cd "$(dirname "$0")/.."

LISTEN=${LISTEN:-127.0.0.1:3000}
SPIN_BIN=${SPIN_BIN:-$(scripts/find-spin.sh)}
case "${RUNTIME:-}" in
  "") if [ -n "$SPIN_BIN" ] && too_old=$(scripts/spin-version.sh check "$SPIN_BIN" 2>&1); then
        RUNTIME=spin; WHY="Spin is installed ($SPIN_BIN); RUNTIME=host make up uses our host instead"
      elif [ -n "$SPIN_BIN" ]; then
        echo "make up: $too_old" >&2
        RUNTIME=host; WHY="the Spin found is older than $(scripts/spin-version.sh min) (above)"
      else
        RUNTIME=host; WHY="no Spin was found (SPIN_BIN, spin on the PATH, ../shared/tools)"
      fi ;;
  spin) [ -n "$SPIN_BIN" ] || { echo "make up: RUNTIME=spin but no Spin was found: set SPIN_BIN" >&2; exit 2; }
        too_old=$(scripts/spin-version.sh check "$SPIN_BIN" 2>&1) || { echo "make up: $too_old" >&2; exit 2; }
        WHY="RUNTIME=spin" ;;
  host) WHY="RUNTIME=host" ;;
  *) echo "make up: RUNTIME=$RUNTIME: expected spin or host" >&2; exit 2 ;;
esac
STANDIN_LISTEN=${STANDIN_LISTEN:-127.0.0.1:9100}
mkdir -p .local

scripts/localdb.sh start
DB_URL=$(scripts/localdb.sh url)
DEMO_DB_URL=$(scripts/localdb.sh demo-url)
DB_HOST=$(scripts/localdb.sh host)
CA_VARIABLE=()
DB_TLS="plain TCP on loopback (LOCAL_PG_TLS=1 for TLS only, as on Supabase)"
if [ "${LOCAL_PG_TLS:-}" = 1 ]; then
  CA_VARIABLE=(--variable "db_ca_cert=@$(scripts/localdb.sh ca)")
  DB_TLS="TLS only, verified against $(scripts/localdb.sh ca) (db_ca_cert)"
fi

if [ ! -f .local/dev.env ]; then
  python3 - <<'PY' > .local/dev.env
import base64, secrets
print("# development secrets for `make up`; never use them anywhere else")
print("SUPABASE_JWT_SECRET=" + secrets.token_urlsafe(48))
print("CLASSCONNECT_WEBHOOK_SECRET=whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
PY
  chmod 600 .local/dev.env
fi
{ grep -v '^DB_URL=' .local/dev.env; echo "DB_URL=$DB_URL"; } > .local/dev.env.tmp && mv .local/dev.env.tmp .local/dev.env
set -a; . ./.local/dev.env; set +a

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

if [ -z "${OPENAI_API_KEY:-}" ]; then
  echo "==> OPENAI_API_KEY is not set: starting the OpenAI stand-in on http://$STANDIN_LISTEN"
  target/release/openai-standin --listen "$STANDIN_LISTEN" &
  pids+=($!)
  OPENAI_API_KEY="sk-local-standin"
  OPENAI_BASE_URL="http://$STANDIN_LISTEN"
fi

export SPIN_VARIABLE_DB_URL="$DB_URL"
export SPIN_VARIABLE_DEMO_DB_URL="$DEMO_DB_URL"
export SPIN_VARIABLE_DB_HOST="$DB_HOST"
export SPIN_VARIABLE_SUPABASE_JWT_SECRET="$SUPABASE_JWT_SECRET"
export SPIN_VARIABLE_CLASSCONNECT_WEBHOOK_SECRET="$CLASSCONNECT_WEBHOOK_SECRET"
export SPIN_VARIABLE_OPENAI_API_KEY="$OPENAI_API_KEY"
export SPIN_VARIABLE_OPENAI_BASE_URL="${OPENAI_BASE_URL:-https://api.openai.com}"

if [ "$RUNTIME" = spin ]; then
  RUNTIME_NAME="$("$SPIN_BIN" --version)"
else
  RUNTIME_NAME="voice-edge-host (our Spin-compatible host, target/release/voice-edge-host)"
fi

cat <<MSG

  voice-edge is starting on http://$LISTEN
  Runtime: $RUNTIME_NAME
           ($WHY)

    curl http://$LISTEN/functions/v1/health
    TOKEN=\$(make -s jwt)                  # a student; APP_ROLE=teacher, ROLE=anon, ROLE=service_role
    curl -X POST http://$LISTEN/functions/v1/realtime-student-guide-token \\
         -H "authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
         -d '{"persona":"demo-guide"}'

  Database: $DB_URL (stop it with: make clean-local)
            $DB_TLS
  Press Ctrl-C to stop the app.

MSG
# The runtime starts without RUST_BACKTRACE / RUST_LIB_BACKTRACE, as production runs it:
# with them set, Spin captures a backtrace for every error it makes and discards while
# serving (~0.2 ms of CPU per request; BENCHMARKS.md). VOICE_EDGE_KEEP_BACKTRACE=1 keeps
# them, for a runtime panic worth a backtrace.
if [ "${VOICE_EDGE_KEEP_BACKTRACE:-0}" != 1 ]; then
  unset RUST_BACKTRACE RUST_LIB_BACKTRACE
fi
if [ "$RUNTIME" = spin ]; then
  # Component output on this terminal and in .spin/logs/, as `spin up` does by default.
  "$SPIN_BIN" up -f spin.toml --listen "$LISTEN" "${CA_VARIABLE[@]}" &
else
  target/release/voice-edge-host -f spin.toml --listen "$LISTEN" "${CA_VARIABLE[@]}" &
fi
pids+=($!)
wait "${pids[-1]}"
