#!/usr/bin/env bash
# Sourced by the pg-*.sh scripts: a throw-away PostgreSQL cluster, as the
# tests' fixture (host/tests/pg_support) makes one: initdb in a temporary
# directory (as `nobody` when run as root: initdb refuses root), the
# server on 127.0.0.1 and a free port only, removed by pg_stop.
#   . scripts/pg-throwaway.sh; pg_start; … "$PG_URL" …; pg_stop

# The directory holding initdb and postgres: `pg_config --bindir`, the
# newest /usr/lib/postgresql/*/bin, or initdb's (resolved) directory on PATH.
pg_bindir() {
  local dir
  if command -v pg_config >/dev/null; then
    dir=$(pg_config --bindir 2>/dev/null || true)
    if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then echo "$dir"; return 0; fi
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then echo "$dir"; return 0; fi
  done
  if command -v initdb >/dev/null; then
    dir=$(dirname "$(readlink -f "$(command -v initdb)")")
    if [ -x "$dir/postgres" ]; then echo "$dir"; return 0; fi
  fi
  return 1
}

# Starts a cluster; sets PG_DIR, PG_PORT, PG_URL (database "postgres",
# user "capbox", trust auth on loopback).
pg_start() {
  local bindir as=()
  bindir=$(pg_bindir) || { echo "PostgreSQL is not installed (scripts/pg-ensure.sh installs it)" >&2; return 1; }
  PG_DIR=$(mktemp -d /tmp/capbox-pg-script-XXXXXX)
  if [ "$(id -u)" = 0 ]; then
    chown nobody:nogroup "$PG_DIR"
    as=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
  fi
  "${as[@]}" "$bindir/initdb" -D "$PG_DIR/data" -U capbox -A trust -E UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${as[@]}" "$bindir/postgres" -D "$PG_DIR/data" -p "$PG_PORT" -k "$PG_DIR" \
    -c listen_addresses=127.0.0.1 >"$PG_DIR/server.log" 2>&1 &
  PG_PID=$!
  PG_URL="postgres://capbox@127.0.0.1:$PG_PORT/postgres"
  for _ in $(seq 300); do
    if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then return 0; fi
    sleep 0.1
  done
  cat "$PG_DIR/server.log" >&2
  return 1
}

# A fresh database NAME on the cluster; prints its URL.
pg_createdb() {
  "$(pg_bindir)/createdb" -h 127.0.0.1 -p "$PG_PORT" -U capbox "$1"
  echo "postgres://capbox@127.0.0.1:$PG_PORT/$1"
}

# Stops the cluster (fast shutdown) and removes its directory.
pg_stop() {
  if [ -n "${PG_PID:-}" ]; then
    kill -INT "$PG_PID" 2>/dev/null || true
    wait "$PG_PID" 2>/dev/null || true
  fi
  [ -n "${PG_DIR:-}" ] && rm -rf "$PG_DIR"
  PG_PID= PG_DIR=
}
