#!/usr/bin/env bash
# Installs the guest's target when missing (machines with RUSTUP_AUTO_INSTALL=0
# do not add targets implicitly).
set -euo pipefail
target=x86_64-unknown-none
if ! rustup target list --installed | grep -qx "$target"; then
  echo "capbox: installing the Rust target $target (rustup target add $target)" >&2
  rustup target add "$target"
fi
