//! The guest and host function lists, defined once.

/// Version of the host ↔ guest ABI: the function list below plus the
/// message schema. Bump it on any incompatible change; the host refuses a
/// guest ELF whose note carries another version.
pub const ABI_VERSION: u32 = 12;

/// Functions the guest kernel exports to the host. Each takes one request
/// message (`Vec<u8>`) and returns one reply message (`Vec<u8>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum GuestFunction {
    /// `PutCapRequest` → `PutCapReply`: publish encoded caps.
    PutCap = 1,
    /// `InvokeRequest` → `InvokeReply`: publish caps, then run invocations.
    Invoke = 2,
    /// `GetCapRequest` → `GetCapReply`: export a blob's encoding.
    GetCap = 3,
    /// empty → `StatsReply`: directory and arena usage.
    Stats = 4,
    /// empty → `StatsReply`: drop unreferenced working entries, then stats.
    Sweep = 5,
    /// `BenchRequest` → `BenchReply`: an in-guest micro-benchmark.
    Bench = 6,
    /// empty → empty: does nothing; the baseline for measuring call cost
    /// and a liveness check.
    Ping = 7,
    /// never returns: aborts the guest on purpose (a panic, or with request
    /// `b"oom"` an allocation failure), so tests can check that the host
    /// recovers from a guest fault.
    Crash = 8,
    /// `InvokeOneRequest` → `InvokeReply`: one invocation, no caps; the
    /// same as `invoke` with one call, for less verification work.
    InvokeOne = 9,
    /// `SetBudgetRequest` → `StatsReply`: set the blob budget (evicting
    /// down to it), then stats.
    SetBudget = 10,
    /// `put_cap_stream` request (begin / chunk / end / abort, see
    /// `abi::stream`) → `PutCapReply` (the hash after `end`): publish one
    /// cap larger than a message.
    PutCapStream = 11,
    /// `get_cap_range` request → `GetCapReply` (total length ‖ bytes):
    /// a byte range of a cap's encoding.
    GetCapRange = 12,
    /// `data_nodes` request → reply (`abi::data_nodes`): a Data cap's
    /// Merkle tree by position (child digests, pages), for exports that
    /// move only what the host's store lacks. Added in ABI 11.
    DataNodes = 13,
    /// `host_keeps` request (`abi::host_keeps`: hashes) → `PutCapReply`
    /// (those of them the kernel holds): the host can serve these blobs
    /// from now on (its store has them), so eviction may drop them without
    /// a spill. Added in ABI 12.
    HostKeeps = 14,
}

impl GuestFunction {
    /// Every guest function, in number order.
    pub const ALL: [GuestFunction; 14] = [
        GuestFunction::PutCap,
        GuestFunction::Invoke,
        GuestFunction::GetCap,
        GuestFunction::Stats,
        GuestFunction::Sweep,
        GuestFunction::Bench,
        GuestFunction::Ping,
        GuestFunction::Crash,
        GuestFunction::InvokeOne,
        GuestFunction::SetBudget,
        GuestFunction::PutCapStream,
        GuestFunction::GetCapRange,
        GuestFunction::DataNodes,
        GuestFunction::HostKeeps,
    ];

    /// The name the function is registered under in the guest.
    pub const fn name(self) -> &'static str {
        match self {
            GuestFunction::PutCap => "put_cap",
            GuestFunction::Invoke => "invoke",
            GuestFunction::GetCap => "get_cap",
            GuestFunction::Stats => "stats",
            GuestFunction::Sweep => "sweep",
            GuestFunction::Bench => "bench",
            GuestFunction::Ping => "ping",
            GuestFunction::Crash => "crash",
            GuestFunction::InvokeOne => "invoke_one",
            GuestFunction::SetBudget => "set_budget",
            GuestFunction::PutCapStream => "put_cap_stream",
            GuestFunction::GetCapRange => "get_cap_range",
            GuestFunction::DataNodes => "data_nodes",
            GuestFunction::HostKeeps => "host_keeps",
        }
    }

    /// The function's number (stable within one ABI version).
    pub const fn number(self) -> u32 {
        self as u32
    }
}

/// Functions the host exports to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum HostFunction {
    /// `fetch_blob(hash: Vec<u8>) -> Vec<u8>`: the encoded cap with that
    /// hash, or an empty vector when the host does not have it.
    FetchBlob = 1,
    /// `log(message: Vec<u8>)`: one message from a program's `log` op.
    Log = 2,
    /// `report_progress(report: Vec<u8>)`: one `ProgressReport` of a
    /// running `invoke` batch that asked for reports (its `report` field).
    ReportProgress = 3,
    /// `spill_blobs(message: Vec<u8>) -> u64`: blobs the guest is about to
    /// evict that the host lacks (a `PutCapRequest`, every blob with its
    /// hash); the host checks each hash, keeps them for `fetch_blob` and
    /// returns how many it took (all of them, or 0 when it refuses).
    SpillBlobs = 4,
}

impl HostFunction {
    /// Every host function, in number order.
    pub const ALL: [HostFunction; 4] = [
        HostFunction::FetchBlob,
        HostFunction::Log,
        HostFunction::ReportProgress,
        HostFunction::SpillBlobs,
    ];

    /// The name the host registers the function under.
    pub const fn name(self) -> &'static str {
        match self {
            HostFunction::FetchBlob => "fetch_blob",
            HostFunction::Log => "log",
            HostFunction::ReportProgress => "report_progress",
            HostFunction::SpillBlobs => "spill_blobs",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_are_unique() {
        for (i, a) in GuestFunction::ALL.iter().enumerate() {
            assert_eq!(a.number() as usize, i + 1);
            for b in &GuestFunction::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }
}
