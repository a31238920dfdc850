#!/usr/bin/env bash
# Stops any test cluster a crashed test run left behind under target/test-pg.
set -uo pipefail
shopt -s nullglob
for pidfile in target/test-pg/*/postmaster.pid target/test-pg/*/*/postmaster.pid; do
  pid=$(head -n 1 "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    echo "==> stopping leftover test cluster $(dirname "$pidfile")"
    kill -QUIT "$pid" 2>/dev/null || true
  fi
done
exit 0
