//! The local backend: the same kernel code as the guest, in this process,
//! with its own directory. No hypervisor needed; also the differential
//! oracle for the sandbox.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use capbox_shared::CacheDirectory;
use capbox_shared::abi::GuestFunction;
use capbox_shared::hash::CapHash;
use capbox_shared::kernel::{KernelHost, KernelState, LogSink, ProgramCache};

use super::{Backend, BackendKind, HostServices};
use crate::error::KernelError;

/// The kernel in-process.
pub struct LocalBackend {
    dir: CacheDirectory,
    programs: ProgramCache,
    services: HostServices,
}

impl LocalBackend {
    /// A kernel with an empty directory, served by `services`.
    pub fn new(services: HostServices) -> Self {
        LocalBackend {
            dir: CacheDirectory::new(),
            programs: ProgramCache::new(),
            services,
        }
    }
}

struct LocalHost<'a> {
    services: &'a HostServices,
}

impl LogSink for LocalHost<'_> {
    fn log(&mut self, message: &[u8]) {
        (self.services.log)(message);
    }
}

impl KernelHost for LocalHost<'_> {
    fn fetch_blob(&mut self, hash: &CapHash) -> Option<Vec<u8>> {
        (self.services.blobs)(&hash.0)
    }

    fn now(&mut self) -> Option<u64> {
        Some(now_ns())
    }
}

/// Nanoseconds on a monotonic clock (since its first use in this
/// process): the local kernel's clock.
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let nanos = EPOCH.get_or_init(Instant::now).elapsed().as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

impl Backend for LocalBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Local
    }

    fn clock_ticks(&self, timeout: Duration) -> u64 {
        super::ticks_at(1_000_000_000, timeout)
    }

    fn call_timed(
        &mut self,
        function: GuestFunction,
        request: &[u8],
        _deadlines: Duration,
    ) -> Result<Vec<u8>, KernelError> {
        let state = KernelState {
            dir: &self.dir,
            programs: &self.programs,
        };
        let mut host = LocalHost {
            services: &self.services,
        };
        // The guest's path (owned request), so the differential tests
        // cover it.
        Ok(state.handle_owned(&mut host, function, request.to_vec()))
    }
}
