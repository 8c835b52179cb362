//! capbox host library: a [`Kernel`] handle that publishes caps and runs
//! invocations on the sandbox backend (the guest kernel in a Hyperlight
//! micro-VM) or the local backend (the same kernel in-process).
pub use capbox_shared as shared;

pub mod backend;
pub mod blob_cache;
pub mod conformance;
pub mod data_delta;
mod error;
mod export;
mod export_pages;
pub mod guest_elf;
pub mod import;
mod kernel;
mod pool;
pub mod session;
pub mod spill;
pub mod store;
pub mod store_pg;

pub use backend::{
    Backend, BackendKind, HostServices, LocalBackend, SandboxBackend, SandboxConfig,
};
pub use error::{GuestElfError, KernelError};
pub use export_pages::{
    DataNodeSource, DataPartStore, DataParts, ExportedData, KernelNodes, PagedPut,
    export_data_caps, export_data_caps_listed, put_data_from,
};
pub use guest_elf::GuestImage;
pub use kernel::{
    BackendChoice, BlobFallback, DEFAULT_BATCH_REPORTS, DEFAULT_TIMEOUT, HostCacheStats,
    Invocation, Kernel, MAX_REPORTED_BLOB_BYTES, ReportMode, escape_for_terminal,
};
pub use pool::{ChainResult, MAX_JOBS, Pool, PoolConfig, PoolError};
pub use session::{Committed, OnConflict, Session, SessionError, SessionOptions};
pub use store::{
    BlobInfo, BlobReader, BlobWriter, HeadChange, HistoryEntry, PruneReport, SaveReport,
    SharedStore, Store, StoreBackend, StoreError, StoreLocation, StoreLock, StoreOptions,
    StoreStats, VerifyProblem, VerifyReport,
};
pub use store_pg::{PgError, PgStore};
