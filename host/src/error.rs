//! The host crate's error types.

use std::path::PathBuf;

use capbox_shared::abi::{AbiError, RemoteError};

/// Problems with the guest kernel ELF.
#[derive(Debug, thiserror::Error)]
pub enum GuestElfError {
    /// The file could not be read.
    #[error("cannot read the guest kernel {path}: {source}")]
    Read {
        /// The guest path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an ELF goblin can parse.
    #[error("the guest kernel {path} is not a valid ELF: {reason}")]
    BadElf {
        /// The guest path.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// No capbox ABI note.
    #[error(
        "the guest kernel {path} has no capbox ABI note (section .note.capbox-abi); is it a capbox guest?"
    )]
    NoAbiNote {
        /// The guest path.
        path: PathBuf,
    },
    /// The guest's features note asks for a CPU feature this CPU lacks.
    #[error(
        "the guest kernel {path} needs the CPU feature {feature}, which this CPU does not have; use a guest built without CAPBOX_GUEST_SIMD=1"
    )]
    CpuFeature {
        /// The guest path.
        path: PathBuf,
        /// The missing feature.
        feature: &'static str,
    },
    /// The note's version differs from the host's.
    #[error(
        "the guest kernel {path} speaks capbox ABI v{guest} but this host speaks v{host}; rebuild the guest (scripts/build-guest.sh)"
    )]
    AbiMismatch {
        /// The guest path.
        path: PathBuf,
        /// Version in the guest.
        guest: u32,
        /// Version in the host.
        host: u32,
    },
}

/// Errors from a [`crate::Kernel`] call.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The guest ELF is unusable.
    #[error(transparent)]
    GuestElf(#[from] GuestElfError),
    /// No hypervisor is usable here (sandbox backend requested).
    #[error("no usable hypervisor (/dev/kvm or /dev/mshv); use the local backend")]
    NoHypervisor,
    /// Creating the sandbox failed.
    #[error("cannot create the sandbox: {0}")]
    SandboxCreate(String),
    /// The guest aborted, panicked, faulted or timed out; the sandbox has
    /// been rebuilt and the next call works.
    #[error("guest fault during `{function}` (sandbox rebuilt): {detail}")]
    GuestFault {
        /// The guest function that was running.
        function: &'static str,
        /// What Hyperlight reported.
        detail: String,
    },
    /// A guest function failed without a fault (the VM state is intact).
    #[error("guest call `{function}` failed: {detail}")]
    GuestCall {
        /// The guest function.
        function: &'static str,
        /// What Hyperlight reported.
        detail: String,
    },
    /// A request is larger than the sandbox's message limit.
    #[error(
        "`{function}` request of {len} bytes exceeds the {limit}-byte message limit \
         (raise it with CAPBOX_MESSAGE_MIB=N, or SandboxConfig::message_bytes)"
    )]
    MessageTooLarge {
        /// The guest function.
        function: &'static str,
        /// Request size.
        len: usize,
        /// The limit (`SandboxConfig::message_bytes`).
        limit: usize,
    },
    /// The guest fault could not be recovered from: rebuilding failed.
    #[error(
        "guest fault during `{function}` ({detail}); rebuilding the sandbox failed too: {rebuild}"
    )]
    RebuildFailed {
        /// The guest function that was running.
        function: &'static str,
        /// What Hyperlight reported.
        detail: String,
        /// Why the rebuild failed.
        rebuild: String,
    },
    /// The reply did not parse.
    #[error("bad reply from the kernel: {0}")]
    BadReply(#[from] AbiError),
    /// The kernel refused the request.
    #[error("kernel refused the request: {0}")]
    Refused(RemoteError),
    /// A cap the host was given cannot be encoded or hashed.
    #[error("bad cap: {0}")]
    BadCap(String),
    /// The reply did not match the request.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Invocation `index` of a batch was running when the guest faulted:
    /// it committed nothing (the sandbox was rebuilt); nothing was re-run.
    #[error(
        "invocation {index} of the batch was running when the guest faulted (nothing of it committed, not re-run): {fault}"
    )]
    BatchFault {
        /// Its index in the batch.
        index: usize,
        /// The fault ([`KernelError::GuestFault`] or
        /// [`KernelError::RebuildFailed`]).
        fault: Box<KernelError>,
    },
    /// Invocation `index` of a batch did not run: the guest faulted during
    /// an earlier one (`faulted`) and the rest of the batch was not run.
    #[error(
        "invocation {index} of the batch did not run: the guest faulted during invocation {faulted}"
    )]
    BatchNotRun {
        /// Its index in the batch.
        index: usize,
        /// The invocation during which the guest faulted.
        faulted: usize,
    },
    /// A progress report of a batch was malformed or inconsistent (a
    /// compromised or broken guest); the batch's results are not trusted.
    #[error("bad progress report from the kernel: {0}")]
    BadReport(String),
    /// Reading or writing the bytes of a streamed transfer failed.
    #[error("streamed transfer I/O error: {0}")]
    TransferIo(#[source] std::io::Error),
    /// The store refused a streamed blob (e.g. it did not match its hash).
    #[error("store error during a streamed transfer: {0}")]
    Store(#[from] crate::store::StoreError),
}
