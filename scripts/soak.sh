#!/usr/bin/env bash
# Soak test (not run in CI): state-changing invocations (the sample's
# increment, chained 100 per kernel call) on the sandbox for a given time;
# every interval prints invocations done, the guest's blob count and bytes,
# page-arena use, evictions, spills, re-fetches and the host's RSS. The
# blob count and bytes must stay flat (within the budget) after warm-up,
# and so must the RSS once the host's blob cache is full (64 MiB by
# default: --host-cache-kib makes it fill sooner; docs/kernel.md "Host
# memory").
#   scripts/soak.sh [SECONDS [INTERVAL]] [capbox soak options...]
#   e.g. scripts/soak.sh 1800 60
#        scripts/soak.sh 720 60 --budget-kib 1024 --budget-blobs 512 --host-cache-kib 4096
#        scripts/soak.sh 120 10 --budget-kib 512 --budget-blobs 200
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
interval=${2:-10}
shift $(( $# > 2 ? 2 : $# ))
cargo build --release -q -p capbox
exec target/release/capbox soak --seconds "$seconds" --interval "$interval" "$@"
