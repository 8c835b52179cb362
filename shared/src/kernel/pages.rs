//! The kernel's side of `data_nodes` (ABI 11, `abi::data_nodes`): reads a
//! Data cap's Merkle tree by position from the directory's copy, using
//! the digests the kernel already cached (no page is re-hashed unless it
//! changed since the cap was last hashed). The host walks the tree top
//! down and asks only for the subtrees its store lacks.

use alloc::format;
use alloc::vec::Vec;
use core::hash::BuildHasher;

use super::service::KernelState;
use crate::abi::{
    self, ErrorKind, RemoteError, TreePosition, encode_data_nodes_body, encode_data_nodes_reply,
};
use crate::cap::{Cap, PAGE_SIZE};
use crate::hash::CapHash;

fn err(kind: ErrorKind, message: impl core::fmt::Display, hash: &CapHash) -> RemoteError {
    RemoteError {
        kind,
        message: format!("{message}"),
        hash: Some(hash.0),
    }
}

impl<S: BuildHasher> KernelState<'_, S> {
    /// Runs `data_nodes`; never panics on any request bytes.
    pub(super) fn handle_data_nodes(&self, request: &[u8]) -> Vec<u8> {
        let result = abi::decode_data_nodes_request(request)
            .map_err(|e| RemoteError {
                kind: ErrorKind::BadMessage,
                message: format!("{e}"),
                hash: None,
            })
            .and_then(|(hash, positions)| self.data_nodes(&CapHash(hash), &positions));
        match result {
            Ok(body) => encode_data_nodes_reply(Ok(&body)),
            Err(e) => encode_data_nodes_reply(Err(&e)),
        }
    }

    fn data_nodes(
        &self,
        hash: &CapHash,
        positions: &[TreePosition],
    ) -> Result<Vec<u8>, RemoteError> {
        let cap = self.dir.get_blob(hash).ok_or_else(|| {
            err(
                ErrorKind::MissingCap,
                crate::CacheError::BlobMissing(*hash),
                hash,
            )
        })?;
        let Cap::Data(data) = &*cap else {
            return Ok(encode_data_nodes_body(cap.kind(), None));
        };
        let root = data.root_digest();
        let mut body = encode_data_nodes_body(cap.kind(), Some((data.len(), &root)));
        let content: usize = positions.iter().map(|&(h, _)| abi::position_bytes(h)).sum();
        body.try_reserve(content)
            .map_err(|_| err(ErrorKind::OutOfMemory, "no memory for the reply", hash))?;
        for &(height, index) in positions {
            let outside = || {
                err(
                    ErrorKind::BadMessage,
                    format!(
                        "position (height {height}, index {index}) is outside a depth-{} tree",
                        data.tree_depth()
                    ),
                    hash,
                )
            };
            if height == 0 {
                if index >= data.page_count().max(1) {
                    return Err(outside());
                }
                match data.page(index) {
                    Some(page) => body.extend_from_slice(page),
                    None => body.resize(body.len() + PAGE_SIZE, 0),
                }
            } else {
                let left_index = index.checked_mul(2).ok_or_else(outside)?;
                let left = data.node_digest(height - 1, left_index);
                let right = data.node_digest(height - 1, left_index | 1);
                let (Some(left), Some(right)) = (left, right) else {
                    return Err(outside());
                };
                body.extend_from_slice(&left);
                body.extend_from_slice(&right);
            }
        }
        Ok(body)
    }
}
