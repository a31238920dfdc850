#!/usr/bin/env bash
# The oldest Spin the app runs on, and a check of a Spin binary against it.
#
#   scripts/spin-version.sh min          prints the minimum (4.0.0)
#   scripts/spin-version.sh check BIN    silent and 0 when `BIN --version` is at least the
#                                        minimum; else says why on stderr and exits 3
#
# Why 4.0.0: every component opens its database connections through
# `spin:postgres/postgres@4.1.0` (the connection builder that takes `db_ca_cert`), which
# Spin 4.0.0 was the first release to serve (v3.6.3, the last 3.x, has only @3.0.0 and
# @4.0.0 of that interface), so an older Spin cannot instantiate the components. Spin
# 4.0 is also the first to reuse WASIp3 instances.
set -euo pipefail

MIN_SPIN_VERSION=4.0.0

# "spin 4.1.0-pre0 (94a8fc8a 2026-08-21)" -> "4.1.0"; empty when there is no x.y.z.
version_of() {
    "$1" --version 2>/dev/null | sed -n '1s/^spin \([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\).*/\1/p'
}

# Whether dotted version $1 >= $2.
at_least() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

case "${1:-}" in
    min)
        echo "$MIN_SPIN_VERSION"
        ;;
    check)
        bin="${2:?usage: scripts/spin-version.sh check SPIN_BIN}"
        version="$(version_of "$bin")"
        if [ -z "$version" ]; then
            echo "$bin: could not read a version from \`$bin --version\`; voice-edge needs Spin $MIN_SPIN_VERSION or newer" >&2
            exit 3
        fi
        if ! at_least "$version" "$MIN_SPIN_VERSION"; then
            echo "$bin is Spin $version; voice-edge needs Spin $MIN_SPIN_VERSION or newer (its components import spin:postgres@4.1.0, first served by Spin 4.0.0). Install a newer Spin (../shared/tools/install-spin.sh installs the one the tests use), point SPIN_BIN at one, or use our host: RUNTIME=host make up" >&2
            exit 3
        fi
        ;;
    *)
        echo "usage: scripts/spin-version.sh min | check SPIN_BIN" >&2
        exit 2
        ;;
esac
