#!/usr/bin/env bash
# The oldest Spin the app runs on, the oldest Spin CLI that builds and deploys it, and a
# check of a Spin binary against the first.
#
#   scripts/spin-version.sh min          prints the minimum Spin that runs the app (4.1.0)
#   scripts/spin-version.sh cli-min      prints the minimum Spin CLI for `spin build` and
#                                        `spin deploy` (4.0.0; the CI workflow's pin)
#   scripts/spin-version.sh check BIN    silent and 0 when `BIN --version` is at least the
#                                        minimum; else says why on stderr and exits 3
#
# Why 4.1.0: every function is a WASIp3 component (spin-sdk 7) exporting
# `wasi:http/handler@0.3.0`, the final WASI 0.3.0. Spin serves that export since commit
# 6900ea41 on its main (2026-07-07, "Update to Wasmtime 46 and WASI 0.3.0"), which the
# next release, 4.1, will be the first to contain; the released 4.0.x (v4.0.0 .. v4.0.2)
# know only the release candidate `wasi:http/handler@0.3.0-rc-2026-03-15`, find no handler
# export they know, and cannot instantiate the components. A build of main reports
# 4.1.0-pre0 and passes when it is dated 2026-07-07 or later (the tests run `spin
# 4.1.0-pre0 (94a8fc8a 2026-08-21)`); main says 4.1.0-pre0 since 2026-04-20, so a
# pre-release build dated earlier is refused by the date `spin --version` prints. The
# components also import `spin:postgres/postgres@4.1.0` (first served by 4.0.0) and
# `fermyon:spin/variables@2.0.0`, which 4.1 serves as well.
#
# Why 4.0.0 for the CLI: the CI workflow's Spin only runs `spin build` and the deploy
# plugin (the app runs on the platform's Spin), and must be a release; 4.0.0 is the
# first CLI whose `spin build` and manifest handling the project uses.
set -euo pipefail

MIN_SPIN_VERSION=4.1.0
MIN_SPIN_CLI_VERSION=4.0.0
# Pre-releases of the minimum (main's builds) run the app only from this commit date on.
MIN_PRERELEASE_DATE=2026-07-07

# "spin 4.1.0-pre0 (94a8fc8a 2026-08-21)" -> "4.1.0"; empty when there is no x.y.z.
version_of() {
    "$1" --version 2>/dev/null | sed -n '1s/^spin \([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\).*/\1/p'
}

# "spin 4.1.0-pre0 (94a8fc8a 2026-08-21)" -> "2026-08-21" when the version is a
# pre-release (x.y.z-…); empty otherwise.
prerelease_date_of() {
    "$1" --version 2>/dev/null | sed -n '1s/^spin [0-9][0-9.]*-[^ ]* ([^ ]* \([0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}\)).*/\1/p'
}

# Whether dotted version $1 >= $2.
at_least() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

case "${1:-}" in
    min)
        echo "$MIN_SPIN_VERSION"
        ;;
    cli-min)
        echo "$MIN_SPIN_CLI_VERSION"
        ;;
    check)
        bin="${2:?usage: scripts/spin-version.sh check SPIN_BIN}"
        version="$(version_of "$bin")"
        if [ -z "$version" ]; then
            echo "$bin: could not read a version from \`$bin --version\`; voice-edge needs Spin $MIN_SPIN_VERSION or newer" >&2
            exit 3
        fi
        if ! at_least "$version" "$MIN_SPIN_VERSION"; then
            echo "$bin is Spin $version; voice-edge needs Spin $MIN_SPIN_VERSION or newer (its components are WASIp3 components exporting wasi:http/handler@0.3.0, first served by Spin 4.1: Spin's main since 2026-07-07; 4.0.x knows only the 0.3.0 release candidate). Install a newer Spin (../shared/tools/install-spin.sh installs the one the tests use), point SPIN_BIN at one, or use our host: RUNTIME=host make up" >&2
            exit 3
        fi
        date="$(prerelease_date_of "$bin")"
        if [ "$version" = "$MIN_SPIN_VERSION" ] && [ -n "$date" ] && [[ "$date" < "$MIN_PRERELEASE_DATE" ]]; then
            echo "$bin is a Spin $version pre-release built on $date; voice-edge needs Spin $MIN_SPIN_VERSION or newer, and a pre-release of it from $MIN_PRERELEASE_DATE on (its components export wasi:http/handler@0.3.0, which Spin's main serves since then). Install a newer Spin (../shared/tools/install-spin.sh installs the one the tests use), point SPIN_BIN at one, or use our host: RUNTIME=host make up" >&2
            exit 3
        fi
        ;;
    *)
        echo "usage: scripts/spin-version.sh min | cli-min | check SPIN_BIN" >&2
        exit 2
        ;;
esac
