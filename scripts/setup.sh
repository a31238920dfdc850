#!/usr/bin/env bash
# Installs what a fresh machine of this kind lacks: the wasm32-wasip2 target, the
# PostgreSQL server binaries, and real Spin from ../shared/tools when that folder is
# beside the project (no registry carries Spin). Safe to run again: it only acts on
# what is missing.
#
#   scripts/setup.sh          everything
#   scripts/setup.sh wasm     only the wasm32-wasip2 target (what `make build` needs)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "==> setup: adding the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi
[ "${1:-}" = wasm ] && exit 0

# Real Spin: production's runtime, for `make up` and the Spin pass of `make test`.
if [ -z "$(scripts/find-spin.sh)" ] && [ -x ../shared/tools/install-spin.sh ]; then
  echo "==> setup: installing Spin from ../shared/tools"
  ../shared/tools/install-spin.sh >/dev/null
fi

find_initdb() {
  command -v initdb 2>/dev/null && return 0
  ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1
}

if [ -z "$(find_initdb)" ]; then
  echo "==> setup: installing PostgreSQL (Debian package postgresql)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql postgresql-client >/dev/null
fi

# pg_cron schedules the retention sweeps (as on Supabase); the tests run it for real.
if ! ls /usr/lib/postgresql/*/lib/pg_cron.so >/dev/null 2>&1; then
  pg_major="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)"
  echo "==> setup: installing pg_cron (Debian package postgresql-${pg_major:-15}-cron)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "postgresql-${pg_major:-15}-cron" >/dev/null
fi

# Debian puts the server binaries outside PATH: link them where the tests look.
if ! command -v initdb >/dev/null 2>&1; then
  bindir=$(dirname "$(find_initdb)")
  echo "==> setup: linking PostgreSQL binaries from $bindir into /usr/local/bin"
  for tool in initdb pg_ctl postgres pg_isready; do
    ln -sf "$bindir/$tool" "/usr/local/bin/$tool"
  done
fi
if ! command -v psql >/dev/null 2>&1; then
  echo "==> setup: installing the PostgreSQL client"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null
fi

# The server refuses to run as root; the tests run it as the `postgres` user.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "==> setup: creating the postgres system user"
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi
