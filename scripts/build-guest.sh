#!/usr/bin/env bash
# Builds the guest kernel on its own (host/build.rs does the same during
# `cargo build`). Prints the ELF's path. Usage: scripts/build-guest.sh [--debug]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/ensure-target.sh
profile=release
args=(--release)
if [ "${1:-}" = "--debug" ]; then profile=debug; args=(); fi
# CAPBOX_GUEST_SIMD=1: hash Data pages with BLAKE3's SSE4.1 code (runs only
# on a CPU with SSE4.1; see docs/kernel.md, Measurements).
if [ "${CAPBOX_GUEST_SIMD:-0}" = "1" ]; then args+=(--features simd); fi
target_dir="${CAPBOX_GUEST_TARGET_DIR:-$root/target/guest}"
(
  cd guest
  env -u RUSTFLAGS -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET \
    CARGO_ENCODED_RUSTFLAGS=$'-C\x1flink-arg=-eentrypoint\x1f-C\x1flink-arg=-znostart-stop-gc' \
    cargo build "${args[@]}" --target x86_64-unknown-none --target-dir "$target_dir" >&2
)
echo "$target_dir/x86_64-unknown-none/$profile/capbox-guest"
