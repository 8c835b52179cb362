#!/usr/bin/env bash
# Guest instructions per kernel call on the sandbox backend, counted exactly
# as emulated instructions (this machine's nested KVM emulates every guest
# instruction): perf stat over N calls minus 0 calls, divided by N.
#   scripts/measure-calls.sh [N]     (needs root for the kvm tracepoint)
# CAPBOX_BIN=path: use that capbox binary instead of building the release
# one (the guest is a release build either way, so a debug host counts the
# same guest instructions); CAPBOX_GUEST=elf: run that guest.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
if [ -n "${CAPBOX_BIN:-}" ]; then
  bin=$CAPBOX_BIN
else
  cargo build --release -q -p capbox
  bin=target/release/capbox
fi
count() { perf stat -e kvm:kvm_emulate_insn -x, "$@" 2>&1 >/dev/null | awk -F, '/kvm_emulate_insn/ {print $1}'; }
per_call() { # kind
  local zero many
  zero=$(count "$bin" bench --backend sandbox --calls 0 --call "$1")
  many=$(count "$bin" bench --backend sandbox --calls "$n" --call "$1")
  echo $(( (many - zero) / n ))
}
per_iter() { # in-guest benchmark
  local zero many
  zero=$(count "$bin" bench --backend sandbox --guest --only "$1" --iters 0)
  many=$(count "$bin" bench --backend sandbox --guest --only "$1" --iters "$n")
  echo $(( (many - zero) / n ))
}
ping=$(per_call ping)
empty=$(per_call invoke-empty)
echo "guest instructions per call (N=$n):"
echo "  bare call (ping):          $ping"
echo "  invoke, empty endpoint:    $empty  ($(awk "BEGIN {printf \"%.2f\", $empty / $ping}")x the bare call)"
increment=$(per_call invoke-increment)
echo "  invoke, one-page state change (increment): $increment  ($(( increment - empty )) over the empty invoke, page hash included)"
zero=$(count "$bin" bench --backend sandbox --calls 0 --call invoke-empty --per-call 100)
many=$(count "$bin" bench --backend sandbox --calls 10 --call invoke-empty --per-call 100)
echo "  invoke, empty endpoint, 100 per call: $(( (many - zero) / 1000 )) per invocation"
echo "  of which, inside the kernel (per iteration of in-guest loops):"
for b in abi_invoke_empty abi_decode_invoke invoke_empty abi_encode_reply; do
  printf '    %-18s %s\n' "$b" "$(per_iter "$b")"
done
empty_iter=$(per_iter invoke_empty)
call_iter=$(per_iter invoke_call_empty)
echo "  one nested call of an empty child endpoint: $(( call_iter - empty_iter ))  (invoke_call_empty $call_iter - invoke_empty $empty_iter)"
