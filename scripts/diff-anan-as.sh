#!/usr/bin/env bash
# Differential run of capbox's PVM against anan-as 1.2.0 (npm
# @fluffylabs/anan-as), PolkaVM 0.37 breaking ties: see
# shared/tests/pvm_vs_anan_as.rs and fuzz/README.md.
#
#   scripts/diff-anan-as.sh [SECONDS [SEED]]     (defaults: 600, 1)
#
# Installs the pinned package under target/anan-as on first use (needs
# Node >= 18 and the npm registry), then runs the ignored test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=1.2.0
dir=$root/target/anan-as
module=$dir/node_modules/@fluffylabs/anan-as/dist/build/release.js
installed=$dir/node_modules/@fluffylabs/anan-as/package.json
if [ ! -f "$module" ] || ! grep -q "\"version\": \"$version\"" "$installed"; then
	mkdir -p "$dir"
	npm install --no-save --no-audit --no-fund --prefix "$dir" "@fluffylabs/anan-as@$version"
fi
cd "$root"
CAPBOX_ANAN_AS=1 ANAN_AS_MODULE=$module \
	CAPBOX_ANAN_AS_SECS=${1:-600} CAPBOX_ANAN_AS_SEED=${2:-1} \
	cargo test --release -p capbox-shared --test pvm_vs_anan_as -- --ignored --nocapture
