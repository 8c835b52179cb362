#!/usr/bin/env bash
# Extra CI checks (run by .ci/run when executable).
set -euo pipefail
cd "$(dirname "$0")/.."
# The checked-in flatbuffers code matches the schema.
scripts/gen-abi.sh --check
