//! capbox host library.
pub use capbox_shared as shared;

pub mod backend;
mod error;
pub mod guest_elf;

pub use backend::{Backend, BackendKind, SandboxBackend, SandboxConfig};
pub use error::{GuestElfError, KernelError};
