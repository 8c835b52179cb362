#!/usr/bin/env python3
"""Where the guest's instructions go, per kernel call, by function.

This machine's nested KVM emulates every guest instruction, and the
`kvm:kvm_emulate_insn` tracepoint records each one's address. This script
records two runs of `capbox bench --backend sandbox --calls N --call KIND`
(N calls and 0 calls), maps every guest address to the guest ELF's symbol,
and prints the per-call difference by function (self instructions, not
including callees).

    scripts/profile-calls.py [--calls N] [--call KIND] [--top K]   (root)

Needs a release build (`cargo build --release -p capbox`), perf, nm, readelf
and (for --inline) llvm-addr2line.
"""

import argparse
import bisect
import collections
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/capbox")
GUEST = os.path.join(ROOT, "target/guest/x86_64-unknown-none/release/capbox-guest")


def symbols(elf):
    """Sorted (address, name) of the guest's functions (demangled)."""
    out = subprocess.run(
        ["nm", "-n", "-C", "--defined-only", elf], check=True, capture_output=True, text=True
    ).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    return syms


def entry_point(elf):
    out = subprocess.run(["readelf", "-h", elf], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "Entry point address" in line:
            return int(line.split()[-1], 16)
    sys.exit("no entry point in " + elf)


PREFIXES = {0x66, 0x67, 0xF2, 0xF3, 0x2E, 0x3E, 0x26, 0x64, 0x65, 0x36}


def control_kind(insn):
    """'call', 'ret', 'halt' or None for one instruction's bytes."""
    i = 0
    while i < len(insn) and (insn[i] in PREFIXES or 0x40 <= insn[i] <= 0x4F):
        i += 1
    if i >= len(insn):
        return None
    op = insn[i]
    if op == 0xE8:
        return "call"
    if op == 0xFF and i + 1 < len(insn) and (insn[i + 1] >> 3) & 7 in (2, 3):
        return "call"
    if op in (0xC3, 0xC2):
        return "ret"
    if op in (0xF4, 0xE6, 0xE7, 0xEE, 0xEF):  # hlt / out: the VM exits
        return "halt"
    return None


def record(args):
    """Guest instruction addresses and bytes of one run, in order."""
    with tempfile.NamedTemporaryFile(suffix=".perf") as data:
        subprocess.run(
            ["perf", "record", "-q", "-e", "kvm:kvm_emulate_insn", "-o", data.name, "--"] + args,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        trace = subprocess.run(
            ["perf", "script", "-i", data.name, "-F", "trace"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    events = []
    for line in trace.splitlines():
        fields = line.split(":", 2)
        if len(fields) == 3:
            insn = bytes.fromhex(fields[2].split("(")[0].replace(" ", ""))
            events.append((int(fields[1], 16), insn))
    return events


class Symbolizer:
    def __init__(self, syms, load_bias):
        self.addrs = [a for a, _ in syms]
        self.names = [n for _, n in syms]
        self.bias = load_bias
        self.cache = {}

    def __call__(self, rip):
        name = self.cache.get(rip)
        if name is None:
            i = bisect.bisect_right(self.addrs, rip - self.bias) - 1
            name = self.names[i] if i >= 0 else "?"
            self.cache[rip] = name
        return name


def self_counts(events, sym):
    out = collections.Counter()
    for rip, _ in events:
        out[sym(rip)] += 1
    return out


def inline_chains(rips, elf, bias):
    """rip -> the function names of its inline chain, innermost first
    (llvm-addr2line -i), so inlined helpers count as functions too."""
    rips = sorted(rips)
    query = "".join(f"{rip - bias:#x}\n" for rip in rips)
    out = subprocess.run(
        ["llvm-addr2line", "-f", "-i", "-C", "--output-style=LLVM", "-e", elf],
        input=query, check=True, capture_output=True, text=True,
    ).stdout
    blocks = out.strip("\n").split("\n\n")
    if len(blocks) != len(rips):
        raise SystemExit("llvm-addr2line output not understood")
    chains = {}
    for rip, block in zip(rips, blocks):
        names = block.splitlines()[0::2]
        chains[rip] = tuple(dict.fromkeys(n for n in names if n and n != "??"))
    return chains


def inclusive_counts(events, frames_of, within=None):
    """Instructions per function including its callees, from a shadow call
    stack rebuilt from the call/ret instructions in the trace.
    `frames_of(rip)` names the functions executing at rip (one, or an inline
    chain). With `within`, only instructions run while a function whose
    name contains it is active count."""
    out = collections.Counter()
    cumulative = [frozenset()]  # functions active in the callers
    for rip, insn in events:
        active = cumulative[-1].union(frames_of(rip))
        if within is None or any(within in f for f in active):
            for f in active:
                out[f] += 1
        kind = control_kind(insn)
        if kind == "call":
            cumulative.append(active)
            if len(cumulative) > 512:
                del cumulative[1:]
        elif kind == "ret":
            if len(cumulative) > 1:
                cumulative.pop()
        elif kind == "halt":
            del cumulative[1:]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--call", default="invoke-empty")
    p.add_argument("--per-call", type=int, default=1)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--bin", default=BIN,
                   help="the capbox binary (the guest is always the release build; a debug host runs the same guest code)")
    p.add_argument("--inclusive", action="store_true",
                   help="count each function's callees too (shadow call stack from the trace)")
    p.add_argument("--inline", action="store_true",
                   help="with --inclusive: inlined functions count as functions (llvm-addr2line)")
    p.add_argument("--within", help="with --inclusive: only instructions run inside this function")
    p.add_argument("--load-bias", type=lambda s: int(s, 0), default=None,
                   help="guest load address minus ELF address (default: found from the first instruction = entry point)")
    a = p.parse_args()
    syms = symbols(GUEST)

    def run(n):
        return record([a.bin, "bench", "--backend", "sandbox", "--calls", str(n), "--call", a.call,
                       "--per-call", str(a.per_call)])

    zero, many = run(0), run(a.calls)
    bias = a.load_bias
    if bias is None:
        # The lowest executed address of a run is not reliable; the entry
        # point is the first guest instruction ever run.
        bias = zero[0][0] - entry_point(GUEST)
    sym = Symbolizer(syms, bias)
    if a.inclusive:
        if a.inline:
            chains = inline_chains({rip for rip, _ in zero} | {rip for rip, _ in many}, GUEST, bias)
            frames_of = lambda rip: chains[rip] or (sym(rip),)
        else:
            frames_of = lambda rip: (sym(rip),)
        z = inclusive_counts(zero, frames_of, a.within)
        m = inclusive_counts(many, frames_of, a.within)
    else:
        z, m = self_counts(zero, sym), self_counts(many, sym)
    diff = {f: (m[f] - z.get(f, 0)) / a.calls for f in set(m) | set(z)}
    total = (len(many) - len(zero)) / a.calls
    kind = "inclusive" if a.inclusive else "self"
    print(f"{a.call}: {total:.0f} guest instructions per call (N={a.calls}, load bias {bias:#x}; {kind})")
    for f, n in sorted(diff.items(), key=lambda kv: -kv[1])[: a.top]:
        if abs(n) >= 1:
            print(f"{n:9.1f}  {f[:150]}")


if __name__ == "__main__":
    main()
