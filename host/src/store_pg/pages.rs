//! Data caps as Merkle-tree parts on PostgreSQL (schema 2; docs/store.md
//! "Data pages"): the layout of the filesystem store's format 4 in tables.
//!
//! * `capbox_data_parts (digest PK, page, bytes)`: a page (4096 bytes) or
//!   an inner node (`left ‖ right`, 64 bytes) by its Merkle digest; zero
//!   subtrees are never stored.
//! * A Data row of `capbox_blobs` with `layout` 1 holds the 41-byte root
//!   record (`tag ‖ len ‖ root`) instead of the encoding (`size` is then
//!   41). Rows written by schema 1 (`layout` 0, whole) stay readable.
//!
//! Parts are inserted before the root row (one statement each, `ON
//! CONFLICT DO NOTHING`), so a stored root always has its whole tree; gc
//! deletes every part no remaining root reaches, in its transaction.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use capbox_shared::CapHash;
use capbox_shared::cap::{
    CapKind, Data, NodeDigest, PAGE_SIZE, Page, SharedPage, data_depth_for_len,
    data_hash_from_root, data_node_digest, data_page_digest, data_zero_digest,
};

use super::PgStore;
use crate::export_pages::{
    DataNodeSource, DataPartStore, DataParts, PagedPut, put_data_from, split_pair,
};
use crate::store::StoreError;

/// `capbox_blobs.layout` of a Data row holding a root record.
pub(super) const LAYOUT_PARTS: i16 = 1;
/// Bytes of a root record.
const ROOT_RECORD_LEN: usize = 41;

/// A stored part: digest and whether it is a page.
pub(super) type PartKey = (NodeDigest, bool);

/// Inner nodes by digest: their `left ‖ right`.
pub(super) type NodeMap = HashMap<NodeDigest, [u8; 64]>;

fn root_record(len: u64, root: &NodeDigest) -> Vec<u8> {
    let mut out = Vec::with_capacity(ROOT_RECORD_LEN);
    out.push(CapKind::Data.tag());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(root);
    out
}

/// `(len, root)` of a root record.
pub(super) fn parse_root_record(bytes: &[u8]) -> Option<(u64, NodeDigest)> {
    if bytes.len() != ROOT_RECORD_LEN || bytes[0] != CapKind::Data.tag() {
        return None;
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[1..9]);
    let mut root = [0u8; 32];
    root.copy_from_slice(&bytes[9..]);
    Some((u64::from_le_bytes(len), root))
}

fn digest_from(bytes: &[u8]) -> Option<NodeDigest> {
    bytes.try_into().ok()
}

/// Whether `bytes` (a part's content) hashes to `digest`.
fn part_ok(digest: &NodeDigest, page: bool, bytes: &[u8]) -> bool {
    if page {
        <&Page>::try_from(bytes).is_ok_and(|p| data_page_digest(p) == *digest)
    } else {
        <&[u8; 64]>::try_from(bytes).is_ok_and(|pair| {
            let (l, r) = split_pair(pair);
            data_node_digest(&l, &r) == *digest
        })
    }
}

/// Parts reachable from `(len, root)` through `nodes` (each once).
pub(super) fn reachable(len: u64, root: &NodeDigest, nodes: &NodeMap) -> Vec<PartKey> {
    let Some(depth) = data_depth_for_len(len) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![(depth, *root)];
    while let Some((height, digest)) = stack.pop() {
        if digest == data_zero_digest(height) || !seen.insert((digest, height == 0)) {
            continue;
        }
        out.push((digest, height == 0));
        if height > 0
            && let Some(pair) = nodes.get(&digest)
        {
            let (left, right) = split_pair(pair);
            stack.push((height - 1, left));
            stack.push((height - 1, right));
        }
    }
    out
}

impl PgStore {
    fn corrupt_data(&self, hash: &CapHash, reason: String) -> StoreError {
        StoreError::CorruptBlob {
            hash: *hash,
            path: PathBuf::from(format!("{} (table capbox_data_parts)", self.target)),
            reason,
        }
    }

    /// The stored parts among `digests` with their bytes.
    fn read_parts(
        &self,
        digests: &[NodeDigest],
    ) -> Result<HashMap<NodeDigest, Vec<u8>>, StoreError> {
        let keys: Vec<&[u8]> = digests.iter().map(|d| d.as_slice()).collect();
        let rows = self.run("read Data parts", |c| {
            c.query(
                "SELECT digest, bytes FROM capbox_data_parts WHERE digest = ANY($1)",
                &[&keys],
            )
        })?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let get = |e| self.query_error("read Data parts", e);
            let digest: Vec<u8> = row.try_get(0).map_err(get)?;
            let bytes: Vec<u8> = row.try_get(1).map_err(get)?;
            let digest = digest_from(&digest)
                .ok_or_else(|| self.bad_row("a part's digest is not 32 bytes".to_owned()))?;
            out.insert(digest, bytes);
        }
        Ok(out)
    }

    /// Which of `digests` are stored parts.
    fn stored_parts(&self, digests: &[NodeDigest]) -> Result<HashSet<NodeDigest>, StoreError> {
        let keys: Vec<&[u8]> = digests.iter().map(|d| d.as_slice()).collect();
        let rows = self.run("look Data parts up", |c| {
            c.query(
                "SELECT digest FROM capbox_data_parts WHERE digest = ANY($1)",
                &[&keys],
            )
        })?;
        let mut out = HashSet::new();
        for row in rows {
            let digest: Vec<u8> = row
                .try_get(0)
                .map_err(|e| self.query_error("look Data parts up", e))?;
            out.extend(digest_from(&digest));
        }
        Ok(out)
    }

    /// Stores `parts` and then the root row of Data `hash`.
    fn write_parts_impl(&self, hash: &CapHash, parts: &DataParts) -> Result<(), StoreError> {
        let mut digests: Vec<&[u8]> = Vec::new();
        let mut pages: Vec<bool> = Vec::new();
        let mut bytes: Vec<&[u8]> = Vec::new();
        for (digest, page) in &parts.pages {
            digests.push(digest);
            pages.push(true);
            bytes.push(&page[..]);
        }
        for (_, digest, pair) in &parts.nodes {
            digests.push(digest);
            pages.push(false);
            bytes.push(pair);
        }
        if !digests.is_empty() {
            self.run("store Data parts", |c| {
                c.execute(
                    "INSERT INTO capbox_data_parts (digest, page, bytes)
                     SELECT * FROM unnest($1::bytea[], $2::bool[], $3::bytea[])
                     ON CONFLICT (digest) DO NOTHING",
                    &[&digests, &pages, &bytes],
                )
            })?;
        }
        let record = root_record(parts.len, &parts.root);
        let kind = i16::from(CapKind::Data.tag());
        let size = record.len() as i64;
        self.run("store a Data root", |c| {
            c.execute(
                "INSERT INTO capbox_blobs (hash, kind, size, layout, bytes)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (hash) DO UPDATE SET last_access = now(),
                   kind = EXCLUDED.kind, size = EXCLUDED.size,
                   layout = EXCLUDED.layout, bytes = EXCLUDED.bytes",
                &[
                    &hash.as_bytes().as_slice(),
                    &kind,
                    &size,
                    &LAYOUT_PARTS,
                    &record,
                ],
            )
        })?;
        Ok(())
    }

    /// Stores `data` (named `hash`, checked by the caller) as parts,
    /// writing only those not stored yet (one lookup per tree level).
    pub(super) fn store_data(&self, hash: &CapHash, data: &Data) -> Result<(), StoreError> {
        self.with_gc_lock_shared(|store| store.store_data_locked(hash, data))
    }

    fn store_data_locked(&self, hash: &CapHash, data: &Data) -> Result<(), StoreError> {
        let depth = data.tree_depth();
        let mut parts = DataParts {
            len: data.len(),
            root: data.root_digest(),
            ..DataParts::default()
        };
        let mut frontier = Vec::new();
        if parts.root != data_zero_digest(depth) {
            frontier.push((depth, 0u32, parts.root));
        }
        while !frontier.is_empty() {
            let digests: Vec<NodeDigest> = frontier.iter().map(|f| f.2).collect();
            let stored = self.stored_parts(&digests)?;
            let mut next = Vec::new();
            for (height, index, digest) in frontier {
                if stored.contains(&digest) {
                    continue;
                }
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
                    if c != data_zero_digest(below) {
                        next.push((below, i, c));
                    }
                }
            }
            next.sort_by_key(|n| n.2);
            next.dedup_by_key(|n| n.2);
            frontier = next;
        }
        self.write_parts_impl(hash, &parts)
    }

    /// The Data a root record names, read level by level, every part
    /// checked against its digest and the root against `hash`.
    pub(super) fn read_data(&self, hash: &CapHash, record: &[u8]) -> Result<Data, StoreError> {
        let corrupt = |reason: String| self.corrupt_data(hash, reason);
        let (len, root) =
            parse_root_record(record).ok_or_else(|| corrupt("not a root record".into()))?;
        let depth =
            data_depth_for_len(len).ok_or_else(|| corrupt(format!("length {len} too large")))?;
        if data_hash_from_root(len, &root) != *hash {
            return Err(corrupt("its root record does not hash to its name".into()));
        }
        let mut data = Data::new(len).map_err(|e| corrupt(e.to_string()))?;
        let mut frontier = vec![(depth, 0u32, root)];
        while !frontier.is_empty() {
            frontier.retain(|(h, _, d)| *d != data_zero_digest(*h));
            let digests: Vec<NodeDigest> = frontier.iter().map(|f| f.2).collect();
            let found = self.read_parts(&digests)?;
            let mut next = Vec::new();
            for (height, index, digest) in frontier {
                let what = if height == 0 { "page" } else { "node" };
                let bytes = found
                    .get(&digest)
                    .ok_or_else(|| corrupt(format!("its {what} {} is missing", CapHash(digest))))?;
                if !part_ok(&digest, height == 0, bytes) {
                    return Err(corrupt(format!(
                        "its {what} {} is corrupt (does not hash to its name)",
                        CapHash(digest)
                    )));
                }
                if height == 0 {
                    let page: &Page = bytes[..].try_into().map_err(|_| corrupt("page".into()))?;
                    data.write_page_shared(index, SharedPage::new(page))
                        .map_err(|e| corrupt(format!("page {index}: {e}")))?;
                } else {
                    let pair: &[u8; 64] =
                        bytes[..].try_into().map_err(|_| corrupt("node".into()))?;
                    let (left, right) = split_pair(pair);
                    next.push((height - 1, index * 2, left));
                    next.push((height - 1, index * 2 + 1, right));
                }
            }
            frontier = next;
        }
        Ok(data)
    }

    /// Every inner node (digest → children) and every part's size.
    pub(super) fn load_parts(&self) -> Result<(NodeMap, HashMap<PartKey, u64>), StoreError> {
        let rows = self.run("list Data parts", |c| {
            c.query(
                "SELECT digest, page, CASE WHEN page THEN NULL ELSE bytes END,
                        octet_length(bytes)::int8
                 FROM capbox_data_parts",
                &[],
            )
        })?;
        let mut nodes = HashMap::new();
        let mut sizes = HashMap::new();
        for row in rows {
            let get = |e| self.query_error("list Data parts", e);
            let digest: Vec<u8> = row.try_get(0).map_err(get)?;
            let page: bool = row.try_get(1).map_err(get)?;
            let pair: Option<Vec<u8>> = row.try_get(2).map_err(get)?;
            let size: i64 = row.try_get(3).map_err(get)?;
            let digest = digest_from(&digest)
                .ok_or_else(|| self.bad_row("a part's digest is not 32 bytes".to_owned()))?;
            if let Some(pair) = pair.and_then(|p| <[u8; 64]>::try_from(p).ok()) {
                nodes.insert(digest, pair);
            }
            sizes.insert((digest, page), size.max(0) as u64);
        }
        Ok((nodes, sizes))
    }

    /// Deletes parts.
    pub(super) fn delete_parts(&self, parts: &[PartKey]) -> Result<(), StoreError> {
        for chunk in parts.chunks(10_000) {
            let keys: Vec<&[u8]> = chunk.iter().map(|(d, _)| d.as_slice()).collect();
            self.run("delete Data parts", |c| {
                c.execute(
                    "DELETE FROM capbox_data_parts WHERE digest = ANY($1)",
                    &[&keys],
                )
            })?;
        }
        Ok(())
    }

    /// Verifies the tree of root record `record` (Data `hash`), skipping
    /// parts in `verified` and adding those it checks.
    pub(super) fn verify_data_tree(
        &self,
        hash: &CapHash,
        record: &[u8],
        verified: &mut HashSet<NodeDigest>,
    ) -> Result<Result<(), String>, StoreError> {
        let Some((len, root)) = parse_root_record(record) else {
            return Ok(Err("not a root record".into()));
        };
        let Some(depth) = data_depth_for_len(len) else {
            return Ok(Err("length too large".into()));
        };
        if data_hash_from_root(len, &root) != *hash {
            return Ok(Err("its root record does not hash to its name".into()));
        }
        let mut frontier = vec![(depth, root)];
        while !frontier.is_empty() {
            frontier.retain(|(h, d)| *d != data_zero_digest(*h) && !verified.contains(d));
            let digests: Vec<NodeDigest> = frontier.iter().map(|f| f.1).collect();
            let found = self.read_parts(&digests)?;
            let mut next = Vec::new();
            for (height, digest) in frontier {
                let what = if height == 0 { "page" } else { "node" };
                let Some(bytes) = found.get(&digest) else {
                    return Ok(Err(format!("its {what} {} is missing", CapHash(digest))));
                };
                if !part_ok(&digest, height == 0, bytes) {
                    return Ok(Err(format!(
                        "its {what} {} is corrupt (does not hash to its name)",
                        CapHash(digest)
                    )));
                }
                if let Ok(pair) = <&[u8; 64]>::try_from(&bytes[..])
                    && height > 0
                {
                    let (left, right) = split_pair(pair);
                    next.push((height - 1, left));
                    next.push((height - 1, right));
                }
                verified.insert(digest);
            }
            frontier = next;
        }
        Ok(Ok(()))
    }

    /// Stores Data `hash` from `source`, fetching only the parts this
    /// store lacks.
    ///
    /// Holds the gc lock shared throughout (as head moves do), so no gc
    /// deletes a part this put found stored before its root row exists.
    pub fn put_data_paged(
        &self,
        hash: &CapHash,
        source: &mut dyn DataNodeSource,
    ) -> Result<Option<PagedPut>, StoreError> {
        self.with_gc_lock_shared(|store| put_data_from(store, hash, source))
    }

    /// Runs `f` holding the gc lock shared: inside a transaction for the
    /// rest of it (a head move holds it already), else at session level
    /// until `f` returns (a failed statement outside a transaction aborts
    /// nothing, so the unlock always runs).
    fn with_gc_lock_shared<T>(
        &self,
        f: impl FnOnce(&PgStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let in_txn = self.run("take the gc lock shared", |c| {
            if c.in_txn {
                c.execute(
                    "SELECT pg_advisory_xact_lock_shared($1)",
                    &[&super::GC_LOCK],
                )?;
            } else {
                c.execute("SELECT pg_advisory_lock_shared($1)", &[&super::GC_LOCK])?;
            }
            Ok(c.in_txn)
        })?;
        if in_txn {
            return f(self);
        }
        let result = f(self);
        let unlocked = self.run("release the gc lock", |c| {
            c.execute("SELECT pg_advisory_unlock_shared($1)", &[&super::GC_LOCK])
        });
        let value = result?;
        unlocked?;
        Ok(value)
    }
}

impl DataPartStore for PgStore {
    fn has_part(&self, digest: &NodeDigest, _height: u8) -> Result<bool, StoreError> {
        Ok(!self.stored_parts(std::slice::from_ref(digest))?.is_empty())
    }

    fn write_parts(&self, hash: &CapHash, parts: &DataParts) -> Result<(), StoreError> {
        self.write_parts_impl(hash, parts)
    }
}
