#!/usr/bin/env bash
# SIGKILLs durable `capbox invoke` processes many times (default 60 on the
# local backend, 10 on the sandbox) and checks the store after each kill:
# `store verify` passes, the head's graph is complete, the history agrees
# with the head, and the head is the last outcome reported as committed.
# (The CI runs the same test with fewer kills.)
#   scripts/heads-kill.sh [LOCAL_KILLS] [SANDBOX_KILLS]
set -euo pipefail
cd "$(dirname "$0")/.."
local_kills=${1:-60}
sandbox_kills=${2:-10}
CAPBOX_HEADS_KILLS=$local_kills cargo test -p capbox --test heads_crash -- \
  --nocapture sigkill_during_local
CAPBOX_HEADS_KILLS=$sandbox_kills cargo test -p capbox --test heads_crash -- \
  --nocapture sigkill_during_sandbox
