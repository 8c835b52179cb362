#!/usr/bin/env bash
# Wall time of whole `capbox` processes: `invoke` of the sample's increment
# endpoint on a stored head (load from the store, run, store the new state,
# move the head, append the history record) vs `run` of the same program on
# a fresh instance. Uses hyperfine when installed, else a timed loop.
#   scripts/measure-invoke.sh [LOCAL_RUNS] [SANDBOX_RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
local_runs=${1:-30}
sandbox_runs=${2:-8}
cargo build --release -p capbox >/dev/null 2>&1
bin=$PWD/target/release/capbox
store=$(mktemp -d)/store
export CAPBOX_STORE=$store
"$bin" new --sample --head bench --backend local >/dev/null

measure() { # NAME RUNS COMMAND...
  local name=$1 runs=$2
  shift 2
  "$@" >/dev/null 2>&1 # warm-up
  if command -v hyperfine >/dev/null; then
    hyperfine -N --runs "$runs" --export-json /dev/stdout "$*" 2>/dev/null |
      python3 -c 'import json,sys; r=json.load(sys.stdin)["results"][0]; print(f"'"$name"': mean {r["mean"]*1e3:.1f} ms, min {r["min"]*1e3:.1f} ms")'
    return
  fi
  local start end
  start=$(date +%s%N)
  for _ in $(seq "$runs"); do "$@" >/dev/null 2>&1; done
  end=$(date +%s%N)
  echo "$name: mean $(( (end - start) / runs / 1000000 )) ms over $runs runs"
}

for backend in local sandbox; do
  runs=$local_runs
  [ "$backend" = sandbox ] && runs=$sandbox_runs
  measure "run    --backend $backend" "$runs" "$bin" run --backend "$backend"
  measure "invoke --backend $backend" "$runs" "$bin" invoke bench --backend "$backend"
done
echo "history of the head: $("$bin" heads | awk '{print $3}') moves"
rm -rf "$(dirname "$store")"
