//! The guest functions the host calls (see `capbox_shared::abi`): thin
//! wrappers that hand the request to the shared kernel.

use alloc::vec::Vec;

use capbox_shared::CacheDirectory;
use capbox_shared::abi::{GuestFunction, HostFunction};
use capbox_shared::hash::CapHash;
use capbox_shared::kernel::{KernelHost, KernelState, LogSink, ProgramCache, StreamState};
use foldhash::fast::FixedState;
use hyperlight_guest_bin::guest_function::register::register_fn;
use hyperlight_guest_bin::host_comm::call_host;

/// Every cap the guest holds. Fixed hasher seeds: the guest has no
/// entropy source at start-up, and the keys are hashes already.
static CACHE: CacheDirectory<FixedState> = CacheDirectory::new_const(
    FixedState::with_seed(0x6361_7062),
    FixedState::with_seed(0x6f78_6b31),
);
/// Decoded programs per image hash.
static PROGRAMS: ProgramCache = ProgramCache::new();
/// The gas a program runs interpreted before it is compiled to machine
/// code, besides `NATIVE_GAS_PER_INSTRUCTION` per instruction of it:
/// compiling costs the guest ~600 instructions per PVM instruction, which
/// a few dozen gas per instruction run as machine code win back
/// (docs/kernel.md, "PVM code as machine code").
const NATIVE_AFTER_GAS: u64 = 10_000;
/// The upload in progress, the export's cached layout, the pinned caps.
static STREAMS: StreamState = StreamState::new();

struct GuestHost;

impl LogSink for GuestHost {
    fn log(&mut self, message: &[u8]) {
        // A failed log call is not the program's problem; drop the message.
        let _: Result<(), _> = call_host(HostFunction::Log.name(), (message.to_vec(),));
    }
}

impl KernelHost for GuestHost {
    fn fetch_blob(&mut self, hash: &CapHash) -> Option<Vec<u8>> {
        let bytes: Vec<u8> = call_host(HostFunction::FetchBlob.name(), (hash.0.to_vec(),)).ok()?;
        (!bytes.is_empty()).then_some(bytes)
    }

    /// All or nothing: the host checks every blob before it keeps any; a
    /// failed call takes none (the blobs stay in the directory).
    fn spill_blobs(&mut self, message: Vec<u8>) -> u64 {
        call_host(HostFunction::SpillBlobs.name(), (message,)).unwrap_or(0)
    }

    /// The TSC: no host round trip. The host converts a call's deadline
    /// into TSC ticks (it measured the rate; KVM gives the guest the same
    /// counter rate), so the kernel only compares counter values.
    fn now(&mut self) -> Option<u64> {
        // SAFETY: rdtsc has no preconditions; it only reads the counter.
        Some(unsafe { core::arch::x86_64::_rdtsc() })
    }

    fn report_progress(&mut self, report: Vec<u8>) {
        // A report the host did not take only costs the host its copy: the
        // reply still carries every result.
        let _: Result<(), _> = call_host(HostFunction::ReportProgress.name(), (report,));
    }
}

/// Owned requests: a one-call `invoke`/`invoke_one` reply is written into
/// the request's buffer.
fn dispatch(function: GuestFunction, request: Vec<u8>) -> Vec<u8> {
    let state = KernelState {
        dir: &CACHE,
        programs: &PROGRAMS,
    };
    state.handle_with_streams(&STREAMS, &mut GuestHost, function, request)
}

fn put_cap(request: Vec<u8>) -> Vec<u8> {
    dispatch(GuestFunction::PutCap, request)
}

fn invoke(request: Vec<u8>) -> Vec<u8> {
    dispatch(GuestFunction::Invoke, request)
}

fn invoke_one(request: Vec<u8>) -> Vec<u8> {
    dispatch(GuestFunction::InvokeOne, request)
}

fn get_cap(request: Vec<u8>) -> Vec<u8> {
    dispatch(GuestFunction::GetCap, request)
}

fn stats(request: Vec<u8>) -> Vec<u8> {
    dispatch(GuestFunction::Stats, request)
}

fn sweep(request: Vec<u8>) -> Vec<u8> {
    dispatch(GuestFunction::Sweep, request)
}

fn bench(request: Vec<u8>) -> Vec<u8> {
    dispatch(GuestFunction::Bench, request)
}

fn set_budget(request: Vec<u8>) -> Vec<u8> {
    dispatch(GuestFunction::SetBudget, request)
}

fn put_cap_stream(request: Vec<u8>) -> Vec<u8> {
    dispatch(GuestFunction::PutCapStream, request)
}

fn get_cap_range(request: Vec<u8>) -> Vec<u8> {
    dispatch(GuestFunction::GetCapRange, request)
}

fn data_nodes(request: Vec<u8>) -> Vec<u8> {
    dispatch(GuestFunction::DataNodes, request)
}

fn host_keeps(request: Vec<u8>) -> Vec<u8> {
    dispatch(GuestFunction::HostKeeps, request)
}

fn ping(_request: Vec<u8>) -> Vec<u8> {
    Vec::new()
}

/// Aborts the guest: with request `b"oom"` through an allocation failure
/// (1 TiB), otherwise through a panic.
fn crash(request: Vec<u8>) -> Vec<u8> {
    if request == b"oom" {
        let huge: Vec<u8> = Vec::with_capacity(1 << 40);
        return huge;
    }
    panic!("crash requested by the host (fault-recovery test)");
}

/// Registers every guest function under its ABI name. The match makes a
/// new `GuestFunction` variant a compile error here until it is handled.
pub fn register_all() {
    // Programs that have run this much gas are compiled to machine code
    // (the heap is executable: the host enables Hyperlight's
    // `executable_heap`).
    PROGRAMS.set_native_after(NATIVE_AFTER_GAS);
    for function in GuestFunction::ALL {
        let name = function.name();
        match function {
            GuestFunction::PutCap => register_fn(name, put_cap),
            GuestFunction::Invoke => register_fn(name, invoke),
            GuestFunction::GetCap => register_fn(name, get_cap),
            GuestFunction::Stats => register_fn(name, stats),
            GuestFunction::Sweep => register_fn(name, sweep),
            GuestFunction::Bench => register_fn(name, bench),
            GuestFunction::Ping => register_fn(name, ping),
            GuestFunction::Crash => register_fn(name, crash),
            GuestFunction::InvokeOne => register_fn(name, invoke_one),
            GuestFunction::SetBudget => register_fn(name, set_budget),
            GuestFunction::PutCapStream => register_fn(name, put_cap_stream),
            GuestFunction::GetCapRange => register_fn(name, get_cap_range),
            GuestFunction::DataNodes => register_fn(name, data_nodes),
            GuestFunction::HostKeeps => register_fn(name, host_keeps),
        }
    }
}
