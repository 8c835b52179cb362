//! capbox host library.
pub use capbox_shared as shared;

pub mod conformance;
pub mod store;
pub use store::{BlobInfo, PruneReport, Store, StoreError, StoreStats};
