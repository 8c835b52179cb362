#!/usr/bin/env bash
# Durable invocations per second through each store: P concurrent
# `capbox invoke c --times N --backend local` processes on one counter head
# (every invocation commits: new state stored, head moved by CAS, history
# record), for P = 1 and 4, on the filesystem store and on PostgreSQL (a
# throw-away cluster on loopback, fsync on: the server's defaults).
# Checks the head moved once per invocation. Rate = P*N / wall time of the
# slowest process (process start, store open and connect included).
#   scripts/store-throughput.sh [N]      (CAPBOX_BIN: the binary to use;
#                                         default: a debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg-throwaway.sh
times=${1:-100}
if [ -z "${CAPBOX_BIN:-}" ]; then
  cargo build -p capbox >/dev/null 2>&1
  CAPBOX_BIN=$PWD/target/debug/capbox
fi
bin=$CAPBOX_BIN
work=$(mktemp -d)
trap 'pg_stop; rm -rf "$work"' EXIT
pg_start

run() { # STORE PROCS
  local store=$1 procs=$2 start end pids=()
  CAPBOX_STORE=$store "$bin" new --sample --head c --backend local >/dev/null
  start=$(date +%s%N)
  for _ in $(seq "$procs"); do
    CAPBOX_STORE=$store "$bin" invoke c --times "$times" --backend local --retries 100000 >/dev/null &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  end=$(date +%s%N)
  local moves
  moves=$(CAPBOX_STORE=$store "$bin" heads --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["heads"][0]["moves"])')
  [ "$moves" = $((procs * times + 1)) ] || { echo "expected $((procs * times + 1)) moves, got $moves" >&2; exit 1; }
  python3 -c "n=$procs*$times; s=($end-$start)/1e9; print(f'{n} invocations in {s:.2f} s: {n/s:.1f} invocations/s')"
}

for procs in 1 4; do
  printf 'filesystem  %d process(es): ' "$procs"
  run "$work/fs-$procs" "$procs"
  printf 'PostgreSQL  %d process(es): ' "$procs"
  run "$(pg_createdb "p$procs")" "$procs"
done
