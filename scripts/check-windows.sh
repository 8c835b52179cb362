#!/usr/bin/env bash
# `cargo check -p capbox --target x86_64-pc-windows-gnu`, installing what
# it needs (the Rust target, and mingw-w64 through apt when root).
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-pc-windows-gnu
if ! rustup target list --installed | grep -qx "$target"; then
  echo "capbox: installing the Rust target $target" >&2
  rustup target add "$target"
fi
if ! command -v x86_64-w64-mingw32-gcc >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "capbox: installing mingw-w64 (gcc-mingw-w64-x86-64) for the Windows check" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc-mingw-w64-x86-64 >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc-mingw-w64-x86-64 >/dev/null; }
  else
    echo "capbox: SKIPPING the Windows check: x86_64-w64-mingw32-gcc is missing and cannot be installed here (needs root and apt)" >&2
    exit 0
  fi
fi
echo "capbox: cargo check -p capbox --target $target" >&2
RUSTFLAGS="-D warnings" cargo check -q -p capbox --target "$target"
