#!/usr/bin/env bash
# Builds the example Rust programs in programs/ for PolkaVM and links them
# for the JAM instruction set (JamV1) into programs/NAME.polkavm, the blobs
# `capbox import` and the tests read.
#
#   scripts/build-programs.sh          rebuild and write programs/*.polkavm
#   scripts/build-programs.sh --check  rebuild into target/ and fail unless
#                                      every blob is byte-identical to the
#                                      checked-in one
#
# Needs the nightly toolchain (with rust-src, added here) for
# -Z build-std. The build is reproducible for the nightly recorded in
# programs/NIGHTLY: --check with a different nightly reports that and
# passes without comparing (another compiler may emit other code).
# Paths are remapped so the blobs do not depend on where the tree lives.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode=build
case "${1:-}" in
  --check) mode=check ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
programs=(counter kv hash)

if ! rustup toolchain list | grep -q '^nightly'; then
  if [ "$mode" = check ]; then
    echo "build-programs: no nightly toolchain; skipping the rebuild check"
    exit 0
  fi
  echo "build-programs: needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  if ! rustup component add rust-src --toolchain nightly; then
    if [ "$mode" = check ]; then
      echo "build-programs: cannot add rust-src to nightly; skipping the rebuild check"
      exit 0
    fi
    exit 1
  fi
fi
nightly=$(rustc +nightly -V)
if [ "$mode" = check ] && [ "$nightly" != "$(cat programs/NIGHTLY)" ]; then
  echo "build-programs: $nightly is not the recorded $(cat programs/NIGHTLY); skipping the byte comparison"
  exit 0
fi

target_dir="$root/target/programs"
# The linker tool (host, the repository's pinned toolchain).
cargo build --quiet --release --locked --manifest-path programs/linker/Cargo.toml \
  --target-dir "$target_dir/linker"
linker="$target_dir/linker/release/capbox-program-linker"

# The target spec shipped in the polkavm-linker crate the tool links with.
linker_src=$(cargo metadata --locked --format-version 1 --manifest-path programs/linker/Cargo.toml \
  | grep -o '"manifest_path":"[^"]*/polkavm-linker-0\.37\.[0-9]*/Cargo.toml"' | head -1 \
  | sed 's/^"manifest_path":"//; s|/Cargo.toml"$||')
spec="$linker_src/targets/1_91/riscv64emac-unknown-none-polkavm.json"
[ -f "$spec" ] || { echo "build-programs: target spec not found at $spec" >&2; exit 1; }

sysroot=$(rustc +nightly --print sysroot)
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="-A linker_messages --remap-path-prefix=$root=/capbox --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$sysroot=/rustc"
export CARGO_TARGET_DIR="$target_dir/polkavm"
export SOURCE_DATE_EPOCH=0
cargo +nightly build --quiet --release --locked --manifest-path programs/Cargo.toml \
  -Z build-std=core,alloc -Z json-target-spec --target "$spec"

out_dir=programs
[ "$mode" = check ] && out_dir="$target_dir/check" && mkdir -p "$out_dir"
for p in "${programs[@]}"; do
  "$linker" "$CARGO_TARGET_DIR/riscv64emac-unknown-none-polkavm/release/$p" "$out_dir/$p.polkavm" >/dev/null
done

if [ "$mode" = build ]; then
  echo "$nightly" > programs/NIGHTLY
  for p in "${programs[@]}"; do echo "programs/$p.polkavm: $(wc -c < "programs/$p.polkavm") bytes"; done
  exit 0
fi
status=0
for p in "${programs[@]}"; do
  if cmp -s "$out_dir/$p.polkavm" "programs/$p.polkavm"; then
    echo "programs/$p.polkavm: rebuilt byte-identical"
  else
    echo "programs/$p.polkavm: a rebuild differs from the checked-in blob (run scripts/build-programs.sh)" >&2
    status=1
  fi
done
exit $status
