//! Keeping the directory within its budget (see `directory::budget`).
//!
//! An eviction pass runs between invocations (after each call of a
//! request and after caps are published), never during one, so a running
//! invocation never loses a blob it looked up. It drops least-recently-used
//! blobs that nothing holds; blobs the kernel made that the host lacks are
//! first handed to the host (`spill_blobs`, encoded like a `put_cap`
//! request), and a blob the host did not take stays. When prepared
//! instances pin too much, they are forgotten and the pass runs once more.
//! A later miss is served again by `fetch_blob`.

use alloc::vec::Vec;
use core::hash::BuildHasher;

use super::service::{KernelHost, KernelState};
use crate::abi::{self, CapBlobMsg};
use crate::directory::EvictionCandidate;
use crate::hash::CapHash;

/// Most encoded bytes per `spill_blobs` message (a single larger blob is
/// sent alone; one too large for the host's message limit is refused
/// there and stays in the directory).
pub const SPILL_BATCH_BYTES: usize = 1 << 20;

/// Largest blob the kernel offers the host by `spill_blobs`: one message
/// holds it with room to spare under the host's default 4 MiB message
/// limit. A larger blob the host lacks stays in the directory (so does
/// any blob the host refuses); without this bound every eviction pass
/// would encode it whole only to have it refused.
pub const MAX_SPILLED_BLOB_BYTES: usize = (4 << 20) - (64 << 10);

impl<S: BuildHasher> KernelState<'_, S> {
    /// Evicts down to the budget's low water if the directory is over
    /// budget (one atomic load otherwise).
    #[inline]
    pub fn enforce_budget(&self, host: &mut dyn KernelHost) {
        if self.dir.over_budget() {
            self.evict_to_budget(host);
        }
    }

    /// The eviction pass of [`Self::enforce_budget`].
    #[cold]
    #[inline(never)]
    fn evict_to_budget(&self, host: &mut dyn KernelHost) {
        let (mut plan, enough) = self.dir.plan_eviction_checked();
        if !enough {
            // Prepared instances hold their instance, image, memory and
            // root blobs: let go of them (they are rebuilt on the next
            // call) before planning, so that the plan stays least recently
            // used first instead of taking only the newest, unheld blobs.
            self.programs.clear_prepared();
            plan = self.dir.plan_eviction();
        }
        if plan.is_empty() {
            return;
        }
        let unknown: Vec<CapHash> = plan
            .iter()
            .filter(|c| !c.host_known)
            .map(|c| c.hash)
            .collect();
        if !unknown.is_empty() {
            self.spill(host, &unknown);
        }
        for EvictionCandidate { hash, .. } in plan {
            // Dropped here, after the directory's lock is released.
            drop(self.dir.evict_if_unheld(&hash));
        }
    }

    /// Hands `hashes` to the host in messages of up to
    /// [`SPILL_BATCH_BYTES`]; those it takes become host-known.
    fn spill(&self, host: &mut dyn KernelHost, hashes: &[CapHash]) {
        let mut batch: Vec<(CapHash, Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0;
        for hash in hashes {
            let Some(cap) = self.dir.peek_blob(hash) else {
                continue;
            };
            // Judged by an upper bound of its encoded length (no encoding):
            // over the bound, it stays.
            if cap.encoded_len_hint() > MAX_SPILLED_BLOB_BYTES {
                continue;
            }
            // A blob that does not encode cannot be spilled: it stays.
            let Ok(bytes) = cap.encode() else {
                continue;
            };
            drop(cap);
            if !batch.is_empty() && batch_bytes + bytes.len() > SPILL_BATCH_BYTES {
                self.send_spill(host, &batch, batch_bytes);
                batch.clear();
                batch_bytes = 0;
            }
            batch_bytes += bytes.len();
            batch.push((*hash, bytes));
        }
        if !batch.is_empty() {
            self.send_spill(host, &batch, batch_bytes);
        }
    }

    fn send_spill(&self, host: &mut dyn KernelHost, batch: &[(CapHash, Vec<u8>)], bytes: usize) {
        let msgs: Vec<CapBlobMsg<'_>> = batch
            .iter()
            .map(|(hash, bytes)| CapBlobMsg {
                hash: Some(hash.0),
                bytes,
            })
            .collect();
        let message = abi::encode_put_cap_request(&msgs);
        drop(msgs);
        if host.spill_blobs(message) == batch.len() as u64 {
            let hashes: Vec<CapHash> = batch.iter().map(|(hash, _)| *hash).collect();
            self.dir.mark_host_known(&hashes, bytes as u64);
        }
    }
}
