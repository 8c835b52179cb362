#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, postgres) are installed
# for the shared-store tests: installs the distribution's `postgresql`
# package with apt-get when they are missing and we are root; otherwise
# says what is missing (the tests then fail under
# CAPBOX_REQUIRE_POSTGRES=1, or say SKIPPED without it).
#   scripts/pg-ensure.sh            # install when missing
#   scripts/pg-ensure.sh --dry-run  # show what would be installed (apt-get -s), even when present
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg-throwaway.sh
dry_run=${1:-}

if [ "$dry_run" != --dry-run ] && dir=$(pg_bindir); then
  echo "capbox: PostgreSQL found in $dir ($("$dir/postgres" --version))"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "capbox: PostgreSQL is missing and cannot be installed here (needs root and apt-get); install it (e.g. apt-get install -y postgresql)" >&2
  exit 1
fi
install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${dry_run:+-s} postgresql
}
echo "capbox: installing PostgreSQL (apt-get install -y postgresql${dry_run:+, simulated})" >&2
install >/tmp/capbox-pg-install.log 2>&1 || {
  apt-get update -q >/dev/null && install >/tmp/capbox-pg-install.log 2>&1
} || { cat /tmp/capbox-pg-install.log >&2; exit 1; }
if [ -n "$dry_run" ]; then
  grep -E '^(Inst|Conf) |newly installed' /tmp/capbox-pg-install.log || true
  exit 0
fi
dir=$(pg_bindir) || { echo "capbox: installed postgresql but found no initdb/postgres" >&2; exit 1; }
echo "capbox: PostgreSQL installed in $dir"
