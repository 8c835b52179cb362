//! capbox host library: a [`Kernel`] handle that publishes caps and runs
//! invocations on the sandbox backend (the guest kernel in a Hyperlight
//! micro-VM) or the local backend (the same kernel in-process).
pub use capbox_shared as shared;

pub mod backend;
pub mod conformance;
mod error;
pub mod guest_elf;
mod kernel;

pub use backend::{
    Backend, BackendKind, HostServices, LocalBackend, SandboxBackend, SandboxConfig,
};
pub use error::{GuestElfError, KernelError};
pub use kernel::{BackendChoice, Invocation, Kernel};

/// Programs' `log` messages also go to stderr when `CAPBOX_LOG` is set
/// (besides [`Kernel::take_logs`]).
pub(crate) fn log_program_message(message: &[u8]) {
    if std::env::var_os("CAPBOX_LOG").is_some() {
        eprintln!("capbox log: {}", String::from_utf8_lossy(message));
    }
}

pub mod store;
pub use store::{BlobInfo, PruneReport, Store, StoreError, StoreStats};
