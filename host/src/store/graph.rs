//! Walking a head's cap graph: Instance → image, memory, root CNode;
//! CNode → every slot. Used to refuse incomplete heads and to find what
//! heads pin.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use capbox_shared::{Cap, CapHash, CapKind};

use super::{Store, StoreError, blobs};

/// The kind named by a blob file's tag byte; `None` if the file is empty or
/// the tag is unknown. Reads one byte.
pub(super) fn read_kind(path: &Path) -> io::Result<Option<CapKind>> {
    let mut tag = [0u8; 1];
    let read = File::open(path)?.read(&mut tag)?;
    Ok(if read == 1 {
        CapKind::from_tag(tag[0])
    } else {
        None
    })
}

/// A link still to visit, with the kind its holder requires (if any).
struct Link {
    hash: CapHash,
    requirement: Option<Requirement>,
}

struct Requirement {
    parent: CapHash,
    field: &'static str,
    kind: CapKind,
}

/// Where a walk that repairs gets the caps it finds missing.
pub(super) type BlobSource<'a> = &'a mut dyn FnMut(&CapHash) -> Option<Cap>;

/// How the walk treats a missing blob or a link to the wrong kind.
enum Policy<'a, 'b> {
    /// Refuse: the head being set would point at a broken graph.
    Refuse { head: &'a str, root: CapHash },
    /// Like `Refuse`, but first store a missing blob from `source` (the
    /// caller holds the exclusive lock, so nothing removes it again).
    Repair {
        head: &'a str,
        root: CapHash,
        source: BlobSource<'b>,
        repaired: &'a mut u64,
    },
    /// Record missing blobs (and wrong kinds) and go on: pruning pins
    /// whatever is present, verification reports the rest.
    Record {
        missing: &'a mut Vec<CapHash>,
        wrong_kinds: &'a mut Vec<StoreError>,
    },
}

/// Succeeds iff `root` is an Instance whose whole graph is stored and well
/// kinded; otherwise names the first problem found. With a `source`, a
/// missing blob is first stored from it (the caller holds the exclusive
/// lock); `repaired` counts those. Only the source's failure to supply one
/// is then [`StoreError::IncompleteGraph`].
pub(super) fn check_head_graph(
    store: &Store,
    head: &str,
    root: &CapHash,
    source: Option<BlobSource<'_>>,
    repaired: &mut u64,
) -> Result<(), StoreError> {
    let mut policy = match source {
        Some(source) => Policy::Repair {
            head,
            root: *root,
            source,
            repaired,
        },
        None => Policy::Refuse { head, root: *root },
    };
    let path = store.blob_path(root);
    let mut kind = read_kind(&path);
    if matches!(&kind, Err(e) if e.kind() == io::ErrorKind::NotFound)
        && policy.on_missing(store, *root)?
    {
        kind = read_kind(&path);
    }
    match kind {
        Ok(Some(CapKind::Instance)) => {}
        Ok(Some(found)) => {
            return Err(StoreError::HeadNotInstance {
                name: head.to_owned(),
                hash: *root,
                found,
            });
        }
        Ok(None) => return Err(unknown_tag(root, &path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::IncompleteGraph {
                name: head.to_owned(),
                root: *root,
                missing: *root,
            });
        }
        Err(e) => return Err(StoreError::io("read", path, e)),
    }
    let mut visited = HashSet::new();
    walk(store, root, policy, &mut visited)
}

/// Walks `root`'s graph recording (not refusing) missing blobs and links
/// to the wrong kind; a corrupt structural blob is an error.
pub(super) fn audit_graph(
    store: &Store,
    root: &CapHash,
    missing: &mut Vec<CapHash>,
    wrong_kinds: &mut Vec<StoreError>,
) -> Result<(), StoreError> {
    let mut visited = HashSet::new();
    walk(
        store,
        root,
        Policy::Record {
            missing,
            wrong_kinds,
        },
        &mut visited,
    )
}

/// The hashes `cap` links to (Instance: image, memory, root CNode; CNode:
/// every slot).
pub(super) fn link_hashes(cap: &Cap) -> Vec<CapHash> {
    let mut stack = Vec::new();
    push_links(cap, CapHash::default(), &mut stack);
    stack.into_iter().map(|link| link.hash).collect()
}

/// Adds every stored blob reachable from `root` to `pinned`, and every
/// reachable hash that is not stored to `missing`. A corrupt structural blob
/// is an error: its links are unknown, so nothing could safely be pruned.
pub(super) fn pin_graph(
    store: &Store,
    root: &CapHash,
    pinned: &mut HashSet<CapHash>,
    missing: &mut Vec<CapHash>,
) -> Result<(), StoreError> {
    let mut wrong_kinds = Vec::new();
    let policy = Policy::Record {
        missing,
        wrong_kinds: &mut wrong_kinds,
    };
    walk(store, root, policy, pinned)
}

fn walk(
    store: &Store,
    root: &CapHash,
    mut policy: Policy<'_, '_>,
    visited: &mut HashSet<CapHash>,
) -> Result<(), StoreError> {
    let mut stack = vec![Link {
        hash: *root,
        requirement: None,
    }];
    // Kind of every hash met so far (`None`: not stored), so a blob reached
    // again through another link is checked against that link too.
    let mut kinds: HashMap<CapHash, Option<CapKind>> = HashMap::new();
    while let Some(link) = stack.pop() {
        let kind = match kinds.get(&link.hash) {
            Some(&known) => known,
            // Walked from an earlier head (pruning only, where kinds are
            // not checked): its whole subgraph is already in `visited`.
            None if visited.contains(&link.hash) => continue,
            None => {
                let found = visit(store, &link.hash, &mut policy, &mut stack)?;
                kinds.insert(link.hash, found);
                if found.is_some() {
                    visited.insert(link.hash);
                }
                found
            }
        };
        if let (Some(required), Some(kind)) = (&link.requirement, kind)
            && required.kind != kind
        {
            policy.on_wrong_kind(required, link.hash, kind)?;
        }
    }
    Ok(())
}

/// Reads `hash`'s kind (reporting it missing to `policy` if it is not
/// stored, and reading it again if the policy stored it) and, for CNodes
/// and Instances, pushes their links.
fn visit(
    store: &Store,
    hash: &CapHash,
    policy: &mut Policy<'_, '_>,
    stack: &mut Vec<Link>,
) -> Result<Option<CapKind>, StoreError> {
    let path = store.blob_path(hash);
    let mut stored_now = false;
    loop {
        let kind = match read_kind(&path) {
            Ok(Some(kind)) => kind,
            Ok(None) => return Err(unknown_tag(hash, &path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !stored_now && policy.on_missing(store, *hash)? {
                    stored_now = true;
                    continue;
                }
                return Ok(None);
            }
            Err(e) => return Err(StoreError::io("read", path, e)),
        };
        if matches!(kind, CapKind::CNode | CapKind::Instance) {
            match store.read_verified(hash, false)? {
                Some((cap, _)) => push_links(&cap, *hash, stack),
                None => {
                    // Removed between the two reads (by hand: the lock
                    // keeps the store's own writers out).
                    if !stored_now && policy.on_missing(store, *hash)? {
                        stored_now = true;
                        continue;
                    }
                    return Ok(None);
                }
            }
        }
        return Ok(Some(kind));
    }
}

fn push_links(cap: &Cap, parent: CapHash, stack: &mut Vec<Link>) {
    let mut push = |target: Option<&CapHash>, field: &'static str, kind: Option<CapKind>| {
        // Decoded caps never hold `Ref`s; a `Ref` has no blob to visit anyway.
        if let Some(hash) = target {
            stack.push(Link {
                hash: *hash,
                requirement: kind.map(|kind| Requirement {
                    parent,
                    field,
                    kind,
                }),
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
}

impl Policy<'_, '_> {
    /// A reachable blob is not stored. `Ok(true)`: the policy stored it.
    fn on_missing(&mut self, store: &Store, hash: CapHash) -> Result<bool, StoreError> {
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
                let bytes = blobs::encode_as(&cap, &hash)?;
                store.write_blob_locked(&hash, &bytes)?;
                **repaired += 1;
                Ok(true)
            }
            Policy::Record { missing, .. } => {
                missing.push(hash);
                Ok(false)
            }
        }
    }

    fn on_wrong_kind(
        &mut self,
        required: &Requirement,
        child: CapHash,
        found: CapKind,
    ) -> Result<(), StoreError> {
        let error = StoreError::WrongLinkKind {
            parent: required.parent,
            child,
            field: required.field,
            expected: required.kind,
            found,
        };
        match self {
            Policy::Refuse { .. } | Policy::Repair { .. } => Err(error),
            // Pin it all the same: it is what the head holds.
            Policy::Record { wrong_kinds, .. } => {
                wrong_kinds.push(error);
                Ok(())
            }
        }
    }
}

fn unknown_tag(hash: &CapHash, path: &Path) -> StoreError {
    StoreError::CorruptBlob {
        hash: *hash,
        path: path.to_path_buf(),
        reason: "empty, or an unknown kind tag".to_owned(),
    }
}
