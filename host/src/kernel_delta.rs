//! Publishing a large Data as a delta against a Data the kernel holds
//! (`data_delta.rs`), and recording the large Data caps published whole
//! so later versions can be sent as deltas against them.

use std::collections::HashMap;
use std::sync::Arc;

use capbox_shared::abi::{self, CapBlobMsg, GuestFunction, TreePosition};
use capbox_shared::cap::{Cap, Data, NodeDigest};
use capbox_shared::hash::CapHash;

use super::Kernel;
use super::host_blobs::lock;
use crate::data_delta::{
    DeltaStats, MIN_DELTA_SOURCE_BYTES, PageDigests, delta_against, derive_digests,
};
use crate::error::KernelError;

/// A published Data is kept whole in the host's copy (the kernel may
/// evict it and fetch it back); larger ones go by the chunked path,
/// which pins them in the kernel instead.
const MAX_DELTA_PUBLISH_BYTES: usize = 64 << 20;

/// `data`'s encoded length (13 bytes of header, 4 + 4096 per present page).
fn encoded_len(data: &Data) -> usize {
    13 + data.present_page_count() * 4100
}

fn is_large_data(cap: &Cap) -> Option<&Data> {
    match cap {
        Cap::Data(data) if encoded_len(data) >= MIN_DELTA_SOURCE_BYTES => Some(data),
        _ => None,
    }
}

impl Kernel {
    /// What Data deltas saved so far (fetch answers and publishes).
    pub fn delta_stats(&self) -> DeltaStats {
        lock(&self.blobs).deltas.stats
    }

    /// Publishes `cap` as a delta if it is a large Data, the kernel holds
    /// one sharing most of its pages, and the kernel accepts it; its hash
    /// then, else `None` (publish it whole).
    pub(super) fn put_as_delta(&mut self, cap: &Cap) -> Result<Option<CapHash>, KernelError> {
        let Some(data) = is_large_data(cap) else {
            return Ok(None);
        };
        let whole = encoded_len(data);
        if whole > MAX_DELTA_PUBLISH_BYTES {
            return Ok(None);
        }
        let hash = cap.hash().map_err(|e| KernelError::BadCap(e.to_string()))?;
        let bases = {
            let b = lock(&self.blobs);
            if b.is_published(&hash) {
                return Ok(Some(hash));
            }
            b.deltas.bases(&hash)
        };
        if bases.is_empty() {
            return Ok(None);
        }
        let digests = Arc::new(PageDigests::of(data));
        let Some(delta) = delta_against(data, &digests, &bases, whole) else {
            return Ok(None);
        };
        if delta.len() > self.message_bytes / 2 {
            return Ok(None);
        }
        let msg = [CapBlobMsg {
            hash: Some(hash.0),
            bytes: &delta,
        }];
        let reply = self.call_raw(GuestFunction::PutCap, &abi::encode_put_cap_request(&msg))?;
        match abi::decode_put_cap_reply(&reply)? {
            Ok(got) if got == [hash.0] => {}
            Ok(got) => {
                return Err(KernelError::Protocol(format!(
                    "put_cap of a Data delta: sent 1 cap, got {} hashes",
                    got.len()
                )));
            }
            Err(refused) => {
                // The base is gone (evicted unseen) or the kernel refused
                // the delta: send the cap whole.
                let mut b = lock(&self.blobs);
                b.deltas.stats.refused += 1;
                if let Some(base) = refused.hash {
                    b.deltas.forget(&CapHash(base));
                }
                return Ok(None);
            }
        }
        // The kernel's copy is not pinned, so the host keeps one.
        let bytes = cap
            .encode()
            .map_err(|e| KernelError::BadCap(e.to_string()))?;
        let mut b = lock(&self.blobs);
        b.keep(hash, Arc::new(bytes));
        b.mark_published(hash);
        b.sent += 1;
        b.deltas.sent(hash, delta.len(), whole, false);
        b.deltas.note_held(hash, digests);
        Ok(Some(hash))
    }

    /// Records the large Data caps among `caps` (just published whole) as
    /// held by the kernel, with their page digests.
    pub(super) fn note_published_data(&self, caps: &[Cap]) {
        for cap in caps {
            let Some(data) = is_large_data(cap) else {
                continue;
            };
            let Ok(hash) = cap.hash() else { continue };
            if lock(&self.blobs).deltas.holds(&hash) {
                continue;
            }
            let digests = Arc::new(PageDigests::of(data));
            lock(&self.blobs).deltas.note_held(hash, digests);
        }
    }

    /// Records Data `hash` (length `len`, root `root`), just exported
    /// from the kernel page-granularly, as held, when its page digests
    /// follow from a held Data's and what the export walk `learned` (the
    /// usual case: a new version of a memory the kernel fetched).
    pub(crate) fn note_exported_data(
        &self,
        hash: &CapHash,
        len: u64,
        root: &NodeDigest,
        learned: &HashMap<TreePosition, NodeDigest>,
    ) {
        if len < MIN_DELTA_SOURCE_BYTES as u64 {
            return;
        }
        let bases = {
            let b = lock(&self.blobs);
            if b.deltas.holds(hash) {
                return;
            }
            b.deltas.bases(hash)
        };
        let bases: Vec<&PageDigests> = bases.iter().map(|(_, d)| &**d).collect();
        if let Some(digests) = derive_digests(len, root, learned, &bases) {
            lock(&self.blobs).deltas.note_held(*hash, Arc::new(digests));
        }
    }
}
