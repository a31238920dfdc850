#!/usr/bin/env bash
# `make deploy`: `spin build`, then `spin deploy` to Akamai Functions (the default) or to
# Fermyon Cloud, with every variable of spin.toml taken from the environment.
#
#   DB_URL=… DEMO_DB_URL=… SUPABASE_JWT_SECRET=… CLASSCONNECT_WEBHOOK_SECRET=… make deploy
#   DEPLOY_TARGET=cloud make deploy
#   scripts/deploy.sh [--check | --login | --print-db-host] [--no-build] [-- extra spin deploy flags]
#
#   --check          check target, token and variables; print the command (values hidden); deploy nothing
#   --login          the same checks, then `spin login` with the token; deploy nothing
#   --print-db-host  print the db_host that would be deployed
#   --no-build       skip `spin build`
#
# Target: DEPLOY_TARGET (else SPIN_DEPLOY_PLUGIN) is `aka`, Akamai Functions (the
# default), or `cloud`, Fermyon Cloud. It becomes SPIN_DEPLOY_PLUGIN, the plugin that
# `spin deploy` and `spin login` hand over to. SpinKube is applied with kubectl instead
# (deploy/spinkube/README.md).
#
# Login: with the target's token in the environment (aka: SPIN_AKA_ACCESS_TOKEN, made by
# `spin aka auth token create`; cloud: FERMYON_CLOUD_TOKEN, a Fermyon Cloud personal
# access token), `spin login` runs first, the token handed over in the plugin's own
# environment variable (aka: SPIN_AKA_ACCESS_TOKEN, cloud: SPIN_AUTH_TOKEN), never on a
# command line. Without one, the login `spin aka login` or `spin cloud login` saved is
# used; under CI (CI set, as GitHub Actions does) a missing token is an error.
#
# Akamai Functions: `spin aka deploy` updates the app the working copy is linked to, or
# creates one (asking for its name). A fresh checkout is linked to none, so AKA_APP_ID
# (the app's id, shown by `spin aka app status`) names the app, `--app-id`; under CI it is
# required, and the deployment goes ahead without a prompt (`--no-confirm`).
#
# Variables: the value of spin.toml's variable `name` is SPIN_VARIABLE_<NAME>, else
# <NAME> (upper case), e.g. SPIN_VARIABLE_DB_URL or DB_URL. A required variable without a
# value is an error. An optional one that is not in the environment is not passed (the
# platform keeps the value it has: spin.toml's default, or one deployed before); one set
# to the empty string is passed with spin.toml's default. `db_host` defaults to the
# host:port of `db_url`; when given it must be the host:port of both `db_url` and
# `demo_db_url`, since spin.toml allows the components `postgres://{{ db_host }}` only.
# `db_ca_cert` is the PEM text of one certificate (DB_CA_CERT="$(cat prod-ca-2021.crt)"):
# with it the functions verify the database over TLS and refuse a connection string
# whose sslmode allows plain text, and so does this script. `trusted_proxies`
# comma-separated CIDRs. aka gets the values in a JSON file (`--variable @….json`, mode
# 600, deleted when the script ends); cloud takes `--variable name=value` only, so there
# a multi-line value is one argument, newlines included.
#
# Every error is reported before anything is built, logged in or deployed, all at once.
# SPIN names the spin binary (default `spin`). No value of a variable or token is printed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
manifest="$root/spin.toml"
spin_bin="${SPIN:-spin}"

die() {
    local line
    for line in "$@"; do echo "deploy: $line" >&2; done
    exit 1
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

mode=deploy
build=1
extra=()
while (($#)); do
    case "$1" in
        --check) mode=check ;;
        --login) mode=login ;;
        --print-db-host) mode=print-db-host ;;
        --no-build) build=0 ;;
        --) shift; extra=("$@"); break ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument $1 (see $0 --help)" ;;
    esac
    shift
done

# --- target -----------------------------------------------------------------------------
if [[ -n "${DEPLOY_TARGET:-}" && -n "${SPIN_DEPLOY_PLUGIN:-}" && "$DEPLOY_TARGET" != "$SPIN_DEPLOY_PLUGIN" ]]; then
    die "DEPLOY_TARGET is $DEPLOY_TARGET but SPIN_DEPLOY_PLUGIN is $SPIN_DEPLOY_PLUGIN: set only one"
fi
target="${DEPLOY_TARGET:-${SPIN_DEPLOY_PLUGIN:-aka}}"
case "$target" in
    aka) token_name=SPIN_AKA_ACCESS_TOKEN; platform="Akamai Functions" ;;
    cloud) token_name=FERMYON_CLOUD_TOKEN; platform="Fermyon Cloud" ;;
    spinkube) die "SpinKube is not deployed with spin deploy: spin registry push, then kubectl apply (deploy/spinkube/README.md)" ;;
    *) die "DEPLOY_TARGET must be aka (Akamai Functions) or cloud (Fermyon Cloud), not '$target'" ;;
esac
export SPIN_DEPLOY_PLUGIN="$target"
under_ci=0
if [[ -n "${CI:-}" && "${CI}" != false && "${CI}" != 0 ]]; then
    under_ci=1
fi

if [[ "$mode" == deploy || "$mode" == login ]] && ! command -v "$spin_bin" >/dev/null 2>&1; then
    die "spin is not installed (https://spinframework.dev/install), or set SPIN to its path"
fi
command -v python3 >/dev/null 2>&1 || die "python3 is needed to read spin.toml"
[[ -f "$manifest" ]] || die "no spin.toml at $manifest"

problems=()

# --- token and app ----------------------------------------------------------------------
token="${!token_name:-}"
if [[ "$mode" != print-db-host && -z "$token" ]] && ((under_ci)); then
    case "$target" in
        aka) problems+=("no token for Akamai Functions: set SPIN_AKA_ACCESS_TOKEN (spin aka auth token create --name ci)") ;;
        cloud) problems+=("no token for Fermyon Cloud: set FERMYON_CLOUD_TOKEN (a personal access token of cloud.fermyon.com)") ;;
    esac
fi
if [[ "$mode" != print-db-host && "$target" == aka && -z "${AKA_APP_ID:-}" ]] && ((under_ci)); then
    problems+=("no app for Akamai Functions: set AKA_APP_ID to the id of the app to update (spin aka app status; make the first deployment with make deploy)")
fi

# --- variables --------------------------------------------------------------------------
# Lines of `name US required|optional US default`, in spin.toml's order (US: \x1f).
variables="$(python3 - "$manifest" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as handle:
    manifest = tomllib.load(handle)
for name, spec in manifest.get("variables", {}).items():
    requirement = "required" if spec.get("required") else "optional"
    print(name, requirement, spec.get("default", ""), sep="\x1f")
PY
)"

# Sets `value` to variable $1's value from the environment (SPIN_VARIABLE_<NAME>, else
# <NAME>) and `given` to 1 when either is in the environment, even empty. No command
# substitution: it would cut a PEM's final newline.
lookup() {
    local upper="${1^^}"
    local spin_name="SPIN_VARIABLE_${upper}"
    value="" given=0
    if [[ -n "${!spin_name:-}" ]]; then
        value="${!spin_name}" given=1
    elif [[ -n "${!upper:-}" ]]; then
        value="${!upper}" given=1
    elif [[ -n "${!spin_name+set}" || -n "${!upper+set}" ]]; then
        given=1
    fi
}

names=()
declare -A values=()
missing=()
while IFS=$'\x1f' read -r name requirement default; do
    names+=("$name")
    lookup "$name"
    if [[ -n "$value" ]]; then
        values[$name]="$value"
    elif [[ "$requirement" == required ]]; then
        missing+=("$name (SPIN_VARIABLE_${name^^} or ${name^^})")
    elif ((given)) && [[ "$name" != db_host ]]; then
        values[$name]="$default"
    fi
done <<<"$variables"
if [[ "$mode" != print-db-host ]] && ((${#missing[@]})); then
    problems+=("required variables have no value: ${missing[*]}")
fi

# The host:port a postgres:// URL ($URL) connects to (port 5432 when it names none), as
# Spin's allowed-host check compares it; empty when the URL cannot be read.
host_port_of() {
    URL="$1" python3 - <<'PY'
import os
from urllib.parse import urlsplit
try:
    url = urlsplit(os.environ["URL"])
    if url.scheme not in ("postgres", "postgresql") or not url.hostname:
        raise ValueError
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    print(f"{host}:{url.port or 5432}")
except ValueError:
    pass
PY
}

# The sslmode a postgres:// URL ($URL) asks for (the last one given), empty when none.
sslmode_of() {
    URL="$1" python3 - <<'PY'
import os
from urllib.parse import parse_qsl, urlsplit
modes = [value for key, value in parse_qsl(urlsplit(os.environ["URL"]).query) if key == "sslmode"]
print(modes[-1] if modes else "")
PY
}

# db_host: derived from db_url when not given; checked against both connection strings.
if [[ -n "${values[db_url]:-}" ]]; then
    db_url_host="$(host_port_of "${values[db_url]}")"
    if [[ -z "${values[db_host]:-}" ]]; then
        if [[ -n "$db_url_host" ]]; then
            values[db_host]="$db_url_host"
        else
            problems+=("cannot read the host of db_url (expected postgres://user:password@host:port/db); set DB_HOST")
        fi
    fi
    for url_name in db_url demo_db_url; do
        [[ -n "${values[$url_name]:-}" && -n "${values[db_host]:-}" ]] || continue
        url_host="$(host_port_of "${values[$url_name]}")"
        if [[ -n "$url_host" && "$url_host" != "${values[db_host]}" ]]; then
            problems+=("$url_name connects to $url_host but db_host is ${values[db_host]}: spin.toml allows postgres://{{ db_host }} only, so every query would be refused")
        fi
        sslmode="$(sslmode_of "${values[$url_name]}")"
        if [[ -n "${values[db_ca_cert]:-}" ]]; then
            # The functions make every mode but these `require`, and refuse the rest.
            case "$sslmode" in
                ""|prefer|require|verify-ca|verify-full) ;;
                *) problems+=("$url_name has sslmode=$sslmode, but with db_ca_cert set every connection must be TLS: use sslmode=require (the functions would answer 500 configuration_error)") ;;
            esac
        elif [[ "$sslmode" != require && "$url_host" != 127.0.0.1:* && "$url_host" != localhost:* && "$url_host" != "[::1]":* ]]; then
            echo "deploy: warning: $url_name has no sslmode=require; the connection to $url_host would not be encrypted" >&2
        fi
    done
    if [[ -z "${values[db_ca_cert]:-}" && -n "$db_url_host" && "$db_url_host" != 127.0.0.1:* && "$db_url_host" != localhost:* && "$db_url_host" != "[::1]":* ]]; then
        echo "deploy: warning: db_ca_cert is empty: Spin checks $db_url_host's certificate against the public roots only, and Supabase signs its database certificates with its own CA (set DB_CA_CERT)" >&2
    fi
fi

if [[ "$mode" == print-db-host ]]; then
    ((${#problems[@]} == 0)) || die "${problems[@]}"
    printf '%s\n' "${values[db_host]:-}"
    exit 0
fi

# db_ca_cert: one PEM certificate (checked without printing it). Spin trusts only the
# first certificate of the text, so the functions refuse more than one.
if [[ -n "${values[db_ca_cert]:-}" ]]; then
    PEM="${values[db_ca_cert]}" python3 - <<'PY' && pem_check=0 || pem_check=$?
import base64, binascii, os, re, sys
blocks = re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", os.environ["PEM"], re.S)
try:
    ok = bool(blocks) and all(base64.b64decode("".join(block.split()), validate=True) for block in blocks)
except binascii.Error:
    ok = False
sys.exit(1 if not ok else 2 if len(blocks) > 1 else 0)
PY
    case "$pem_check" in
        0) ;;
        2) problems+=("db_ca_cert holds more than one certificate, and Spin trusts only the first: give just the CA that signs the database's certificate (prod-ca-2021.crt)") ;;
        *) problems+=("db_ca_cert is not PEM (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----): give the certificate's text, e.g. DB_CA_CERT=\"\$(cat prod-ca-2021.crt)\", not its path") ;;
    esac
fi

# trusted_proxies: comma-separated addresses or CIDRs.
if [[ -n "${values[trusted_proxies]:-}" ]]; then
    if ! bad="$(PROXIES="${values[trusted_proxies]}" python3 - <<'PY'
import ipaddress, os, sys
bad = []
for entry in os.environ["PROXIES"].split(","):
    try:
        ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        bad.append(repr(entry.strip()))
print(", ".join(bad))
sys.exit(1 if bad else 0)
PY
    )"; then
        problems+=("trusted_proxies must be comma-separated CIDRs (e.g. 10.244.0.0/16,fd00::/8); not CIDRs: $bad")
    fi
fi

((${#problems[@]} == 0)) || die "nothing deployed to $platform:" "${problems[@]}"

# --- the command ------------------------------------------------------------------------
passed=()
for name in "${names[@]}"; do
    if [[ -n "${values[$name]+set}" ]]; then
        passed+=("$name")
    fi
done

# aka reads the values from a JSON file in a directory only this user can read, removed
# when the script ends; --check and --login write none.
json=variables.json
if [[ "$target" == aka && "$mode" == deploy && ${#passed[@]} -gt 0 ]]; then
    umask 077
    private="$(mktemp -d "${TMPDIR:-/tmp}/voice-edge-deploy.XXXXXX")"
    trap 'rm -rf "$private"' EXIT
    json="$private/variables.json"
fi

args=(deploy -f "$manifest")
shown=(deploy -f spin.toml)
if [[ "$target" == aka ]]; then
    if [[ -n "${AKA_APP_ID:-}" ]]; then
        args+=(--app-id "$AKA_APP_ID")
        shown+=(--app-id "$AKA_APP_ID")
    fi
    if ((under_ci)); then
        args+=(--no-confirm)
        shown+=(--no-confirm)
    fi
    if ((${#passed[@]})); then
        args+=(--variable "@$json")
        shown+=(--variable "@variables.json (${passed[*]})")
    fi
else
    for name in "${passed[@]}"; do
        args+=(--variable "$name=${values[$name]}")
        shown+=(--variable "$name=…")
    done
fi
args+=("${extra[@]}")
shown+=("${extra[@]}")

echo "deploy: to $platform: SPIN_DEPLOY_PLUGIN=$target spin ${shown[*]}"
if [[ -n "$token" ]]; then
    echo "deploy: login with $token_name"
else
    echo "deploy: no $token_name: the login that spin $target login saved is used"
fi
if [[ "$mode" == check ]]; then
    echo "deploy: check passed (${#passed[@]} variables with values); nothing deployed"
    exit 0
fi

spin_login() {
    [[ -n "$token" ]] || return 0
    case "$target" in
        aka) SPIN_AKA_ACCESS_TOKEN="$token" "$spin_bin" login ;;
        cloud) SPIN_AUTH_TOKEN="$token" "$spin_bin" login ;;
    esac
}

cd "$root"
spin_login
if [[ "$mode" == login ]]; then
    exit 0
fi
if ((build)); then
    "$spin_bin" build -f "$manifest"
fi

if [[ "$target" == aka && ${#passed[@]} -gt 0 ]]; then
    for name in "${passed[@]}"; do
        printf '%s\0%s\0' "$name" "${values[$name]}"
    done | python3 -c '
import json, sys
parts = sys.stdin.buffer.read().decode().split("\0")[:-1]
with open(sys.argv[1], "w") as handle:
    json.dump(dict(zip(parts[0::2], parts[1::2])), handle)
' "$json"
fi
"$spin_bin" "${args[@]}"
