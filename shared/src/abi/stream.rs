//! Messages of the chunked transfers (`put_cap_stream`, `get_cap_range`):
//! caps whose encoding does not fit in one message.
//!
//! The requests are a fixed little-endian header followed (for a chunk)
//! by raw bytes, not flatbuffers: the chunk is the bulk of the message and
//! a fixed header is checked by its length before anything is read, with
//! no copy of the chunk into a builder. The replies reuse the `PutCapReply`
//! (error, or the cap's hash when an upload ends) and `GetCapReply` (error,
//! or the total encoded length as 8 bytes followed by the chunk) tables.
//!
//! Upload request (`put_cap_stream`), first byte the operation:
//! * `1` begin: `id u64 ‖ kind u8 ‖ total u64 ‖ hash [32]`
//! * `2` chunk: `id u64 ‖ offset u64 ‖ bytes…`
//! * `3` end:   `id u64`
//! * `4` abort: `id u64`
//!
//! Range request (`get_cap_range`): `hash [32] ‖ offset u64 ‖ max_len u32 ‖
//! keep u8` (1: the host keeps a reply holding the whole encoding, so the
//! kernel may evict the cap without spilling it, as after `get_cap`).

use alloc::vec::Vec;

use super::messages::{
    AbiError, RemoteError, decode_get_cap_reply, encode_get_cap_reply, malformed,
};

/// One `put_cap_stream` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRequest<'a> {
    /// Starts upload `id` (dropping any unfinished one) of a cap of kind
    /// tag `kind` whose encoding is `total` bytes and hashes to `hash`.
    Begin {
        /// The host's name for this upload.
        id: u64,
        /// The cap's kind tag (the encoding's first byte).
        kind: u8,
        /// Length of the whole encoding, kind tag included.
        total: u64,
        /// The hash the cap must have.
        hash: [u8; 32],
    },
    /// The encoding's bytes at `offset` (chunks must come in order).
    Chunk {
        /// The upload.
        id: u64,
        /// Where `bytes` start in the encoding.
        offset: u64,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// Every byte was sent: verify and publish.
    End {
        /// The upload.
        id: u64,
    },
    /// Drop the upload.
    Abort {
        /// The upload.
        id: u64,
    },
}

const BEGIN: u8 = 1;
const CHUNK: u8 = 2;
const END: u8 = 3;
const ABORT: u8 = 4;

/// Bytes of a chunk request before its payload.
pub const STREAM_CHUNK_HEADER: usize = 17;

/// Encodes a `put_cap_stream` request.
pub fn encode_stream_request(request: &StreamRequest<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    match request {
        StreamRequest::Begin {
            id,
            kind,
            total,
            hash,
        } => {
            out.push(BEGIN);
            out.extend_from_slice(&id.to_le_bytes());
            out.push(*kind);
            out.extend_from_slice(&total.to_le_bytes());
            out.extend_from_slice(hash);
        }
        StreamRequest::Chunk { id, offset, bytes } => {
            out.reserve(STREAM_CHUNK_HEADER + bytes.len());
            out.push(CHUNK);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(bytes);
        }
        StreamRequest::End { id } => {
            out.push(END);
            out.extend_from_slice(&id.to_le_bytes());
        }
        StreamRequest::Abort { id } => {
            out.push(ABORT);
            out.extend_from_slice(&id.to_le_bytes());
        }
    }
    out
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Reads a `put_cap_stream` request; a wrong length or operation is an
/// error.
pub fn decode_stream_request(bytes: &[u8]) -> Result<StreamRequest<'_>, AbiError> {
    const NAME: &str = "PutCapStream";
    let need = |n: usize| {
        if bytes.len() == n {
            Ok(())
        } else {
            Err(malformed(
                NAME,
                alloc::format!("{} bytes, expected {n}", bytes.len()),
            ))
        }
    };
    let Some(&op) = bytes.first() else {
        return Err(malformed(NAME, "empty"));
    };
    match op {
        BEGIN => {
            need(1 + 8 + 1 + 8 + 32)?;
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&bytes[18..50]);
            Ok(StreamRequest::Begin {
                id: u64_at(bytes, 1),
                kind: bytes[9],
                total: u64_at(bytes, 10),
                hash,
            })
        }
        CHUNK => {
            if bytes.len() < STREAM_CHUNK_HEADER {
                return Err(malformed(NAME, "chunk header truncated"));
            }
            Ok(StreamRequest::Chunk {
                id: u64_at(bytes, 1),
                offset: u64_at(bytes, 9),
                bytes: &bytes[STREAM_CHUNK_HEADER..],
            })
        }
        END => {
            need(9)?;
            Ok(StreamRequest::End {
                id: u64_at(bytes, 1),
            })
        }
        ABORT => {
            need(9)?;
            Ok(StreamRequest::Abort {
                id: u64_at(bytes, 1),
            })
        }
        other => Err(malformed(NAME, alloc::format!("unknown operation {other}"))),
    }
}

/// One `get_cap_range` request: up to `max_len` bytes of the encoding of
/// `hash` from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeRequest {
    /// The cap.
    pub hash: [u8; 32],
    /// Where the range starts in its encoding.
    pub offset: u64,
    /// Most bytes to return.
    pub max_len: u32,
    /// The host keeps the cap if this reply holds its whole encoding.
    pub keep: bool,
}

/// Encodes a `get_cap_range` request.
pub fn encode_range_request(request: &RangeRequest) -> Vec<u8> {
    let mut out = Vec::with_capacity(45);
    out.extend_from_slice(&request.hash);
    out.extend_from_slice(&request.offset.to_le_bytes());
    out.extend_from_slice(&request.max_len.to_le_bytes());
    out.push(u8::from(request.keep));
    out
}

/// Reads a `get_cap_range` request.
pub fn decode_range_request(bytes: &[u8]) -> Result<RangeRequest, AbiError> {
    if bytes.len() != 45 || bytes[44] > 1 {
        return Err(malformed(
            "GetCapRange",
            alloc::format!("{} bytes, expected 45 ending in 0 or 1", bytes.len()),
        ));
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&bytes[..32]);
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[40..44]);
    Ok(RangeRequest {
        hash,
        offset: u64_at(bytes, 32),
        max_len: u32::from_le_bytes(len),
        keep: bytes[44] == 1,
    })
}

/// `get_cap_range` reply: the encoding's total length and the chunk, or
/// an error.
pub fn encode_range_reply(result: Result<(u64, &[u8]), &RemoteError>) -> Vec<u8> {
    match result {
        Ok((total, chunk)) => {
            let mut body = Vec::with_capacity(8 + chunk.len());
            body.extend_from_slice(&total.to_le_bytes());
            body.extend_from_slice(chunk);
            encode_get_cap_reply(Ok(&body))
        }
        Err(e) => encode_get_cap_reply(Err(e)),
    }
}

/// Reads a `get_cap_range` reply: (total length, chunk).
pub fn decode_range_reply(bytes: &[u8]) -> Result<Result<(u64, Vec<u8>), RemoteError>, AbiError> {
    match decode_get_cap_reply(bytes)? {
        Ok(mut body) => {
            if body.len() < 8 {
                return Err(malformed("GetCapRangeReply", "no total length"));
            }
            let total = u64_at(&body, 0);
            body.drain(..8);
            Ok(Ok((total, body)))
        }
        Err(e) => Ok(Err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_lengths_are_errors() {
        let requests = [
            StreamRequest::Begin {
                id: 7,
                kind: 0,
                total: 1 << 33,
                hash: [9; 32],
            },
            StreamRequest::Chunk {
                id: 7,
                offset: 4096,
                bytes: b"abc",
            },
            StreamRequest::End { id: 7 },
            StreamRequest::Abort { id: 8 },
        ];
        for request in &requests {
            let bytes = encode_stream_request(request);
            assert_eq!(&decode_stream_request(&bytes).unwrap(), request);
            if !matches!(request, StreamRequest::Chunk { .. }) {
                let mut long = bytes.clone();
                long.push(0);
                assert!(decode_stream_request(&long).is_err());
                assert!(decode_stream_request(&bytes[..bytes.len() - 1]).is_err());
            }
        }
        assert!(decode_stream_request(&[]).is_err());
        assert!(decode_stream_request(&[9, 0, 0]).is_err());
        assert!(decode_stream_request(&[CHUNK; STREAM_CHUNK_HEADER - 1]).is_err());
        let range = RangeRequest {
            hash: [3; 32],
            offset: 12,
            max_len: 99,
            keep: true,
        };
        assert_eq!(
            decode_range_request(&encode_range_request(&range)).unwrap(),
            range
        );
        assert!(decode_range_request(&[0; 44]).is_err());
        assert!(decode_range_request(&[2; 45]).is_err());
        let reply = encode_range_reply(Ok((100, b"xyz")));
        assert_eq!(
            decode_range_reply(&reply).unwrap().unwrap(),
            (100, b"xyz".to_vec())
        );
    }
}
