//! Walking a cap graph stored in PostgreSQL: breadth first, one query per
//! level (kinds of every blob of the level, bytes of the structural ones:
//! Instances and CNodes; Data, Image and Type blobs are not read).

use std::collections::{HashMap, HashSet};

use capbox_shared::{Cap, CapHash, CapKind};

use super::{PgStore, encode_as, hash_from, kind_from};
use crate::store::{CapSource, StoreError};

/// A link to follow, with the kind its holder requires (if any).
pub(super) struct Link {
    pub hash: CapHash,
    requirement: Option<(CapHash, &'static str, CapKind)>,
}

/// The links of `cap` (Instance: image, memory, root CNode; CNode: every
/// slot), each with the kind its field requires.
pub(super) fn links(cap: &Cap, parent: CapHash) -> Vec<Link> {
    let mut out = Vec::new();
    let mut push = |target: Option<&CapHash>, field: &'static str, kind: Option<CapKind>| {
        if let Some(hash) = target {
            out.push(Link {
                hash: *hash,
                requirement: kind.map(|kind| (parent, field, kind)),
            });
        }
    };
    match cap {
        Cap::Instance(instance) => {
            push(Some(&instance.image), "image", Some(CapKind::Image));
            push(instance.memory.as_hash(), "memory", Some(CapKind::Data));
            push(
                instance.root_cnode.as_hash(),
                "root_cnode",
                Some(CapKind::CNode),
            );
        }
        Cap::CNode(cnode) => {
            for (_, target) in cnode.iter() {
                push(target.as_hash(), "slot", None);
            }
        }
        Cap::Data(_) | Cap::Image(_) | Cap::Type(_) => {}
    }
    out
}

/// Every cap `source` has of `root`'s graph, encoded (from `root` down its
/// links; a cap the source does not have is not descended into).
pub(super) fn collect(
    root: &CapHash,
    source: CapSource<'_>,
) -> Result<Vec<(CapHash, Vec<u8>)>, StoreError> {
    let mut seen = HashSet::new();
    let mut todo = vec![*root];
    let mut out = Vec::new();
    while let Some(hash) = todo.pop() {
        if !seen.insert(hash) {
            continue;
        }
        let Some(cap) = source(&hash) else {
            continue;
        };
        out.push((hash, encode_as(&cap, &hash)?));
        todo.extend(links(&cap, hash).into_iter().map(|link| link.hash));
    }
    Ok(out)
}

/// A fetched blob: its kind tag and, for Instances and CNodes, its bytes.
type LevelRow = (i16, Option<Vec<u8>>);

/// What the walk does with a missing blob or a link to the wrong kind.
pub(super) enum Policy<'a, 'b> {
    /// Refuse: the head would point at a broken graph.
    Refuse { head: &'a str, root: CapHash },
    /// Store a missing blob from `source` first (the caller's transaction
    /// holds the gc lock, so nothing deletes it again), else refuse.
    Repair {
        head: &'a str,
        root: CapHash,
        source: CapSource<'b>,
        repaired: &'a mut u64,
    },
    /// Record and go on (pinning, verification).
    Record {
        missing: &'a mut Vec<CapHash>,
        wrong_kinds: &'a mut Vec<StoreError>,
    },
}

impl PgStore {
    /// Walks `root`'s graph as `policy` says, adding every stored blob
    /// reached to `visited` (a blob already there, from an earlier walk,
    /// is not walked again). Returns the root's kind (`None`: missing).
    pub(super) fn walk(
        &self,
        root: &CapHash,
        mut policy: Policy<'_, '_>,
        visited: &mut HashSet<CapHash>,
    ) -> Result<Option<CapKind>, StoreError> {
        let mut kinds: HashMap<CapHash, Option<CapKind>> = HashMap::new();
        let mut level = vec![Link {
            hash: *root,
            requirement: None,
        }];
        while !level.is_empty() {
            let mut fetch: Vec<CapHash> = level
                .iter()
                .map(|link| link.hash)
                .filter(|hash| !kinds.contains_key(hash) && !visited.contains(hash))
                .collect();
            fetch.sort();
            fetch.dedup();
            let mut rows = self.fetch_level(&fetch)?;
            let mut next = Vec::new();
            for hash in fetch {
                let kind = match rows.remove(&hash) {
                    Some((tag, bytes)) => {
                        let kind = kind_from(tag).ok_or_else(|| StoreError::CorruptBlob {
                            hash,
                            path: self.blobs_table(),
                            reason: format!("unknown kind tag {tag}"),
                        })?;
                        if matches!(kind, CapKind::CNode | CapKind::Instance) {
                            let bytes = bytes.unwrap_or_default();
                            let cap = self.verify_bytes(&hash, &bytes)?;
                            next.extend(links(&cap, hash));
                        }
                        Some(kind)
                    }
                    None => match policy.on_missing(self, hash)? {
                        Some(cap) => {
                            next.extend(links(&cap, hash));
                            Some(cap.kind())
                        }
                        None => None,
                    },
                };
                if kind.is_some() {
                    visited.insert(hash);
                }
                kinds.insert(hash, kind);
            }
            for link in &level {
                if let (Some((parent, field, expected)), Some(Some(found))) =
                    (link.requirement, kinds.get(&link.hash))
                    && expected != *found
                {
                    policy.on_wrong_kind(StoreError::WrongLinkKind {
                        parent,
                        child: link.hash,
                        field,
                        expected,
                        found: *found,
                    })?;
                }
            }
            level = next;
        }
        Ok(kinds.get(root).copied().flatten())
    }

    /// Kind (and, for Instances and CNodes, bytes) of each of `hashes`
    /// that is stored.
    fn fetch_level(&self, hashes: &[CapHash]) -> Result<HashMap<CapHash, LevelRow>, StoreError> {
        if hashes.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<&[u8]> = hashes.iter().map(|h| h.as_bytes().as_slice()).collect();
        let rows = self.run("walk a graph", |c| {
            c.query(
                "SELECT hash, kind, CASE WHEN kind IN (1, 3) THEN bytes END
                 FROM capbox_blobs WHERE hash = ANY($1)",
                &[&keys],
            )
        })?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let get = |e| self.query_error("walk a graph", e);
            let hash: Vec<u8> = row.try_get(0).map_err(get)?;
            let kind: i16 = row.try_get(1).map_err(get)?;
            let bytes: Option<Vec<u8>> = row.try_get(2).map_err(get)?;
            let hash = hash_from(&hash)
                .ok_or_else(|| self.bad_row("a blob row's hash is not 32 bytes".to_owned()))?;
            out.insert(hash, (kind, bytes));
        }
        Ok(out)
    }

    pub(super) fn blobs_table(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("{} (table capbox_blobs)", self.target))
    }
}

impl Policy<'_, '_> {
    /// A reachable blob is not stored: `Some(cap)` if the policy stored it.
    fn on_missing(&mut self, store: &PgStore, hash: CapHash) -> Result<Option<Cap>, StoreError> {
        match self {
            Policy::Refuse { head, root } => Err(StoreError::IncompleteGraph {
                name: (*head).to_owned(),
                root: *root,
                missing: hash,
            }),
            Policy::Repair {
                head,
                root,
                source,
                repaired,
            } => {
                let Some(cap) = source(&hash) else {
                    return Err(StoreError::IncompleteGraph {
                        name: (*head).to_owned(),
                        root: *root,
                        missing: hash,
                    });
                };
                let bytes = encode_as(&cap, &hash)?;
                store.insert_blobs(&mut vec![(hash, bytes)])?;
                **repaired += 1;
                Ok(Some(cap))
            }
            Policy::Record { missing, .. } => {
                missing.push(hash);
                Ok(None)
            }
        }
    }

    fn on_wrong_kind(&mut self, error: StoreError) -> Result<(), StoreError> {
        match self {
            Policy::Refuse { .. } | Policy::Repair { .. } => Err(error),
            Policy::Record { wrong_kinds, .. } => {
                wrong_kinds.push(error);
                Ok(())
            }
        }
    }
}
