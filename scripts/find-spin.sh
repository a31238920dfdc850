#!/usr/bin/env bash
# Prints the path of the Spin CLI to use, or nothing when there is none:
# SPIN_BIN when set, else `spin` on the PATH, else the one scripts/setup.sh installs
# from ../shared/tools (~/.local/share/voice-edge-tools/spin). A candidate counts only
# if `spin --version` runs.
set -uo pipefail
works() { [[ -n "$1" && -x "$1" ]] && "$1" --version >/dev/null 2>&1; }
for candidate in "${SPIN_BIN:-}" "$(command -v spin 2>/dev/null)" \
                 "${SPIN_INSTALL_DIR:-$HOME/.local/share/voice-edge-tools}/spin"; do
    if works "$candidate"; then
        echo "$candidate"
        exit 0
    fi
done
exit 0
