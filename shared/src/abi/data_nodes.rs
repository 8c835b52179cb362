//! Messages of `data_nodes` (ABI 11): a Data cap's Merkle tree read by
//! position, so a host exports only the pages and inner nodes its store
//! lacks (docs/store.md "Data pages").
//!
//! Request: `hash [32] ‖ count u32 ‖ count × (height u8 ‖ index u32)`, all
//! little-endian; a position names the subtree at `height` (0: page
//! `index`) covering pages `index << height ..`.
//!
//! Reply: the `GetCapReply` table (an error, or a body). Body: `kind u8`;
//! for a Data cap then `len u64 ‖ root [32]` and, per position in request
//! order, its content: at height 0 the page's 4096 bytes (zeros for an
//! absent page), above it the digests of its two children (`left ‖ right`,
//! 64 bytes). For any other kind the body is the kind byte alone, so a
//! host can ask without knowing the kind.

use alloc::vec::Vec;

use super::messages::{
    AbiError, RemoteError, decode_get_cap_reply, encode_get_cap_reply, malformed,
};
use crate::cap::{CapKind, PAGE_SIZE};

/// Bytes of one position in a request.
const POSITION_BYTES: usize = 5;
/// Bytes of an inner node's content in a reply.
pub const DATA_NODE_BYTES: usize = 64;
/// Most content bytes one `data_nodes` reply carries; a request asking
/// for more is refused (the host asks for less than its message limit).
pub const MAX_DATA_NODES_BYTES: usize = 16 << 20;

/// One tree position: `(height, index)`.
pub type TreePosition = (u8, u32);

/// Content bytes a position takes in a reply.
pub const fn position_bytes(height: u8) -> usize {
    if height == 0 {
        PAGE_SIZE
    } else {
        DATA_NODE_BYTES
    }
}

/// Encodes a `data_nodes` request.
pub fn encode_data_nodes_request(hash: &[u8; 32], positions: &[TreePosition]) -> Vec<u8> {
    let mut out = Vec::with_capacity(36 + positions.len() * POSITION_BYTES);
    out.extend_from_slice(hash);
    out.extend_from_slice(&(positions.len() as u32).to_le_bytes());
    for &(height, index) in positions {
        out.push(height);
        out.extend_from_slice(&index.to_le_bytes());
    }
    out
}

/// Reads a `data_nodes` request: the hash and the positions. A wrong
/// length, or positions whose content exceeds [`MAX_DATA_NODES_BYTES`],
/// is an error (checked before anything is allocated).
pub fn decode_data_nodes_request(bytes: &[u8]) -> Result<([u8; 32], Vec<TreePosition>), AbiError> {
    const NAME: &str = "DataNodesRequest";
    if bytes.len() < 36 {
        return Err(malformed(NAME, "shorter than its header"));
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&bytes[..32]);
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[32..36]);
    let count = u32::from_le_bytes(word) as usize;
    let body = &bytes[36..];
    if count.checked_mul(POSITION_BYTES) != Some(body.len()) {
        return Err(malformed(
            NAME,
            alloc::format!("{count} positions in {} bytes", body.len()),
        ));
    }
    let mut positions = Vec::with_capacity(count);
    let mut content = 0usize;
    for item in body.chunks_exact(POSITION_BYTES) {
        let height = item[0];
        word.copy_from_slice(&item[1..5]);
        content += position_bytes(height);
        if content > MAX_DATA_NODES_BYTES {
            return Err(malformed(
                NAME,
                alloc::format!("asks for more than {MAX_DATA_NODES_BYTES} bytes"),
            ));
        }
        positions.push((height, u32::from_le_bytes(word)));
    }
    Ok((hash, positions))
}

/// A decoded `data_nodes` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataNodesReply {
    /// The cap is not a Data.
    NotData(CapKind),
    /// A Data: its length, root, and each position's content in request
    /// order (split by [`position_bytes`]).
    Data {
        /// Length in bytes.
        len: u64,
        /// Merkle root.
        root: [u8; 32],
        /// The positions' contents, concatenated.
        content: Vec<u8>,
    },
}

/// Encodes a reply body: `kind ‖ [len ‖ root ‖ content]`.
pub fn encode_data_nodes_body(kind: CapKind, data: Option<(u64, &[u8; 32])>) -> Vec<u8> {
    let mut body = Vec::with_capacity(41);
    body.push(kind.tag());
    if let Some((len, root)) = data {
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(root);
    }
    body
}

/// Encodes a `data_nodes` reply from a body (or an error).
pub fn encode_data_nodes_reply(result: Result<&[u8], &RemoteError>) -> Vec<u8> {
    encode_get_cap_reply(result)
}

/// Reads a `data_nodes` reply; the content length is checked against the
/// positions asked for.
pub fn decode_data_nodes_reply(
    bytes: &[u8],
    positions: &[TreePosition],
) -> Result<Result<DataNodesReply, RemoteError>, AbiError> {
    const NAME: &str = "DataNodesReply";
    let mut body = match decode_get_cap_reply(bytes)? {
        Ok(body) => body,
        Err(e) => return Ok(Err(e)),
    };
    let Some(&tag) = body.first() else {
        return Err(malformed(NAME, "empty body"));
    };
    let kind = CapKind::from_tag(tag)
        .ok_or_else(|| malformed(NAME, alloc::format!("unknown kind tag {tag}")))?;
    if kind != CapKind::Data {
        if body.len() != 1 {
            return Err(malformed(NAME, "content for a cap that is not a Data"));
        }
        return Ok(Ok(DataNodesReply::NotData(kind)));
    }
    let expected: usize = positions.iter().map(|&(h, _)| position_bytes(h)).sum();
    if body.len() != 41 + expected {
        return Err(malformed(
            NAME,
            alloc::format!("{} bytes, expected {}", body.len(), 41 + expected),
        ));
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&body[1..9]);
    let mut root = [0u8; 32];
    root.copy_from_slice(&body[9..41]);
    body.drain(..41);
    Ok(Ok(DataNodesReply::Data {
        len: u64::from_le_bytes(word),
        root,
        content: body,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn requests_round_trip_and_bad_ones_are_errors() {
        let positions = [(0u8, 7u32), (3, 1)];
        let bytes = encode_data_nodes_request(&[5; 32], &positions);
        assert_eq!(
            decode_data_nodes_request(&bytes).unwrap(),
            ([5; 32], positions.to_vec())
        );
        assert!(decode_data_nodes_request(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_data_nodes_request(&bytes[..20]).is_err());
        // Too many pages for one reply.
        let many = vec![(0u8, 0u32); MAX_DATA_NODES_BYTES / PAGE_SIZE + 1];
        assert!(decode_data_nodes_request(&encode_data_nodes_request(&[0; 32], &many)).is_err());
    }

    #[test]
    fn replies_check_their_length_against_the_positions() {
        let mut body = encode_data_nodes_body(CapKind::Data, Some((10, &[1; 32])));
        body.extend_from_slice(&[2; 64]);
        let reply = encode_data_nodes_reply(Ok(&body));
        let decoded = decode_data_nodes_reply(&reply, &[(1, 0)]).unwrap().unwrap();
        assert_eq!(
            decoded,
            DataNodesReply::Data {
                len: 10,
                root: [1; 32],
                content: vec![2; 64]
            }
        );
        assert!(decode_data_nodes_reply(&reply, &[(0, 0)]).is_err());
        let other = encode_data_nodes_reply(Ok(&[CapKind::CNode.tag()]));
        assert_eq!(
            decode_data_nodes_reply(&other, &[]).unwrap().unwrap(),
            DataNodesReply::NotData(CapKind::CNode)
        );
    }
}
