#!/usr/bin/env bash
# Extra CI checks (run by .ci/run when executable, after the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# The checked-in flatbuffers code matches the schema.
scripts/gen-abi.sh --check

# Windows hosts (Hyperlight's WHP backend): the host crate must compile for
# them. The GNU target needs the mingw-w64 C compiler for BLAKE3's build
# script (the MSVC one asks for ml64.exe); installed here when missing.
scripts/check-windows.sh

# An installed binary runs without its build tree: a copy of the binary,
# run from another directory with the repository's target/ hidden, still
# finds its guest (embedded) and runs an invocation in the sandbox.
scripts/check-installed.sh "$root/target/debug/capbox"

# The checked-in example programs (programs/*.polkavm) rebuild
# byte-identical from their Rust sources (skipped, saying so, without the
# recorded nightly toolchain). Measured: ~2m15s from a cold target/ (4 min
# on a machine busy with other builds), ~25 s warm.
scripts/build-programs.sh --check
