//! The `host_keeps` request: hashes of blobs the host can serve from now
//! on (its store holds them), as 32-byte hashes back to back. The reply is
//! a `PutCapReply` listing those the kernel holds (now host-known: an
//! eviction drops them without handing them to the host).

use alloc::vec::Vec;

use super::messages::{AbiError, malformed};

/// Most hashes one request names.
pub const MAX_HOST_KEEPS: usize = 4096;

/// Encodes a `host_keeps` request.
pub fn encode_host_keeps_request(hashes: &[[u8; 32]]) -> Vec<u8> {
    hashes.concat()
}

/// Reads a `host_keeps` request: a whole number of hashes, at most
/// [`MAX_HOST_KEEPS`].
pub fn decode_host_keeps_request(bytes: &[u8]) -> Result<Vec<[u8; 32]>, AbiError> {
    const NAME: &str = "HostKeepsRequest";
    if !bytes.len().is_multiple_of(32) {
        return Err(malformed(NAME, "length is not a whole number of hashes"));
    }
    if bytes.len() / 32 > MAX_HOST_KEEPS {
        return Err(malformed(NAME, "more hashes than MAX_HOST_KEEPS"));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut hash = [0u8; 32];
            hash.copy_from_slice(c);
            hash
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_bad_lengths_are_refused() {
        let hashes = [[1u8; 32], [2u8; 32]];
        let bytes = encode_host_keeps_request(&hashes);
        assert_eq!(decode_host_keeps_request(&bytes).unwrap(), hashes);
        assert!(decode_host_keeps_request(&bytes[..33]).is_err());
        assert_eq!(
            decode_host_keeps_request(&[]).unwrap(),
            Vec::<[u8; 32]>::new()
        );
        let many = alloc::vec![0u8; 32 * (MAX_HOST_KEEPS + 1)];
        assert!(decode_host_keeps_request(&many).is_err());
    }
}
