//! Pruning: heads pin their graphs; everything else is a cache, evicted
//! least recently used first.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use capbox_shared::CapHash;

use super::error::{IoContext, StoreError};
use super::fsio::{self, LockMode};
use super::pages::{self, PartKey};
use super::{Store, graph};

/// What a prune or gc did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PruneReport {
    /// Blobs removed.
    pub removed_entries: u64,
    /// Their bytes.
    pub removed_bytes: u64,
    /// Blobs left.
    pub remaining_entries: u64,
    /// Their bytes.
    pub remaining_bytes: u64,
    /// Blobs reachable from a head (never removed).
    pub pinned_entries: u64,
    /// Their bytes.
    pub pinned_bytes: u64,
    /// Whether the store is now within both limits. False when the pinned
    /// graphs alone exceed them.
    pub limits_met: bool,
    /// Heads whose graphs lack a blob (`(head, missing hash)`); only a store
    /// edited by hand can have these, since `set_head` refuses them.
    pub missing: Vec<(String, CapHash)>,
    /// Temp files left by crashed writers, removed.
    pub removed_temp_files: u64,
    /// Heads whose files are corrupt: every state their histories name was
    /// kept instead (repair them with `set_head` or remove them).
    pub corrupt_heads: Vec<String>,
}

/// What is left while pruning, and the directories emptied from.
struct Tally {
    entries: u64,
    bytes: u64,
    dirs: HashSet<PathBuf>,
}

impl Tally {
    /// Removes a blob (`blob`: counted as an entry) or a Data part
    /// (counted in bytes only).
    fn remove(
        &mut self,
        path: PathBuf,
        size: u64,
        blob: bool,
        report: &mut PruneReport,
    ) -> Result<(), StoreError> {
        match fs::remove_file(&path) {
            Ok(()) => {
                report.removed_entries += u64::from(blob);
                report.removed_bytes += size;
            }
            // Removed by hand meanwhile: gone all the same.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("remove blob", path, e)),
        }
        self.entries -= u64::from(blob);
        self.bytes -= size;
        if let Some(dir) = path.parent() {
            self.dirs.insert(dir.to_path_buf());
        }
        Ok(())
    }
}

struct Candidate {
    last_access: SystemTime,
    hash: CapHash,
    path: PathBuf,
    size: u64,
}

impl Store {
    /// Shrinks the store to at most `max_entries` blobs and `max_bytes`
    /// bytes, if it can.
    ///
    /// Heads pin their graphs: a blob reachable from any head is never
    /// removed. The candidates are thus exactly the blobs unreachable from
    /// every head, and they are removed least recently used first (oldest
    /// [`super::BlobInfo::last_access`], ties by hash) until both limits
    /// hold. If the pinned blobs alone exceed a limit, every candidate is
    /// removed and [`PruneReport::limits_met`] is false.
    ///
    /// History does not pin: a history record may name a state that was
    /// pruned since (`capbox log` says which). Logs of heads that no longer
    /// exist (a crash between removing a head and its log) are removed.
    ///
    /// Holds the store's exclusive lock, so no blob write or head update runs
    /// meanwhile. A corrupt CNode or Instance reachable from a head is an
    /// error (its links are unknown), and then nothing is removed.
    pub fn prune(&self, max_entries: u64, max_bytes: u64) -> Result<PruneReport, StoreError> {
        let _alone = self.lock(LockMode::Exclusive)?;
        let mut report = PruneReport {
            removed_temp_files: fsio::remove_temp_files(&self.tmp)?,
            ..PruneReport::default()
        };
        self.remove_stale_histories()?;
        let pinned = self.pinned_set(&mut report.missing, &mut report.corrupt_heads)?;

        let mut candidates = Vec::new();
        let (mut entries, mut bytes) = (0u64, 0u64);
        // Data parts (pages and tree nodes) count in bytes, not entries
        // (as in `stats`): pinned if a pinned root reaches them, else counted
        // per unpinned root that reaches them (removed when the last goes).
        let mut children = HashMap::new();
        let mut pinned_parts: HashSet<PartKey> = HashSet::new();
        let mut refs: HashMap<PartKey, u32> = HashMap::new();
        let mut root_parts: HashMap<CapHash, Vec<PartKey>> = HashMap::new();
        self.scan_blobs(|hash, path, meta| {
            entries += 1;
            bytes += meta.len();
            if meta.len() == pages::ROOT_RECORD_LEN as u64
                && let Some(parts) = self.reachable_parts(path, &mut children)?
            {
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
                report.pinned_bytes += meta.len();
            } else {
                candidates.push(Candidate {
                    last_access: meta.modified().at("read mtime of", path)?,
                    hash,
                    path: path.to_path_buf(),
                    size: meta.len(),
                });
            }
            Ok(())
        })?;
        candidates.sort_by_key(|c| (c.last_access, c.hash));

        let mut part_files: HashMap<PartKey, (PathBuf, u64)> = HashMap::new();
        let mut orphans = Vec::new();
        self.scan_parts(|key, path, meta| {
            bytes += meta.len();
            if pinned_parts.contains(&key) {
                report.pinned_bytes += meta.len();
            } else if refs.contains_key(&key) {
                part_files.insert(key, (path.to_path_buf(), meta.len()));
            } else {
                // No root reaches it (a crash mid-write, or its roots
                // went): useless, so it goes whatever the limits.
                orphans.push((path.to_path_buf(), meta.len()));
            }
            Ok(())
        })?;
        let mut tally = Tally {
            entries,
            bytes,
            dirs: HashSet::new(),
        };
        for (path, size) in orphans {
            tally.remove(path, size, false, &mut report)?;
        }
        for candidate in candidates {
            if tally.entries <= max_entries && tally.bytes <= max_bytes {
                break;
            }
            tally.remove(candidate.path, candidate.size, true, &mut report)?;
            for part in root_parts.remove(&candidate.hash).unwrap_or_default() {
                let Some(count) = refs.get_mut(&part) else {
                    continue;
                };
                *count -= 1;
                if *count == 0
                    && let Some((path, size)) = part_files.remove(&part)
                {
                    tally.remove(path, size, false, &mut report)?;
                }
            }
        }
        // Removal durability only matters for space: a blob that reappears
        // after a crash is unreachable and goes at the next prune. Sync anyway
        // so a finished prune stays finished.
        let Tally {
            entries,
            bytes,
            dirs: emptied_dirs,
        } = tally;
        for dir in emptied_dirs {
            fsio::sync_dir(&dir)?;
        }
        report.remaining_entries = entries;
        report.remaining_bytes = bytes;
        report.limits_met = entries <= max_entries && bytes <= max_bytes;
        Ok(report)
    }

    /// Removes every blob unreachable from a head: `prune(0, 0)`.
    /// [`PruneReport::limits_met`] is then true only if the store is empty.
    pub fn gc(&self) -> Result<PruneReport, StoreError> {
        self.prune(0, 0)
    }

    /// Every stored blob reachable from some head; records missing ones.
    fn pinned_set(
        &self,
        missing: &mut Vec<(String, CapHash)>,
        corrupt_heads: &mut Vec<String>,
    ) -> Result<HashSet<CapHash>, StoreError> {
        let mut pinned = HashSet::new();
        let (heads, corrupt) = self.heads_and_corrupt()?;
        let mut roots: Vec<(String, CapHash)> = heads;
        for error in corrupt {
            // What a corrupt head pointed at is unknown: every state its
            // history names stays; with no history, nothing is removed.
            let StoreError::CorruptHead { name, .. } = &error else {
                return Err(error);
            };
            let named = self.hashes_in_history(name)?;
            if named.is_empty() {
                return Err(StoreError::CorruptHeadBlocksPrune {
                    corrupt: error.to_string(),
                });
            }
            corrupt_heads.push(name.clone());
            roots.extend(named.into_iter().map(|hash| (name.clone(), hash)));
        }
        for (name, root) in roots {
            let mut head_missing = Vec::new();
            graph::pin_graph(self, &root, &mut pinned, &mut head_missing)?;
            missing.extend(head_missing.into_iter().map(|hash| (name.clone(), hash)));
        }
        Ok(pinned)
    }
}
