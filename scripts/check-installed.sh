#!/usr/bin/env bash
# Runs a copy of the capbox binary ($1) from a scratch directory with the
# repository's target/ hidden (a bind mount in a private mount namespace),
# so nothing from the build tree can be read: the guest must be the
# embedded one. Needs root and unshare(1); skipped loudly otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
binary=${1:?usage: check-installed.sh PATH-TO-CAPBOX}
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then
  echo "capbox: SKIPPING the installed-binary check: it needs root and unshare to hide target/" >&2
  exit 0
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/bin" "$scratch/empty" "$scratch/work"
cp "$binary" "$scratch/bin/capbox"
backend=local
if [ -e /dev/kvm ]; then backend=sandbox; fi
echo "capbox: installed-binary check ($backend backend, target/ hidden)" >&2
unshare --mount sh -c '
  set -e
  mount --bind "$1/empty" "$2/target"
  cd "$1/work"
  env -u CAPBOX_GUEST "$1/bin/capbox" run --backend "$3" --json 3 4
' sh "$scratch" "$root" "$backend" | tee "$scratch/out.json"
grep -q '"exit":"Halt"' "$scratch/out.json"
