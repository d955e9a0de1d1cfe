#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the distributed tests and print its URL.
# Installs Debian's postgresql package when it is missing and we may (root with apt).
# Prints nothing (and exits 0) where no server can be had, so that those tests skip locally.
set -euo pipefail
PORT="${NAS_PG_PORT:-54329}"
# the system's temporary folder (TMPDIR when set), one server per user
DATA="${NAS_PG_DATA:-${TMPDIR:-/tmp}/nas-test-postgres-$(id -u)}"
URL="postgresql://nas:nas@127.0.0.1:${PORT}/nas_test"

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

if [ -z "$(bindir)" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
    else
        echo "note: PostgreSQL is not installed; the PostgreSQL tests will skip" >&2
        exit 0
    fi
fi
BIN="$(bindir)"
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if ! as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    if [ ! -f "$DATA/PG_VERSION" ]; then
        mkdir -p "$DATA"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA"
        as_postgres "$BIN/initdb" -D "$DATA" -A trust -U postgres >/dev/null
    fi
    as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
        -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1" start >/dev/null
fi
psql_() { as_postgres "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAq "$@"; }
psql_ -c "SELECT 1 FROM pg_roles WHERE rolname='nas'" | grep -q 1 || psql_ -c "CREATE ROLE nas LOGIN PASSWORD 'nas'"
psql_ -c "SELECT 1 FROM pg_database WHERE datname='nas_test'" | grep -q 1 || psql_ -c "CREATE DATABASE nas_test OWNER nas"
echo "$URL"
