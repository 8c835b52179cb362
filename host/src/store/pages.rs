//! Data caps as Merkle-tree parts (format 4, docs/store.md "Data pages").
//!
//! A Data blob file holds a 41-byte root record, `tag ‖ len u64 ‖ root
//! [32]`, instead of the canonical encoding (which is 13 bytes, or at least
//! 4113, so the two never collide). Its pages live in `pages/ab/<digest>`
//! (4096 bytes) and its inner nodes in `nodes/ab/<digest>` (`left ‖ right`,
//! 64 bytes), named by their Merkle digests; an all-zero subtree is never
//! stored. Versions of a Data thus share every page and node they have in
//! common, and storing a version that changed one page writes one page,
//! the nodes on its path and the root record.
//!
//! Write order: pages, then nodes from the lowest level up, each level's
//! directories fsynced before the next, then the root record: a stored
//! node or root always has its whole subtree, so a walk that finds a part
//! stored skips it. A crash leaves at most unreachable parts (gc removes
//! them).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use capbox_shared::CapHash;
use capbox_shared::cap::{
    Cap, CapKind, Data, NodeDigest, PAGE_SIZE, Page, SharedPage, data_depth_for_len,
    data_hash_from_root, data_node_digest, data_page_digest, data_zero_digest,
};

use super::Store;
use super::error::{IoContext, StoreError};
use super::fsio::{self, LockMode};
use crate::export_pages::{
    DataNodeSource, DataPartStore, DataParts, PagedPut, put_data_from, split_pair,
};

/// Directory of pages.
pub(super) const PAGES_DIR: &str = "pages";
/// Directory of inner nodes.
pub(super) const NODES_DIR: &str = "nodes";
/// Bytes of a Data root record.
pub(super) const ROOT_RECORD_LEN: usize = 41;

/// One stored part: a page (`height` 0) or an inner node.
pub(super) type PartKey = (NodeDigest, bool);

/// Whether `bytes` is a Data root record (not a canonical encoding).
pub(super) fn is_root_record(bytes: &[u8]) -> bool {
    bytes.len() == ROOT_RECORD_LEN && bytes[0] == CapKind::Data.tag()
}

fn root_record(len: u64, root: &NodeDigest) -> [u8; ROOT_RECORD_LEN] {
    let mut out = [0u8; ROOT_RECORD_LEN];
    out[0] = CapKind::Data.tag();
    out[1..9].copy_from_slice(&len.to_le_bytes());
    out[9..].copy_from_slice(root);
    out
}

fn parse_root_record(bytes: &[u8]) -> Option<(u64, NodeDigest)> {
    if !is_root_record(bytes) {
        return None;
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[1..9]);
    let mut root = [0u8; 32];
    root.copy_from_slice(&bytes[9..]);
    Some((u64::from_le_bytes(len), root))
}

fn hex(digest: &NodeDigest) -> String {
    CapHash(*digest).to_hex()
}

impl Store {
    /// Where part `digest` lives (`page`: a page, else an inner node).
    pub(super) fn part_path(&self, digest: &NodeDigest, page: bool) -> PathBuf {
        let name = hex(digest);
        let dir = if page { &self.pages } else { &self.nodes };
        dir.join(&name[..2]).join(name)
    }

    /// Stores Data `hash` from `source`, fetching only the parts this
    /// store lacks (see [`crate::export_data_caps`]).
    ///
    /// Holds the lock shared throughout, so no prune removes a part this
    /// put found stored (and skipped) before its root record is written.
    pub fn put_data_paged(
        &self,
        hash: &CapHash,
        source: &mut dyn DataNodeSource,
    ) -> Result<Option<PagedPut>, StoreError> {
        let _shared = self.lock(LockMode::Shared)?;
        put_data_from(&Locked(self), hash, source)
    }

    /// Stores `data` (named `hash`, checked by the caller) as parts; the
    /// caller holds the lock. Writes only the parts not stored yet.
    pub(super) fn store_data_locked(&self, hash: &CapHash, data: &Data) -> Result<(), StoreError> {
        let depth = data.tree_depth();
        let mut parts = DataParts {
            len: data.len(),
            root: data.root_digest(),
            ..DataParts::default()
        };
        let mut stack = Vec::new();
        if parts.root != data_zero_digest(depth) && !self.has_part(&parts.root, depth)? {
            stack.push((depth, 0u32, parts.root));
        }
        let mut seen = HashSet::new();
        while let Some((height, index, digest)) = stack.pop() {
            if height == 0 {
                let page: Page = data.page(index).copied().unwrap_or([0; PAGE_SIZE]);
                parts.pages.push((digest, Box::new(page)));
                continue;
            }
            let below = height - 1;
            let child = |i: u32| data.node_digest(below, i).unwrap_or_default();
            let (left, right) = (child(index * 2), child(index * 2 + 1));
            let mut pair = [0u8; 64];
            pair[..32].copy_from_slice(&left);
            pair[32..].copy_from_slice(&right);
            parts.nodes.push((height, digest, pair));
            for (c, i) in [(left, index * 2), (right, index * 2 + 1)] {
                if c != data_zero_digest(below) && seen.insert(c) && !self.has_part(&c, below)? {
                    stack.push((below, i, c));
                }
            }
        }
        // Children before parents: sort nodes by height, highest first
        // (written in reverse).
        parts.nodes.sort_by_key(|n| std::cmp::Reverse(n.0));
        self.write_parts_locked(hash, &parts)
    }

    fn write_parts_locked(&self, hash: &CapHash, parts: &DataParts) -> Result<(), StoreError> {
        let mut dirs: HashSet<PathBuf> = HashSet::new();
        for (digest, page) in &parts.pages {
            self.write_part(digest, true, &page[..], &mut dirs)?;
        }
        sync_dirs(&mut dirs)?;
        // `nodes` go parents first, so walk them in reverse; a level's
        // directories are synced before the level above is written.
        let mut level = None;
        for (height, digest, pair) in parts.nodes.iter().rev() {
            if level.is_some_and(|l| l != *height) {
                sync_dirs(&mut dirs)?;
            }
            level = Some(*height);
            self.write_part(digest, false, pair, &mut dirs)?;
        }
        sync_dirs(&mut dirs)?;
        let path = self.blob_path(hash);
        fsio::ensure_dir(path.parent().unwrap_or(Path::new(".")))?;
        fsio::write_atomically(&self.tmp, &path, &root_record(parts.len, &parts.root))
    }

    fn write_part(
        &self,
        digest: &NodeDigest,
        page: bool,
        bytes: &[u8],
        dirs: &mut HashSet<PathBuf>,
    ) -> Result<(), StoreError> {
        let path = self.part_path(digest, page);
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64) {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        fsio::ensure_dir(&dir)?;
        fsio::write_atomically_unsynced_dir(&self.tmp, &path, bytes)?;
        dirs.insert(dir);
        Ok(())
    }

    /// Reads part `digest` and checks it hashes to its name: a page's bytes,
    /// or a node's children. `Ok(None)`: not stored.
    fn read_part(&self, digest: &NodeDigest, page: bool) -> Result<Option<Vec<u8>>, String> {
        let path = self.part_path(digest, page);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let what = if page { "page" } else { "node" };
        let actual = if page {
            <&Page>::try_from(&bytes[..]).ok().map(data_page_digest)
        } else {
            <&[u8; 64]>::try_from(&bytes[..]).ok().map(|pair| {
                let (l, r) = split_pair(pair);
                data_node_digest(&l, &r)
            })
        };
        if actual != Some(*digest) {
            return Err(format!(
                "{what} {} is corrupt (does not hash to its name)",
                hex(digest)
            ));
        }
        Ok(Some(bytes))
    }

    /// The Data a root record names, read from its parts, every part
    /// checked against its digest and the root against `hash`.
    pub(super) fn read_data(&self, hash: &CapHash, record: &[u8]) -> Result<Data, StoreError> {
        let corrupt = |reason: String| StoreError::CorruptBlob {
            hash: *hash,
            path: self.blob_path(hash),
            reason,
        };
        let (len, root) =
            parse_root_record(record).ok_or_else(|| corrupt("not a root record".into()))?;
        let depth =
            data_depth_for_len(len).ok_or_else(|| corrupt(format!("length {len} too large")))?;
        let actual = data_hash_from_root(len, &root);
        if actual != *hash {
            return Err(corrupt(format!("its root record hashes to {actual}")));
        }
        let mut data = Data::new(len).map_err(|e| corrupt(e.to_string()))?;
        let mut stack = vec![(depth, 0u32, root)];
        while let Some((height, index, digest)) = stack.pop() {
            if digest == data_zero_digest(height) {
                continue;
            }
            let bytes = self
                .read_part(&digest, height == 0)
                .map_err(&corrupt)?
                .ok_or_else(|| {
                    corrupt(format!(
                        "its {} {} is missing",
                        if height == 0 { "page" } else { "node" },
                        hex(&digest)
                    ))
                })?;
            if height == 0 {
                let page: &Page = bytes[..]
                    .try_into()
                    .map_err(|_| corrupt("page size".into()))?;
                data.write_page_shared(index, SharedPage::new(page))
                    .map_err(|e| corrupt(format!("page {index}: {e}")))?;
            } else {
                let pair: &[u8; 64] = bytes[..]
                    .try_into()
                    .map_err(|_| corrupt("node size".into()))?;
                let (left, right) = split_pair(pair);
                stack.push((height - 1, index * 2, left));
                stack.push((height - 1, index * 2 + 1, right));
            }
        }
        Ok(data)
    }

    /// Verifies the tree of Data root `hash` (record `record`), skipping
    /// parts in `verified` (checked before) and adding those it checks.
    pub(super) fn verify_data_tree(
        &self,
        hash: &CapHash,
        record: &[u8],
        verified: &mut HashSet<PartKey>,
    ) -> Result<(), String> {
        let (len, root) = parse_root_record(record).ok_or("not a root record")?;
        let depth = data_depth_for_len(len).ok_or("length too large")?;
        let actual = data_hash_from_root(len, &root);
        if actual != *hash {
            return Err(format!("its root record hashes to {actual}"));
        }
        let mut stack = vec![(depth, root)];
        while let Some((height, digest)) = stack.pop() {
            let key = (digest, height == 0);
            if digest == data_zero_digest(height) || verified.contains(&key) {
                continue;
            }
            let bytes = self.read_part(&digest, height == 0)?.ok_or_else(|| {
                format!(
                    "its {} {} is missing",
                    if height == 0 { "page" } else { "node" },
                    hex(&digest)
                )
            })?;
            if height > 0 {
                let pair: &[u8; 64] = bytes[..].try_into().map_err(|_| "node size")?;
                let (left, right) = split_pair(pair);
                stack.push((height - 1, left));
                stack.push((height - 1, right));
            }
            verified.insert(key);
        }
        Ok(())
    }

    /// The parts reachable from the Data root record at `path` (each
    /// once), reading node files through `children`; `None` if the file is
    /// not a root record. Missing parts are skipped (verify reports them).
    pub(super) fn reachable_parts(
        &self,
        path: &Path,
        children: &mut HashMap<NodeDigest, Option<[u8; 64]>>,
    ) -> Result<Option<Vec<PartKey>>, StoreError> {
        let mut record = Vec::new();
        match File::open(path) {
            Ok(file) => {
                file.take(ROOT_RECORD_LEN as u64 + 1)
                    .read_to_end(&mut record)
                    .at("read", path)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("open", path, e)),
        }
        let Some((len, root)) = parse_root_record(&record) else {
            return Ok(None);
        };
        let Some(depth) = data_depth_for_len(len) else {
            return Ok(Some(Vec::new()));
        };
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![(depth, root)];
        while let Some((height, digest)) = stack.pop() {
            if digest == data_zero_digest(height) || !seen.insert((digest, height == 0)) {
                continue;
            }
            out.push((digest, height == 0));
            if height == 0 {
                continue;
            }
            let pair = match children.get(&digest) {
                Some(known) => *known,
                None => {
                    let read = fs::read(self.part_path(&digest, false))
                        .ok()
                        .and_then(|b| <[u8; 64]>::try_from(b).ok());
                    children.insert(digest, read);
                    read
                }
            };
            if let Some(pair) = pair {
                let (left, right) = split_pair(&pair);
                stack.push((height - 1, left));
                stack.push((height - 1, right));
            }
        }
        Ok(Some(out))
    }

    /// Calls `visit` for every stored part file (`page`: in `pages/`).
    pub(super) fn scan_parts(
        &self,
        mut visit: impl FnMut(PartKey, &Path, &fs::Metadata) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for (dir, page) in [(&self.pages, true), (&self.nodes, false)] {
            let entries = match fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("list", dir, e)),
            };
            for prefix_entry in entries {
                let prefix_dir = prefix_entry.at("list", dir)?.path();
                if !prefix_dir.is_dir() {
                    continue;
                }
                for entry in fs::read_dir(&prefix_dir).at("list", &prefix_dir)? {
                    let entry = entry.at("list", &prefix_dir)?;
                    let Some(digest) = entry
                        .file_name()
                        .to_str()
                        .and_then(|n| CapHash::from_hex(n).ok().filter(|h| h.to_hex() == n))
                    else {
                        continue;
                    };
                    let path = entry.path();
                    let meta = match entry.metadata() {
                        Ok(meta) => meta,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(StoreError::io("stat", path, e)),
                    };
                    if meta.is_file() {
                        visit((digest.0, page), &path, &meta)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The format-3 → 4 conversion of one blob: a Data stored as its
    /// encoding becomes a root record plus parts. Whether it converted.
    /// The caller holds the exclusive lock.
    pub(super) fn convert_data_blob(&self, hash: &CapHash) -> Result<bool, StoreError> {
        let path = self.blob_path(hash);
        let bytes = fs::read(&path).at("read", &path)?;
        if bytes.first() != Some(&CapKind::Data.tag()) || is_root_record(&bytes) {
            return Ok(false);
        }
        let corrupt = |reason: String| StoreError::CorruptBlob {
            hash: *hash,
            path: path.clone(),
            reason,
        };
        let cap = Cap::decode(&bytes).map_err(|e| corrupt(format!("does not decode: {e}")))?;
        let actual = cap
            .hash()
            .map_err(|e| corrupt(format!("does not hash: {e}")))?;
        if actual != *hash {
            return Err(corrupt(format!("its bytes hash to {actual}")));
        }
        let Cap::Data(data) = cap else {
            return Ok(false);
        };
        self.store_data_locked(hash, &data)?;
        Ok(true)
    }
}

fn sync_dirs(dirs: &mut HashSet<PathBuf>) -> Result<(), StoreError> {
    for dir in dirs.drain() {
        fsio::sync_dir(&dir)?;
    }
    Ok(())
}

/// The store with its lock already held by the caller.
struct Locked<'a>(&'a Store);

impl DataPartStore for Locked<'_> {
    fn has_part(&self, digest: &NodeDigest, height: u8) -> Result<bool, StoreError> {
        self.0.has_part(digest, height)
    }

    fn write_parts(&self, hash: &CapHash, parts: &DataParts) -> Result<(), StoreError> {
        self.0.write_parts_locked(hash, parts)
    }
}

impl DataPartStore for Store {
    fn has_part(&self, digest: &NodeDigest, height: u8) -> Result<bool, StoreError> {
        let path = self.part_path(digest, height == 0);
        match fs::symlink_metadata(&path) {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("stat", path, e)),
        }
    }

    fn write_parts(&self, hash: &CapHash, parts: &DataParts) -> Result<(), StoreError> {
        let _shared = self.lock(LockMode::Shared)?;
        self.write_parts_locked(hash, parts)
    }
}
