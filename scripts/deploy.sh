#!/usr/bin/env bash
# `make deploy`: `spin build`, then `spin deploy` with every variable of spin.toml taken
# from the environment.
#
#   DB_URL=… DEMO_DB_URL=… SUPABASE_JWT_SECRET=… CLASSCONNECT_WEBHOOK_SECRET=… make deploy
#   scripts/deploy.sh [--check | --print-db-host] [--no-build] [-- extra spin deploy flags]
#
# The value of spin.toml's variable `name` is SPIN_VARIABLE_<NAME>, else <NAME> (upper
# case), e.g. SPIN_VARIABLE_DB_URL or DB_URL. A required variable without a value stops
# the deployment, naming it. An optional one without a value is not passed, so spin.toml's
# default stands. `db_host` defaults to the host:port of `db_url`; when it is given, it
# must be the host:port of both `db_url` and `demo_db_url`, since spin.toml allows the
# components to connect to `postgres://{{ db_host }}` only.
#
#   --check          check the variables and print the command (values hidden); deploy nothing
#   --print-db-host  print the db_host that would be deployed
#   --no-build       skip `spin build`
#
# Spin 4 wants to be told which plugin `spin deploy` uses: SPIN_DEPLOY_PLUGIN defaults to
# `cloud` (Fermyon Cloud; log in first with `spin cloud login`). SPIN names the spin binary
# (default `spin`). No value of any variable is ever printed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
manifest="$root/spin.toml"
spin_bin="${SPIN:-spin}"

die() { echo "deploy: $*" >&2; exit 1; }

mode=deploy
build=1
extra=()
while (($#)); do
    case "$1" in
        --check) mode=check ;;
        --print-db-host) mode=print-db-host ;;
        --no-build) build=0 ;;
        --) shift; extra=("$@"); break ;;
        -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see $0 --help)" ;;
    esac
    shift
done

if [[ "$mode" == deploy ]] && ! command -v "$spin_bin" >/dev/null 2>&1; then
    die "spin is not installed (https://spinframework.dev/install), or set SPIN to its path"
fi
command -v python3 >/dev/null 2>&1 || die "python3 is needed to read spin.toml"
[[ -f "$manifest" ]] || die "no spin.toml at $manifest"

# Lines of `name required`, in spin.toml's order.
variables="$(python3 - "$manifest" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as handle:
    manifest = tomllib.load(handle)
for name, spec in manifest.get("variables", {}).items():
    print(name, "required" if spec.get("required") else "optional")
PY
)"

# The value of variable $1 from the environment (SPIN_VARIABLE_<NAME>, else <NAME>).
value_of() {
    local upper="${1^^}"
    local spin_name="SPIN_VARIABLE_${upper}"
    if [[ -n "${!spin_name:-}" ]]; then
        printf '%s' "${!spin_name}"
    else
        printf '%s' "${!upper:-}"
    fi
}

# The host:port a postgres:// URL connects to (port 5432 when it names none), as Spin's
# allowed-host check compares it; empty when the URL cannot be read.
host_port_of() {
    python3 - "$1" <<'PY'
import sys
from urllib.parse import urlsplit
try:
    url = urlsplit(sys.argv[1])
    if url.scheme not in ("postgres", "postgresql") or not url.hostname:
        raise ValueError
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    print(f"{host}:{url.port or 5432}")
except ValueError:
    pass
PY
}

missing=()
declare -A values=()
while read -r name requirement; do
    value="$(value_of "$name")"
    if [[ -n "$value" ]]; then
        values[$name]="$value"
    elif [[ "$requirement" == required ]]; then
        missing+=("$name (SPIN_VARIABLE_${name^^} or ${name^^})")
    fi
done <<<"$variables"
if [[ "$mode" != print-db-host ]] && ((${#missing[@]})); then
    die "required variables have no value: ${missing[*]}"
fi

# db_host: derived from db_url when not given; checked against both connection strings.
if [[ -n "${values[db_url]:-}" ]]; then
    db_url_host="$(host_port_of "${values[db_url]}")"
    if [[ -z "${values[db_host]:-}" ]]; then
        [[ -n "$db_url_host" ]] || die "cannot read the host of db_url (expected postgres://user:password@host:port/db); set DB_HOST"
        values[db_host]="$db_url_host"
    fi
    for url_name in db_url demo_db_url; do
        [[ -n "${values[$url_name]:-}" ]] || continue
        url_host="$(host_port_of "${values[$url_name]}")"
        if [[ -n "$url_host" && "$url_host" != "${values[db_host]}" ]]; then
            die "$url_name connects to $url_host but db_host is ${values[db_host]}: spin.toml allows postgres://{{ db_host }} only, so every query would be refused"
        fi
        if [[ "${values[$url_name]}" != *sslmode=require* && "$url_host" != 127.0.0.1:* && "$url_host" != localhost:* && "$url_host" != "[::1]":* ]]; then
            echo "deploy: warning: $url_name has no sslmode=require; the connection to $url_host would not be encrypted" >&2
        fi
    done
fi

if [[ "$mode" == print-db-host ]]; then
    printf '%s\n' "${values[db_host]:-}"
    exit 0
fi

args=(deploy -f "$manifest")
shown=(deploy -f spin.toml)
while read -r name _; do
    [[ -n "${values[$name]+set}" ]] || continue
    args+=(--variable "$name=${values[$name]}")
    shown+=(--variable "$name=…")
done <<<"$variables"
args+=("${extra[@]}")
shown+=("${extra[@]}")

export SPIN_DEPLOY_PLUGIN="${SPIN_DEPLOY_PLUGIN:-cloud}"
echo "deploy: SPIN_DEPLOY_PLUGIN=$SPIN_DEPLOY_PLUGIN spin ${shown[*]}"
if [[ "$mode" == check ]]; then
    echo "deploy: check passed (${#values[@]} variables with values); nothing deployed"
    exit 0
fi

cd "$root"
if ((build)); then
    "$spin_bin" build -f "$manifest"
fi
exec "$spin_bin" "${args[@]}"
