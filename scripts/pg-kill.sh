#!/usr/bin/env bash
# SIGKILLs durable `capbox invoke` writers on the PostgreSQL store many
# times (default 60) at random points and checks after each kill that
# `store verify` passes and the head is the last reported commit (or one
# unreported move past it). The CI runs the same test with 12 kills.
# Needs PostgreSQL installed (scripts/pg-ensure.sh); the test starts its
# own throw-away cluster.
#   scripts/pg-kill.sh [KILLS]
set -euo pipefail
cd "$(dirname "$0")/.."
CAPBOX_REQUIRE_POSTGRES=1 CAPBOX_PG_KILLS=${1:-60} cargo test -p capbox --test store_pg_cli -- \
  --nocapture pg_sigkill
