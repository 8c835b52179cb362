//! The kernels' clocks. Deadlines travel as ticks of the kernel's clock
//! (`Invocation.timeout` on the wire); the host converts.
//!
//! * The guest reads its TSC (`rdtsc`, no host round trip). KVM gives the
//!   guest the host's TSC rate, so the host measures that rate once per
//!   process (~10 ms against `Instant`) and converts with it.
//! * The local backend reads the TSC too when the CPU says it is constant
//!   (`constant_tsc` in /proc/cpuinfo on Linux, CPUID's invariant-TSC bit
//!   elsewhere): ~2 ns a read, where
//!   `Instant::now` costs ~28 ns here, which was ~30 % of an empty
//!   invocation's kernel time (the clock is read once per invocation).
//!   Otherwise it uses `Instant`, in nanoseconds.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `timeout` in ticks of a clock running at `hz`, saturating at
/// `u64::MAX` (no deadline).
pub(crate) fn ticks_at(hz: u64, timeout: Duration) -> u64 {
    let ticks = timeout.as_nanos().saturating_mul(u128::from(hz)) / 1_000_000_000;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// The time-stamp counter.
#[cfg(target_arch = "x86_64")]
pub(crate) fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no preconditions; it only reads the counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn rdtsc() -> u64 {
    monotonic_ns()
}

/// Whether the TSC ticks at a constant rate: Linux's `constant_tsc` flag
/// (which also covers CPUs that do not advertise it through CPUID), else
/// CPUID's invariant-TSC bit (leaf 0x8000_0007, EDX bit 8), which is what
/// other systems (Windows) have to go by.
fn tsc_is_constant() -> bool {
    if !cfg!(target_arch = "x86_64") {
        return false;
    }
    if cfg!(target_os = "linux") {
        return std::fs::read_to_string("/proc/cpuinfo")
            .is_ok_and(|info| info.split_whitespace().any(|flag| flag == "constant_tsc"));
    }
    cpuid_invariant_tsc()
}

#[cfg(target_arch = "x86_64")]
fn cpuid_invariant_tsc() -> bool {
    use core::arch::x86_64::__cpuid;
    // Leaf 0x8000_0000 reports the highest extended leaf.
    __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
}

#[cfg(not(target_arch = "x86_64"))]
fn cpuid_invariant_tsc() -> bool {
    false
}

struct Tsc {
    hz: u64,
    constant: bool,
}

fn tsc() -> &'static Tsc {
    static TSC: OnceLock<Tsc> = OnceLock::new();
    TSC.get_or_init(|| {
        let constant = tsc_is_constant();
        let (t0, c0) = (Instant::now(), rdtsc());
        std::thread::sleep(Duration::from_millis(10));
        let (c1, t1) = (rdtsc(), Instant::now());
        let nanos = t1.duration_since(t0).as_nanos().max(1);
        let hz = u128::from(c1.wrapping_sub(c0)) * 1_000_000_000 / nanos;
        Tsc {
            // A counter that did not move would make every deadline 0.
            hz: u64::try_from(hz).unwrap_or(u64::MAX).max(1_000_000),
            constant,
        }
    })
}

/// The TSC's rate in ticks per second, measured once per process. Without
/// `constant_tsc` the rate may drift: a warning (the sandbox's watchdog
/// stays the last resort).
pub(crate) fn tsc_hz() -> u64 {
    let tsc = tsc();
    if !tsc.constant {
        static WARNED: OnceLock<()> = OnceLock::new();
        WARNED.get_or_init(|| {
            eprintln!(
                "capbox: the CPU does not report a constant-rate TSC; sandbox deadlines may be inaccurate"
            );
        });
    }
    tsc.hz
}

/// The local kernel's clock: the TSC where it is constant, else
/// nanoseconds on `Instant`.
pub(crate) fn local_now() -> u64 {
    if tsc().constant {
        rdtsc()
    } else {
        monotonic_ns()
    }
}

/// [`local_now`]'s ticks per second.
pub(crate) fn local_hz() -> u64 {
    let tsc = tsc();
    if tsc.constant { tsc.hz } else { 1_000_000_000 }
}

/// Nanoseconds since this clock's first use in the process.
fn monotonic_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let nanos = EPOCH.get_or_init(Instant::now).elapsed().as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX)
}
