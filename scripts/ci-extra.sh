#!/usr/bin/env bash
# Extra CI checks (run by .ci/run when executable).
set -euo pipefail
cd "$(dirname "$0")/.."
# The checked-in flatbuffers code matches the schema.
scripts/gen-abi.sh --check
# The checked-in example programs (programs/*.polkavm) rebuild
# byte-identical from their Rust sources (skipped, saying so, without the
# recorded nightly toolchain). Measured: ~2m15s from a cold target/ (4 min
# on a machine busy with other builds), ~25 s warm.
scripts/build-programs.sh --check
