//! The two backends behind [`crate::Kernel`]: both take an ABI request
//! message for one guest function and return the reply message, so the
//! host logic above them is identical.

mod clock;
mod local;
mod sandbox;

pub use local::LocalBackend;

pub use sandbox::{SandboxBackend, SandboxConfig, hypervisor_present};

use std::time::Duration;

use capbox_shared::abi::GuestFunction;

use crate::error::KernelError;

/// Which backend runs the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The guest kernel in a Hyperlight micro-VM.
    Sandbox,
    /// The same kernel code in this process.
    Local,
}

impl core::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BackendKind::Sandbox => "sandbox",
            BackendKind::Local => "local",
        })
    }
}

/// Serves blobs the kernel asks for (`fetch_blob`): the host's copy.
pub type BlobSource = std::sync::Arc<dyn Fn(&[u8; 32]) -> Option<Vec<u8>> + Send + Sync>;

/// Receives programs' `log` messages.
pub type LogTarget = std::sync::Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Receives the progress reports of a batch (`report_progress`: encoded
/// `ProgressReport` messages, unchecked).
pub type ProgressTarget = std::sync::Arc<dyn Fn(&[u8]) + Send + Sync>;
/// Takes blobs the kernel spills before evicting them (`spill_blobs`: an
/// unchecked `PutCapRequest` message); returns how many it kept (all or
/// none).
pub type SpillTarget = std::sync::Arc<dyn Fn(&[u8]) -> u64 + Send + Sync>;

/// What the host provides to a kernel (the guest's host functions).
#[derive(Clone)]
pub struct HostServices {
    /// Answers `fetch_blob`.
    pub blobs: BlobSource,
    /// Answers `log`.
    pub log: LogTarget,
    /// Answers `report_progress`.
    pub progress: ProgressTarget,
    /// Answers `spill_blobs`.
    pub spill: SpillTarget,
}

/// One kernel backend: runs a guest function on a request message.
pub trait Backend: Send {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Runs `function` with `request`, returning its reply message.
    ///
    /// [`KernelError::GuestFault`] means the kernel's state was lost (the
    /// sandbox was rebuilt): nothing published before is there any more.
    fn call(&mut self, function: GuestFunction, request: &[u8]) -> Result<Vec<u8>, KernelError> {
        self.call_timed(function, request, Duration::ZERO)
    }

    /// [`Self::call`] for a request whose invocations carry deadlines
    /// adding up to `deadlines`: the sandbox's watchdog then waits longer
    /// than that before it kills the call.
    fn call_timed(
        &mut self,
        function: GuestFunction,
        request: &[u8],
        deadlines: Duration,
    ) -> Result<Vec<u8>, KernelError>;

    /// `timeout` in ticks of the kernel's clock (the `timeout` of an
    /// `Invocation` on the wire), saturating; `u64::MAX` means none.
    fn clock_ticks(&self, timeout: Duration) -> u64;

    /// Runs programs decoded from now on as machine code (`on`) or
    /// interpreted; `false` where this backend cannot (the sandbox, or a
    /// build without `capbox_shared::pvm::jit`).
    fn set_native_code(&mut self, on: bool) -> bool {
        let _ = on;
        false
    }
}
