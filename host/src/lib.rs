//! capbox host library.
pub use capbox_shared as shared;

pub mod conformance;
