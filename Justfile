# capbox recipes. `just like-ci` runs exactly what CI runs.

default: test

# Everything CI checks, as CI runs it.
like-ci:
    .ci/run

# Build the guest kernel (x86_64-unknown-none) on its own.
build-guest:
    scripts/build-guest.sh

test:
    cargo test --workspace

bench:
    cargo bench -p capbox-shared

# Run the w3f PVM vectors beside the repository.
conformance dir="../shared/pvm-vectors/programs":
    cargo run --release -- conformance {{dir}}

fmt:
    cargo fmt --all

clippy:
    cargo clippy --workspace --all-targets -- -D warnings

# In-guest micro-benchmarks (rdtsc cycles; local backend without a hypervisor).
bench-guest:
    cargo run --release -- bench --guest

# Guest instructions per kernel call on the sandbox (perf stat, needs root).
measure-calls:
    scripts/measure-calls.sh

# Store put/get benchmarks (criterion; writes to a temp dir with real fsyncs).
bench-store:
    cargo bench -p capbox --bench store

# Kernel ops on the local backend (criterion; one whole invocation per iteration).
bench-kernel:
    cargo bench -p capbox --bench kernel_ops

# Fuzz one target (needs nightly and cargo-fuzz): just fuzz run_blob 600
fuzz target="run_blob" secs="600":
    cd fuzz && cargo +nightly fuzz run {{target}} -- -max_total_time={{secs}}

# The host crate compiles for Windows (x86_64-pc-windows-gnu; installs mingw-w64 when root).
check-windows:
    scripts/check-windows.sh

# Rebuild the example Rust programs (programs/*.polkavm) with the SDK and the PolkaVM toolchain.
build-programs:
    scripts/build-programs.sh

# capbox vs PolkaVM 0.37's interpreter on the example Rust programs (criterion).
bench-programs:
    cargo bench -p capbox --bench programs
