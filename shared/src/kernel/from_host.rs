//! Caps as the host sends them (`put_cap`, `fetch_blob` answers): a
//! canonical encoding, or a Data delta against a Data the kernel holds
//! (`cap::apply_data_delta`), which only the pages it lacks cross the ABI.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;

use crate::abi::ErrorKind;
use crate::cap::{Cap, apply_data_delta, data_delta_base, is_data_delta};
use crate::hash::CapHash;

/// Why bytes from the host did not give a cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FromHostError {
    /// `MissingCap` (the delta's base is not held: `hash` names it),
    /// `BadCap`, or `HashMismatch`.
    pub kind: ErrorKind,
    pub message: String,
    pub hash: Option<CapHash>,
}

fn bad(message: impl core::fmt::Display) -> FromHostError {
    FromHostError {
        kind: ErrorKind::BadCap,
        message: format!("{message}"),
        hash: None,
    }
}

/// The cap `bytes` stand for, checked against `expected` when given (a
/// delta must have one: it is only sent where the result's hash is named).
/// `held` looks a base up in the directory.
pub(super) fn cap_from_host(
    bytes: &[u8],
    expected: Option<&CapHash>,
    held: impl FnOnce(&CapHash) -> Option<Arc<Cap>>,
) -> Result<(Cap, CapHash), FromHostError> {
    let cap = if is_data_delta(bytes) {
        if expected.is_none() {
            return Err(bad("a Data delta must come with the hash it must have"));
        }
        let base_hash = data_delta_base(bytes).map_err(bad)?;
        let base = held(&base_hash).ok_or_else(|| FromHostError {
            kind: ErrorKind::MissingCap,
            message: format!("the base {base_hash} of a Data delta is not held"),
            hash: Some(base_hash),
        })?;
        let Cap::Data(base) = &*base else {
            return Err(bad(format_args!(
                "the base {base_hash} of a Data delta is a {}, not a Data",
                base.kind().name()
            )));
        };
        Cap::Data(apply_data_delta(base, bytes).map_err(bad)?)
    } else {
        Cap::decode(bytes).map_err(bad)?
    };
    let hash = cap.hash().map_err(bad)?;
    if let Some(expected) = expected
        && *expected != hash
    {
        return Err(FromHostError {
            kind: ErrorKind::HashMismatch,
            message: format!("bytes sent as {expected} hash to {hash}"),
            hash: Some(*expected),
        });
    }
    if cap.has_refs() {
        // The codec cannot express a Ref; kept as a guard.
        return Err(bad(crate::cap::CapError::UnsettledRef));
    }
    Ok((cap, hash))
}
