//! Page-granular export of Data caps (docs/store.md "Data pages"): a store
//! that keeps Data as Merkle-tree parts (pages and inner nodes named by
//! their digests) takes a new Data by walking its tree top down and
//! fetching only the subtrees it lacks, one `data_nodes` call per tree
//! level (batched up to the transfer chunk size). Every part is checked
//! against the digest its parent names, and the root against the cap
//! hash, before anything is stored; the store writes pages and nodes
//! bottom up and the Data's root record last, so a stored root always
//! has its whole tree.

use std::collections::{HashMap, HashSet};

use capbox_shared::abi::{self, DataNodesReply, GuestFunction, TreePosition};
use capbox_shared::cap::{
    Cap, CapHashOrRef, NodeDigest, PAGE_SIZE, Page, data_depth_for_len, data_hash_from_root,
    data_node_digest, data_page_digest, data_zero_digest,
};
use capbox_shared::hash::CapHash;

use crate::data_delta::RecordingNodes;
use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::store::{StoreBackend, StoreError};

/// Where a page-granular put reads a Data's tree from.
pub trait DataNodeSource {
    /// The Data `hash`'s length, root and the contents of `positions`
    /// (per position: a page, or its children's digests; see
    /// `abi::data_nodes`); `None` if `hash` is not a Data (or the source
    /// cannot serve it by parts).
    fn data_nodes(
        &mut self,
        hash: &CapHash,
        positions: &[TreePosition],
    ) -> Result<Option<(u64, NodeDigest, Vec<u8>)>, StoreError>;

    /// Most content bytes to ask for in one call.
    fn batch_bytes(&self) -> usize;
}

/// A store that keeps Data caps as tree parts.
pub trait DataPartStore {
    /// Whether the part `digest` (a page at height 0, else an inner node)
    /// is stored. A stored node implies its whole subtree is.
    fn has_part(&self, digest: &NodeDigest, height: u8) -> Result<bool, StoreError>;

    /// Stores `parts` (every one checked against its digest), children
    /// before parents, then the root record of Data `hash`.
    fn write_parts(&self, hash: &CapHash, parts: &DataParts) -> Result<(), StoreError>;
}

/// The parts of one Data to store: what the store lacked.
#[derive(Debug, Default)]
pub struct DataParts {
    /// Length in bytes.
    pub len: u64,
    /// Merkle root.
    pub root: NodeDigest,
    /// New pages (digest, bytes).
    pub pages: Vec<(NodeDigest, Box<Page>)>,
    /// New inner nodes (height, digest, `left ‖ right`), parents before
    /// children (the order the walk found them); write in reverse.
    pub nodes: Vec<(u8, NodeDigest, [u8; 64])>,
}

/// What one page-granular put moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PagedPut {
    /// Pages fetched and stored.
    pub pages: u64,
    /// Inner nodes fetched and stored.
    pub nodes: u64,
    /// Content bytes fetched from the source.
    pub bytes: u64,
    /// Calls to the source.
    pub calls: u64,
}

fn export_error(hash: &CapHash, reason: impl Into<String>) -> StoreError {
    StoreError::DataExport {
        hash: *hash,
        reason: reason.into(),
    }
}

/// Stores Data `hash` into `store` from `source`, fetching only the parts
/// the store lacks; `None` if `hash` is not a Data (nothing stored).
pub fn put_data_from(
    store: &dyn DataPartStore,
    hash: &CapHash,
    source: &mut dyn DataNodeSource,
) -> Result<Option<PagedPut>, StoreError> {
    let Some((len, root, _)) = source.data_nodes(hash, &[])? else {
        return Ok(None);
    };
    let mut report = PagedPut {
        calls: 1,
        ..PagedPut::default()
    };
    let actual = data_hash_from_root(len, &root);
    if actual != *hash {
        return Err(StoreError::HashMismatch {
            expected: *hash,
            actual,
        });
    }
    let depth = data_depth_for_len(len).ok_or_else(|| export_error(hash, "length too large"))?;
    let mut parts = DataParts {
        len,
        root,
        ..DataParts::default()
    };
    let mut frontier: Vec<(u8, u32, NodeDigest)> = Vec::new();
    if root != data_zero_digest(depth) && !store.has_part(&root, depth)? {
        frontier.push((depth, 0, root));
    }
    let mut seen: HashSet<NodeDigest> = HashSet::from([root]);
    let batch = source.batch_bytes().max(PAGE_SIZE);
    while !frontier.is_empty() {
        let mut next = Vec::new();
        let mut start = 0;
        while start < frontier.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < frontier.len() {
                let add = abi::position_bytes(frontier[end].0);
                if end > start && bytes + add > batch {
                    break;
                }
                bytes += add;
                end += 1;
            }
            let wanted = &frontier[start..end];
            let positions: Vec<TreePosition> = wanted.iter().map(|&(h, i, _)| (h, i)).collect();
            let Some((got_len, got_root, content)) = source.data_nodes(hash, &positions)? else {
                return Err(export_error(hash, "no longer a Data"));
            };
            report.calls += 1;
            report.bytes += content.len() as u64;
            if (got_len, got_root) != (len, root) {
                return Err(export_error(hash, "length or root changed between calls"));
            }
            let mut at = 0;
            for &(height, index, digest) in wanted {
                let size = abi::position_bytes(height);
                let Some(item) = content.get(at..at + size) else {
                    return Err(export_error(hash, "reply shorter than asked"));
                };
                at += size;
                if height == 0 {
                    let page: Box<Page> = Box::new(
                        item.try_into()
                            .map_err(|_| export_error(hash, "page size"))?,
                    );
                    if data_page_digest(&page) != digest {
                        return Err(export_error(
                            hash,
                            format!("page {index} does not hash to its digest"),
                        ));
                    }
                    parts.pages.push((digest, page));
                    continue;
                }
                let mut pair = [0u8; 64];
                pair.copy_from_slice(item);
                let (left, right) = split_pair(&pair);
                if data_node_digest(&left, &right) != digest {
                    return Err(export_error(
                        hash,
                        format!(
                            "node (height {height}, index {index}) does not hash to its digest"
                        ),
                    ));
                }
                parts.nodes.push((height, digest, pair));
                let below = height - 1;
                let zero = data_zero_digest(below);
                for (child, child_index) in [(left, index * 2), (right, index * 2 + 1)] {
                    if child != zero && seen.insert(child) && !store.has_part(&child, below)? {
                        next.push((below, child_index, child));
                    }
                }
            }
            start = end;
        }
        frontier = next;
    }
    report.pages = parts.pages.len() as u64;
    report.nodes = parts.nodes.len() as u64;
    store.write_parts(hash, &parts)?;
    Ok(Some(report))
}

/// `left ‖ right` split into the two digests.
pub fn split_pair(pair: &[u8; 64]) -> (NodeDigest, NodeDigest) {
    let mut left = [0u8; 32];
    let mut right = [0u8; 32];
    left.copy_from_slice(&pair[..32]);
    right.copy_from_slice(&pair[32..]);
    (left, right)
}

impl Kernel {
    /// Tells the kernel the host can serve `hashes` from now on (its
    /// fallback store holds them: `host_keeps`), so eviction may drop
    /// them without a spill; how many of them the kernel holds.
    pub fn host_keeps(&mut self, hashes: &[CapHash]) -> Result<usize, KernelError> {
        let mut held = 0;
        for chunk in hashes.chunks(abi::MAX_HOST_KEEPS) {
            let raw: Vec<[u8; 32]> = chunk.iter().map(|h| h.0).collect();
            let request = abi::encode_host_keeps_request(&raw);
            let reply = self.call_raw(GuestFunction::HostKeeps, &request)?;
            held += abi::decode_put_cap_reply(&reply)?
                .map_err(KernelError::Refused)?
                .len();
        }
        Ok(held)
    }

    /// One `data_nodes` call (see `abi::data_nodes`).
    pub fn data_nodes(
        &mut self,
        hash: &CapHash,
        positions: &[TreePosition],
    ) -> Result<DataNodesReply, KernelError> {
        let request = abi::encode_data_nodes_request(&hash.0, positions);
        let reply = self.call_raw(GuestFunction::DataNodes, &request)?;
        abi::decode_data_nodes_reply(&reply, positions)?.map_err(KernelError::Refused)
    }
}

/// A [`DataNodeSource`] on a kernel.
pub struct KernelNodes<'a>(pub &'a mut Kernel);

impl DataNodeSource for KernelNodes<'_> {
    fn data_nodes(
        &mut self,
        hash: &CapHash,
        positions: &[TreePosition],
    ) -> Result<Option<(u64, NodeDigest, Vec<u8>)>, StoreError> {
        match self.0.data_nodes(hash, positions) {
            Ok(DataNodesReply::Data { len, root, content }) => Ok(Some((len, root, content))),
            Ok(DataNodesReply::NotData(_)) => Ok(None),
            // Evicted from the kernel (and spilled to the host's copy):
            // the caller falls back to the whole-cap path.
            Err(KernelError::Refused(e)) if e.kind == abi::ErrorKind::MissingCap => Ok(None),
            Err(e) => Err(export_error(hash, e.to_string())),
        }
    }

    fn batch_bytes(&self) -> usize {
        self.0.stream_chunk_bytes().min(abi::MAX_DATA_NODES_BYTES)
    }
}

/// Before a graph save: stores every Data cap reachable from `root` that
/// `store` lacks page-granularly from `kernel` (only the parts it lacks).
/// Caps the store holds are skipped with their subgraphs (a stored cap's
/// graph is stored). Does nothing on a store that keeps Data whole; the
/// other kinds are left to the graph save. The puts' totals.
pub fn export_data_caps(
    kernel: &mut Kernel,
    store: &dyn StoreBackend,
    root: &CapHash,
) -> Result<PagedPut, StoreError> {
    export_data_caps_listed(kernel, store, root).map(|(total, _)| total)
}

/// The Data caps an export touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportedData {
    /// Data caps the export stored (the store lacked them).
    pub stored: Vec<CapHash>,
    /// Every link the walk reached where a Data may be (stored before or
    /// now): the new state's Data caps among them.
    pub reached: Vec<CapHash>,
}

/// [`export_data_caps`], also listing the Data caps it stored and reached.
pub fn export_data_caps_listed(
    kernel: &mut Kernel,
    store: &dyn StoreBackend,
    root: &CapHash,
) -> Result<(PagedPut, ExportedData), StoreError> {
    let mut total = PagedPut::default();
    let mut listed = ExportedData::default();
    if !store.keeps_data_paged() {
        return Ok((total, listed));
    }
    let mut stack = vec![(*root, false)];
    let mut seen = HashSet::from([*root]);
    while let Some((hash, maybe_data)) = stack.pop() {
        if maybe_data {
            listed.reached.push(hash);
        }
        if store.contains(&hash)? {
            continue;
        }
        if maybe_data {
            // What the walk learns of the new Data's tree lets the host
            // send its next version as a delta against it.
            let mut nodes = KernelNodes(kernel);
            let mut recorder = RecordingNodes {
                inner: &mut nodes,
                learned: HashMap::new(),
                tree: None,
            };
            let put = store.put_data_paged(&hash, &mut recorder)?;
            let (learned, tree) = (recorder.learned, recorder.tree);
            if let Some(put) = put {
                total.pages += put.pages;
                total.nodes += put.nodes;
                total.bytes += put.bytes;
                total.calls += put.calls;
                if let Some((len, root)) = tree {
                    kernel.note_exported_data(&hash, len, &root, &learned);
                }
                listed.stored.push(hash);
                continue;
            }
        }
        let cap = kernel
            .get_cap(&hash)
            .map_err(|e| export_error(&hash, e.to_string()))?;
        let links: Vec<(Option<CapHash>, bool)> = match &cap {
            Cap::Instance(instance) => vec![
                (instance.memory.as_hash().copied(), true),
                (instance.root_cnode.as_hash().copied(), false),
            ],
            Cap::CNode(cnode) => cnode
                .iter()
                .map(|(_, link)| match link {
                    CapHashOrRef::Hash(h) => (Some(*h), true),
                    _ => (None, false),
                })
                .collect(),
            Cap::Data(_) | Cap::Image(_) | Cap::Type(_) => Vec::new(),
        };
        for (link, maybe_data) in links {
            if let Some(h) = link
                && seen.insert(h)
            {
                stack.push((h, maybe_data));
            }
        }
    }
    Ok((total, listed))
}
