//! The local backend: the same kernel code as the guest, in this process,
//! with its own directory. No hypervisor needed; also the differential
//! oracle for the sandbox.

use std::time::Duration;

use capbox_shared::abi::GuestFunction;
use capbox_shared::hash::CapHash;
use capbox_shared::kernel::{KernelHost, KernelState, LogSink, ProgramCache, StreamState};
use capbox_shared::{BlobBudget, CacheDirectory};

use super::clock::{local_hz, local_now, ticks_at};
use super::{Backend, BackendKind, HostServices};
use crate::error::KernelError;

/// The kernel in-process.
pub struct LocalBackend {
    dir: CacheDirectory,
    programs: ProgramCache,
    streams: StreamState,
    services: HostServices,
}

impl LocalBackend {
    /// A kernel with an empty directory, served by `services`, with the
    /// default blob budget (the sandbox's default, see
    /// [`super::SandboxConfig::blob_budget`]).
    pub fn new(services: HostServices) -> Self {
        Self::with_budget(services, super::SandboxConfig::default().blob_budget())
    }

    /// A kernel with an empty directory keeping to `budget` (evicting
    /// exactly as the sandbox's kernel does with that budget).
    pub fn with_budget(services: HostServices, budget: BlobBudget) -> Self {
        let dir = CacheDirectory::new();
        dir.set_budget(budget);
        LocalBackend {
            dir,
            programs: ProgramCache::new(),
            streams: StreamState::new(),
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

    /// The TSC where it is constant, else `Instant` (see `clock`).
    fn now(&mut self) -> Option<u64> {
        Some(local_now())
    }

    fn report_progress(&mut self, report: Vec<u8>) {
        (self.services.progress)(&report);
    }

    fn spill_blobs(&mut self, message: Vec<u8>) -> u64 {
        (self.services.spill)(&message)
    }
}

impl Backend for LocalBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Local
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    fn set_native_code(&mut self, on: bool) -> bool {
        self.programs.set_native(on);
        true
    }

    fn clock_ticks(&self, timeout: Duration) -> u64 {
        ticks_at(local_hz(), timeout)
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
        Ok(state.handle_with_streams(&self.streams, &mut host, function, request.to_vec()))
    }
}
