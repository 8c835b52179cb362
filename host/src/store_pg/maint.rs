//! gc, prune and verify on PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use capbox_shared::{CapHash, CapKind};

use super::heads::chain_problem;
use super::pages::{LAYOUT_PARTS, PartKey, parse_root_record, reachable};
use super::walk::Policy;
use super::{PgStore, TxnMode, hash_from, kind_from};
use crate::store::{PruneReport, StoreError, VerifyProblem, VerifyReport, error_chain as chain};

/// Rows per batch when verify reads every blob.
const VERIFY_BATCH: i64 = 256;
/// Hashes per DELETE.
const DELETE_BATCH: usize = 10_000;

impl PgStore {
    /// Prune: least recently used unpinned blobs first, down to at most
    /// `max_entries` blobs and `max_bytes` bytes (gc is `prune(0, 0)`, as
    /// on the filesystem), in one transaction
    /// holding the gc lock exclusive: no head moves while the pinned set
    /// is computed and the blobs are deleted. READ COMMITTED, so after
    /// the lock is granted every statement sees every move committed
    /// before. A corrupt Instance or CNode reachable from a head is an
    /// error, and then nothing is removed.
    pub(super) fn prune_impl(
        &self,
        max_entries: u64,
        max_bytes: u64,
    ) -> Result<PruneReport, StoreError> {
        let txn = self.begin(TxnMode::Gc)?;
        let mut report = PruneReport::default();
        let mut pinned = HashSet::new();
        for (name, root, _) in self.heads_with_seq()? {
            let (mut missing, mut wrong_kinds) = (Vec::new(), Vec::new());
            let policy = Policy::Record {
                missing: &mut missing,
                wrong_kinds: &mut wrong_kinds,
            };
            self.walk(&root, policy, &mut pinned)?;
            report
                .missing
                .extend(missing.into_iter().map(|hash| (name.clone(), hash)));
        }
        let rows = self.run("list blobs", |c| {
            c.query(
                "SELECT hash, size, last_access, CASE WHEN layout = 1 THEN bytes END
                 FROM capbox_blobs ORDER BY last_access, hash",
                &[],
            )
        })?;
        // Data parts count in bytes, not entries (as on the filesystem):
        // pinned if a pinned root reaches them, else counted per unpinned
        // root that reaches them and deleted with the last such root.
        let (nodes, part_sizes) = self.load_parts()?;
        let mut pinned_parts: HashSet<PartKey> = HashSet::new();
        let mut refs: HashMap<PartKey, u32> = HashMap::new();
        let mut root_parts: HashMap<CapHash, Vec<PartKey>> = HashMap::new();
        let (mut entries, mut bytes) = (0u64, 0u64);
        let mut candidates: Vec<(CapHash, u64)> = Vec::new();
        for row in rows {
            let get = |e| self.query_error("list blobs", e);
            let hash: Vec<u8> = row.try_get(0).map_err(get)?;
            let size: i64 = row.try_get(1).map_err(get)?;
            let _: SystemTime = row.try_get(2).map_err(get)?;
            let record: Option<Vec<u8>> = row.try_get(3).map_err(get)?;
            let hash = hash_from(&hash)
                .ok_or_else(|| self.bad_row("a blob row's hash is not 32 bytes".to_owned()))?;
            let size = size.max(0) as u64;
            entries += 1;
            bytes += size;
            if let Some((len, root)) = record.as_deref().and_then(parse_root_record) {
                let parts = reachable(len, &root, &nodes);
                if pinned.contains(&hash) {
                    pinned_parts.extend(parts);
                } else {
                    for part in &parts {
                        *refs.entry(*part).or_default() += 1;
                    }
                    root_parts.insert(hash, parts);
                }
            }
            if pinned.contains(&hash) {
                report.pinned_entries += 1;
                report.pinned_bytes += size;
            } else {
                candidates.push((hash, size));
            }
        }
        let mut doomed_parts = Vec::new();
        for (key, size) in &part_sizes {
            if pinned_parts.contains(key) {
                bytes += size;
                report.pinned_bytes += size;
            } else if refs.contains_key(key) {
                bytes += size;
            } else {
                // No root reaches it: it goes whatever the limits.
                doomed_parts.push(*key);
                report.removed_bytes += size;
            }
        }
        let mut doomed = Vec::new();
        for (hash, size) in candidates {
            if entries <= max_entries && bytes <= max_bytes {
                break;
            }
            doomed.push(hash);
            report.removed_entries += 1;
            report.removed_bytes += size;
            entries -= 1;
            bytes -= size;
            for part in root_parts.remove(&hash).unwrap_or_default() {
                let Some(count) = refs.get_mut(&part) else {
                    continue;
                };
                *count -= 1;
                if *count == 0 && !pinned_parts.contains(&part) {
                    let size = part_sizes.get(&part).copied().unwrap_or(0);
                    doomed_parts.push(part);
                    report.removed_bytes += size;
                    bytes -= size;
                }
            }
        }
        for chunk in doomed.chunks(DELETE_BATCH) {
            let keys: Vec<&[u8]> = chunk.iter().map(|h| h.as_bytes().as_slice()).collect();
            self.run("delete blobs", |c| {
                c.execute("DELETE FROM capbox_blobs WHERE hash = ANY($1)", &[&keys])
            })?;
        }
        self.delete_parts(&doomed_parts)?;
        txn.commit()?;
        report.remaining_entries = entries;
        report.remaining_bytes = bytes;
        report.limits_met = entries <= max_entries && bytes <= max_bytes;
        Ok(report)
    }

    /// Re-hashes every blob (and checks its kind and size columns), checks
    /// every head's history and walks its graph; all in one read-only
    /// snapshot (REPEATABLE READ), so concurrent writers neither wait nor
    /// show up half-done.
    pub(super) fn verify_impl(&self) -> Result<VerifyReport, StoreError> {
        let txn = self.begin(TxnMode::Snapshot)?;
        let mut report = VerifyReport::default();
        let mut verified_parts = HashSet::new();
        let mut after: Vec<u8> = Vec::new();
        loop {
            let rows = self.run("read blobs", |c| {
                c.query(
                    "SELECT hash, kind, size, bytes, layout FROM capbox_blobs
                     WHERE hash > $1 ORDER BY hash LIMIT $2",
                    &[&after, &VERIFY_BATCH],
                )
            })?;
            let Some(last) = rows.last() else { break };
            after = last
                .try_get(0)
                .map_err(|e| self.query_error("read blobs", e))?;
            for row in &rows {
                let get = |e| self.query_error("read blobs", e);
                let key: Vec<u8> = row.try_get(0).map_err(get)?;
                let kind: i16 = row.try_get(1).map_err(get)?;
                let size: i64 = row.try_get(2).map_err(get)?;
                let bytes: Vec<u8> = row.try_get(3).map_err(get)?;
                let Some(hash) = hash_from(&key) else {
                    return Err(self.bad_row("a blob row's hash is not 32 bytes".to_owned()));
                };
                let layout: i16 = row.try_get(4).map_err(get)?;
                let problem = |reason: String| VerifyProblem::CorruptBlob { hash, reason };
                if layout == LAYOUT_PARTS {
                    // Shared parts are checked once.
                    match self.verify_data_tree(&hash, &bytes, &mut verified_parts)? {
                        Ok(()) => {
                            report.blobs += 1;
                            report.bytes += bytes.len() as u64;
                        }
                        Err(reason) => report.problems.push(problem(reason)),
                    }
                    continue;
                }
                match self.verify_bytes(&hash, &bytes) {
                    Err(StoreError::CorruptBlob { reason, .. }) => {
                        report.problems.push(problem(reason));
                    }
                    Err(e) => report.problems.push(problem(chain(&e))),
                    Ok(cap) if kind_from(kind) != Some(cap.kind()) => {
                        report.problems.push(problem(format!(
                            "its kind column says {kind} but it is a {} cap",
                            cap.kind()
                        )));
                    }
                    Ok(_) if size != bytes.len() as i64 => {
                        report.problems.push(problem(format!(
                            "its size column says {size} but it holds {} bytes",
                            bytes.len()
                        )));
                    }
                    Ok(_) => {
                        report.blobs += 1;
                        report.bytes += bytes.len() as u64;
                    }
                }
            }
        }
        for (name, root, seq) in self.heads_with_seq()? {
            report.heads += 1;
            let bad = |reason: String| VerifyProblem::BadHead {
                head: name.clone(),
                reason,
            };
            match self.read_history(&name) {
                Ok((entries, problem)) => {
                    let problem = problem.or_else(|| chain_problem(&entries, (root, seq), &name));
                    if let Some(reason) = problem {
                        report.problems.push(VerifyProblem::BadHistory {
                            head: name.clone(),
                            reason,
                        });
                    }
                }
                Err(e) => report.problems.push(VerifyProblem::BadHistory {
                    head: name.clone(),
                    reason: chain(&e),
                }),
            }
            let (mut missing, mut wrong_kinds) = (Vec::new(), Vec::new());
            let policy = Policy::Record {
                missing: &mut missing,
                wrong_kinds: &mut wrong_kinds,
            };
            let walked = self.walk(&root, policy, &mut HashSet::new());
            report
                .problems
                .extend(missing.into_iter().map(|hash| VerifyProblem::MissingBlob {
                    head: name.clone(),
                    hash,
                }));
            report
                .problems
                .extend(wrong_kinds.iter().map(|e| bad(chain(e))));
            match walked {
                Ok(Some(CapKind::Instance) | None) => {}
                Ok(Some(kind)) => report.problems.push(bad(format!(
                    "points at {root}, a {kind} cap, not an Instance"
                ))),
                Err(e) => report
                    .problems
                    .push(bad(format!("cannot walk its graph: {}", chain(&e)))),
            }
        }
        txn.commit()?;
        Ok(report)
    }
}
