//! Named heads: `heads/<name>` holds one Instance hash. Heads pin their
//! graphs against pruning.

use std::collections::HashSet;
use std::fs;
use std::io;

use capbox_shared::{Cap, CapHash};

use super::error::{IoContext, StoreError};
use super::fsio::{self, LockMode};
use super::{Store, blobs, graph};

/// What [`Store::save_graph`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaveReport {
    /// Caps the source supplied and the store now holds.
    pub blobs: u64,
    /// Of those, blobs that a concurrent prune had removed before the head
    /// was set, and that were stored again.
    pub repaired: u64,
}

/// Longest head name, in bytes.
pub const MAX_HEAD_NAME_LEN: usize = 128;

/// Checks a head name: 1 to [`MAX_HEAD_NAME_LEN`] ASCII letters, digits,
/// `.`, `_` or `-`, starting with a letter or digit. So a name is always a
/// single plain file name: no separators, no `.`/`..`, no hidden files, and
/// nothing a shell or CLI would read as an option.
pub fn validate_head_name(name: &str) -> Result<(), StoreError> {
    let invalid = |reason| {
        Err(StoreError::InvalidHeadName {
            name: name.chars().take(MAX_HEAD_NAME_LEN + 8).collect(),
            reason,
        })
    };
    let Some(first) = name.chars().next() else {
        return invalid("it is empty");
    };
    if name.len() > MAX_HEAD_NAME_LEN {
        return invalid("it is longer than 128 bytes");
    }
    if !first.is_ascii_alphanumeric() {
        return invalid("it must start with an ASCII letter or digit");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !name.chars().all(allowed) {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

impl Store {
    /// Points head `name` at the Instance `hash`, atomically (a reader sees
    /// the old value or the new one, never a mix, even across a crash).
    ///
    /// Refused unless the Instance and its whole graph are in the store:
    /// Instance → image, memory, root CNode; CNode → every slot, recursively.
    /// Structural blobs (Instances, CNodes) are read and verified on the way;
    /// leaves (Data, Image, Type) are checked for presence and kind only.
    pub fn set_head(&self, name: &str, hash: &CapHash) -> Result<(), StoreError> {
        validate_head_name(name)?;
        let _alone = self.lock(LockMode::Exclusive)?;
        graph::check_head_graph(self, name, hash, None, &mut 0)?;
        self.write_head(name, hash)
    }

    fn write_head(&self, name: &str, hash: &CapHash) -> Result<(), StoreError> {
        let line = format!("{hash}\n");
        fsio::write_atomically(&self.tmp, &self.heads.join(name), line.as_bytes())
    }

    /// Stores the graph of the Instance `root` and points head `name` at
    /// it: the way to save state, safe against a concurrent prune or gc.
    ///
    /// `source` supplies the graph's caps by hash (e.g. the kernel's
    /// `get_cap`); `None` means "not mine: it should already be stored".
    /// First every cap the source has is stored (under the shared lock,
    /// like [`Store::put`]), from `root` down its links. Then, holding the
    /// exclusive lock, the graph is checked as by [`Store::set_head`], and
    /// any blob a concurrent prune removed meanwhile (it was unreachable
    /// until now) is stored again from `source` before the head moves.
    /// Nothing can remove it again under that lock, so there is no retry
    /// loop to lose: the save fails only if the source lacks a blob that
    /// is not stored ([`StoreError::IncompleteGraph`]), if a cap the source
    /// gives does not hash to the name asked for
    /// ([`StoreError::HashMismatch`]), or on I/O errors.
    pub fn save_graph(
        &self,
        name: &str,
        root: &CapHash,
        mut source: impl FnMut(&CapHash) -> Option<Cap>,
    ) -> Result<SaveReport, StoreError> {
        validate_head_name(name)?;
        let mut report = SaveReport::default();
        {
            let _shared = self.lock(LockMode::Shared)?;
            let mut seen = HashSet::new();
            let mut todo = vec![*root];
            while let Some(hash) = todo.pop() {
                if !seen.insert(hash) {
                    continue;
                }
                let Some(cap) = source(&hash) else {
                    continue;
                };
                let bytes = blobs::encode_as(&cap, &hash)?;
                self.write_blob_locked(&hash, &bytes)?;
                report.blobs += 1;
                todo.extend(graph::link_hashes(&cap));
            }
        }
        let _alone = self.lock(LockMode::Exclusive)?;
        graph::check_head_graph(self, name, root, Some(&mut source), &mut report.repaired)?;
        self.write_head(name, root)?;
        Ok(report)
    }

    /// The hash head `name` points at, if it exists.
    pub fn head(&self, name: &str) -> Result<Option<CapHash>, StoreError> {
        validate_head_name(name)?;
        let path = self.heads.join(name);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(StoreError::CorruptHead {
                    name: name.to_owned(),
                    path,
                    reason: "not UTF-8".to_owned(),
                });
            }
            Err(e) => return Err(StoreError::io("read", path, e)),
        };
        match CapHash::from_hex(text.strip_suffix('\n').unwrap_or(&text)) {
            Ok(hash) => Ok(Some(hash)),
            Err(e) => Err(StoreError::CorruptHead {
                name: name.to_owned(),
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// Every head, sorted by name. Files in `heads/` whose names are not
    /// valid head names were not written by a store and are skipped.
    pub fn heads(&self) -> Result<Vec<(String, CapHash)>, StoreError> {
        let mut out = Vec::new();
        for name in self.head_names()? {
            // Removed since we listed it: not a head any more.
            if let Some(hash) = self.head(&name)? {
                out.push((name, hash));
            }
        }
        Ok(out)
    }

    /// Removes head `name`; returns what it pointed at (`None` if there was
    /// no such head). Its graph is no longer pinned.
    pub fn remove_head(&self, name: &str) -> Result<Option<CapHash>, StoreError> {
        validate_head_name(name)?;
        let _alone = self.lock(LockMode::Exclusive)?;
        let Some(previous) = self.head(name)? else {
            return Ok(None);
        };
        let path = self.heads.join(name);
        fs::remove_file(&path).at("remove head", &path)?;
        fsio::sync_dir(&self.heads)?;
        Ok(Some(previous))
    }

    /// Valid head names present in `heads/`, sorted.
    pub(super) fn head_names(&self) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.heads).at("list", &self.heads)? {
            let entry = entry.at("list", &self.heads)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if validate_head_name(&name).is_ok() && entry.path().is_file() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}
