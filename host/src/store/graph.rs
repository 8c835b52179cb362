//! Walking a head's cap graph: Instance → image, memory, root CNode;
//! CNode → every slot. Used to refuse incomplete heads and to find what
//! heads pin.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use capbox_shared::{Cap, CapHash, CapKind};

use super::{Store, StoreError};

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

/// How the walk treats a missing blob or a link to the wrong kind.
enum Policy<'a> {
    /// Refuse: the head being set would point at a broken graph.
    Refuse { head: &'a str, root: CapHash },
    /// Record missing blobs and go on (pruning pins whatever is present).
    Record { missing: &'a mut Vec<CapHash> },
}

/// Succeeds iff `root` is an Instance whose whole graph is stored and well
/// kinded; otherwise names the first problem found.
pub(super) fn check_head_graph(
    store: &Store,
    head: &str,
    root: &CapHash,
) -> Result<(), StoreError> {
    let missing = || StoreError::IncompleteGraph {
        name: head.to_owned(),
        root: *root,
        missing: *root,
    };
    let path = store.blob_path(root);
    match read_kind(&path) {
        Ok(Some(CapKind::Instance)) => {}
        Ok(Some(found)) => {
            return Err(StoreError::HeadNotInstance {
                name: head.to_owned(),
                hash: *root,
                found,
            });
        }
        Ok(None) => return Err(unknown_tag(root, &path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(StoreError::io("read", path, e)),
    }
    let mut visited = HashSet::new();
    let policy = Policy::Refuse { head, root: *root };
    walk(store, root, policy, &mut visited)
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
    walk(store, root, Policy::Record { missing }, pinned)
}

fn walk(
    store: &Store,
    root: &CapHash,
    mut policy: Policy<'_>,
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
/// stored) and, for CNodes and Instances, pushes their links.
fn visit(
    store: &Store,
    hash: &CapHash,
    policy: &mut Policy<'_>,
    stack: &mut Vec<Link>,
) -> Result<Option<CapKind>, StoreError> {
    let path = store.blob_path(hash);
    let kind = match read_kind(&path) {
        Ok(Some(kind)) => kind,
        Ok(None) => return Err(unknown_tag(hash, &path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            policy.on_missing(*hash)?;
            return Ok(None);
        }
        Err(e) => return Err(StoreError::io("read", path, e)),
    };
    if matches!(kind, CapKind::CNode | CapKind::Instance) {
        match store.read_verified(hash, false)? {
            Some((cap, _)) => push_links(&cap, *hash, stack),
            None => {
                // Removed between the two reads (by hand: the lock keeps
                // the store's own writers out).
                policy.on_missing(*hash)?;
                return Ok(None);
            }
        }
    }
    Ok(Some(kind))
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

impl Policy<'_> {
    fn on_missing(&mut self, hash: CapHash) -> Result<(), StoreError> {
        match self {
            Policy::Refuse { head, root } => Err(StoreError::IncompleteGraph {
                name: (*head).to_owned(),
                root: *root,
                missing: hash,
            }),
            Policy::Record { missing } => {
                missing.push(hash);
                Ok(())
            }
        }
    }

    fn on_wrong_kind(
        &mut self,
        required: &Requirement,
        child: CapHash,
        found: CapKind,
    ) -> Result<(), StoreError> {
        match self {
            Policy::Refuse { .. } => Err(StoreError::WrongLinkKind {
                parent: required.parent,
                child,
                field: required.field,
                expected: required.kind,
                found,
            }),
            // Pin it all the same: it is what the head holds.
            Policy::Record { .. } => Ok(()),
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
