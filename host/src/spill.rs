//! Checking blobs a kernel spills (`spill_blobs`) before the host keeps
//! them: the kernel is about to evict them and the host becomes their only
//! holder, so each one must decode and hash to the hash it came with. The
//! message is untrusted (a compromised guest may send anything): it is
//! bounded by the transport's message limit, and the host keeps at most
//! one copy of each blob's bytes, so it never holds more than the message
//! itself.

use capbox_shared::abi;
use capbox_shared::cap::Cap;
use capbox_shared::hash::CapHash;

/// Why a spill message was refused (the whole message: the guest keeps
/// every blob of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpillError {
    /// The message is larger than the host accepts.
    #[error("spill message of {len} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a valid `PutCapRequest`.
    #[error("spill message does not decode: {0}")]
    BadMessage(String),
    /// A blob came without its hash.
    #[error("spilled blob #{0} has no hash")]
    NoHash(usize),
    /// A blob does not decode as a cap.
    #[error("spilled blob #{index} ({hash}) does not decode: {reason}")]
    BadCap {
        /// Its position in the message.
        index: usize,
        /// The hash it came with.
        hash: CapHash,
        /// The decoder's reason.
        reason: String,
    },
    /// A blob hashes to something else than the hash it came with.
    #[error("spilled blob #{index} sent as {claimed} hashes to {actual}")]
    HashMismatch {
        /// Its position in the message.
        index: usize,
        /// The hash it came with.
        claimed: CapHash,
        /// What its bytes hash to.
        actual: CapHash,
    },
}

/// The blobs of a spill message, each checked against its hash, or why the
/// message is refused. `limit`: the largest message accepted.
pub fn check_spill(message: &[u8], limit: usize) -> Result<Vec<(CapHash, Vec<u8>)>, SpillError> {
    if message.len() > limit {
        return Err(SpillError::TooLarge {
            len: message.len(),
            limit,
        });
    }
    let blobs =
        abi::decode_put_cap_request(message).map_err(|e| SpillError::BadMessage(e.to_string()))?;
    let mut out = Vec::with_capacity(blobs.len());
    for (index, blob) in blobs.iter().enumerate() {
        let claimed = CapHash(blob.hash.ok_or(SpillError::NoHash(index))?);
        let bad = |reason: String| SpillError::BadCap {
            index,
            hash: claimed,
            reason,
        };
        let cap = Cap::decode(blob.bytes).map_err(|e| bad(e.to_string()))?;
        let actual = cap.hash().map_err(|e| bad(e.to_string()))?;
        if actual != claimed {
            return Err(SpillError::HashMismatch {
                index,
                claimed,
                actual,
            });
        }
        out.push((claimed, blob.bytes.to_vec()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use capbox_shared::abi::CapBlobMsg;
    use capbox_shared::cap::Data;

    fn blob(fill: u8) -> (CapHash, Vec<u8>) {
        let cap = Cap::Data(Data::from_bytes(&[fill; 5000]).unwrap());
        (cap.hash().unwrap(), cap.encode().unwrap())
    }

    fn message(blobs: &[(Option<CapHash>, &[u8])]) -> Vec<u8> {
        let msgs: Vec<CapBlobMsg<'_>> = blobs
            .iter()
            .map(|(hash, bytes)| CapBlobMsg {
                hash: hash.map(|h| h.0),
                bytes,
            })
            .collect();
        abi::encode_put_cap_request(&msgs)
    }

    #[test]
    fn good_blobs_are_kept_with_their_hashes() {
        let (a, b) = (blob(1), blob(2));
        let msg = message(&[(Some(a.0), &a.1), (Some(b.0), &b.1)]);
        assert_eq!(check_spill(&msg, 1 << 20).unwrap(), vec![a, b]);
    }

    #[test]
    fn a_bad_blob_refuses_the_whole_message() {
        let (a, b) = (blob(1), blob(2));
        let swapped = message(&[(Some(a.0), &a.1), (Some(a.0), &b.1)]);
        assert!(matches!(
            check_spill(&swapped, 1 << 20),
            Err(SpillError::HashMismatch { index: 1, .. })
        ));
        let unnamed = message(&[(None, &a.1)]);
        assert_eq!(check_spill(&unnamed, 1 << 20), Err(SpillError::NoHash(0)));
        let garbage = message(&[(Some(a.0), &[0xff; 40])]);
        assert!(matches!(
            check_spill(&garbage, 1 << 20),
            Err(SpillError::BadCap { index: 0, .. })
        ));
        assert!(matches!(
            check_spill(b"not a flatbuffer", 1 << 20),
            Err(SpillError::BadMessage(_))
        ));
        let msg = message(&[(Some(a.0), &a.1)]);
        assert!(matches!(
            check_spill(&msg, msg.len() - 1),
            Err(SpillError::TooLarge { .. })
        ));
    }
}
