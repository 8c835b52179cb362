//! CNode: the slot-tree hash, incremental == from scratch, persistence
//! (clones are independent), and Ref tracking.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use capbox_shared::cap::MAX_CNODE_SLOTS;
use capbox_shared::{CNode, Cap, CapError, CapHash, CapHashOrRef, CapRef};
use proptest::prelude::*;

fn h(n: u32) -> CapHash {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_le_bytes());
    bytes[31] = 0xa5;
    CapHash::from_bytes(bytes)
}

fn keyed(context: &str, parts: &[&[u8]]) -> [u8; 32] {
    let key = blake3::derive_key(context, b"");
    let mut hasher = blake3::Hasher::new_keyed(&key);
    for part in parts {
        hasher.update(part);
    }
    *hasher.finalize().as_bytes()
}

/// The documented definition, computed directly with BLAKE3 (sparse, level
/// by level): leaves `cnode slot` over the target hash, empty = zeros,
/// nodes `cnode node` over left ‖ right, depth 16, then `cap CNode` over
/// count ‖ root.
fn reference_hash(slots: &BTreeMap<u32, CapHash>) -> CapHash {
    let mut zero = [0u8; 32];
    let mut level: BTreeMap<u32, [u8; 32]> = slots
        .iter()
        .map(|(&slot, hash)| (slot, keyed("capbox v1 cnode slot", &[hash.as_bytes()])))
        .collect();
    for _ in 0..16 {
        let parents: BTreeSet<u32> = level.keys().map(|i| i / 2).collect();
        let next = parents
            .into_iter()
            .map(|p| {
                let left = level.get(&(2 * p)).unwrap_or(&zero);
                let right = level.get(&(2 * p + 1)).unwrap_or(&zero);
                (p, keyed("capbox v1 cnode node", &[left, right]))
            })
            .collect();
        zero = keyed("capbox v1 cnode node", &[&zero, &zero]);
        level = next;
    }
    let root = level.get(&0).copied().unwrap_or(zero);
    let count = (slots.len() as u32).to_le_bytes();
    CapHash::from_bytes(keyed("capbox v1 cap CNode", &[&count, &root]))
}

fn built(slots: &BTreeMap<u32, CapHash>) -> CNode {
    let mut cnode = CNode::new();
    for (&slot, &hash) in slots {
        cnode.set(slot, hash.into()).unwrap();
    }
    cnode
}

#[test]
fn hash_follows_the_documented_definition() {
    let cases: Vec<BTreeMap<u32, CapHash>> = vec![
        BTreeMap::new(),
        [(0, h(1))].into(),
        [(3, h(1))].into(),
        [
            (0, h(1)),
            (1, h(2)),
            (5, h(3)),
            (40_000, h(4)),
            (65_535, h(5)),
        ]
        .into(),
    ];
    for slots in cases {
        let cnode = built(&slots);
        let expected = reference_hash(&slots);
        assert_eq!(cnode.hash(), Ok(expected));
        assert_eq!(cnode.hash_uncached(), Ok(expected));
        assert_eq!(Cap::CNode(cnode).hash(), Ok(expected));
    }
}

#[test]
fn set_checks_the_slot_range() {
    let mut cnode = CNode::new();
    assert_eq!(
        cnode.set(MAX_CNODE_SLOTS, h(1).into()),
        Err(CapError::SlotOutOfRange(MAX_CNODE_SLOTS))
    );
    assert_eq!(cnode.set(MAX_CNODE_SLOTS - 1, h(1).into()), Ok(None));
    assert_eq!(
        cnode.set(MAX_CNODE_SLOTS - 1, h(2).into()),
        Ok(Some(h(1).into()))
    );
    assert_eq!(cnode.len(), 1);
    assert_eq!(cnode.get(MAX_CNODE_SLOTS), None);
    assert_eq!(cnode.remove(MAX_CNODE_SLOTS), None);
    assert_eq!(cnode.remove(MAX_CNODE_SLOTS - 1), Some(h(2).into()));
    assert!(cnode.is_empty());
    assert_eq!(cnode.hash(), CNode::new().hash());
}

#[test]
fn refs_block_the_hash_until_rewritten() {
    let mut cnode = CNode::new();
    cnode.set(1, h(1).into()).unwrap();
    cnode.set(7, CapRef::new(7).into()).unwrap();
    cnode.set(9, CapRef::new(9).into()).unwrap();
    let mut cap = Cap::CNode(cnode);
    assert_eq!(cap.hash(), Err(CapError::UnsettledRef));
    assert!(cap.has_refs());
    let mut visited = Vec::new();
    cap.for_each_target_mut(|target| {
        let id = target.as_ref_handle().unwrap().id();
        visited.push(id);
        if id == 7 {
            *target = h(70).into();
        }
    });
    assert_eq!(visited, [7, 9]);
    assert_eq!(cap.hash(), Err(CapError::UnsettledRef));
    cap.for_each_target_mut(|target| *target = h(90).into());
    assert!(!cap.has_refs());
    let expected = reference_hash(&[(1, h(1)), (7, h(70)), (9, h(90))].into());
    assert_eq!(cap.hash(), Ok(expected));
    let mut untouched = 0;
    cap.for_each_target_mut(|_| untouched += 1);
    assert_eq!(untouched, 0, "only Ref links are visited");
}

#[test]
fn clone_through_arc_make_mut_is_independent() {
    let slots: BTreeMap<u32, CapHash> = (0..2000).map(|i| (i * 31 % 65_536, h(i))).collect();
    let original = Arc::new(Cap::CNode(built(&slots)));
    let hash = original.hash().unwrap();
    let mut working = original.clone();
    let Cap::CNode(cnode) = Arc::make_mut(&mut working) else {
        unreachable!()
    };
    cnode.set(31, h(99_999).into()).unwrap();
    cnode.remove(62);
    cnode.set(65_535, CapRef::new(1).into()).unwrap();
    assert_eq!(working.hash(), Err(CapError::UnsettledRef));
    assert_eq!(original.hash(), Ok(hash));
    let Cap::CNode(before) = &*original else {
        unreachable!()
    };
    assert!(!before.has_refs());
    assert!(
        before
            .iter()
            .map(|(s, t)| (s, *t.as_hash().unwrap()))
            .eq(slots.clone())
    );
    assert_eq!(before.hash_uncached(), Ok(hash));
}

#[test]
fn full_table_changes_one_slot() {
    let slots: BTreeMap<u32, CapHash> = (0..MAX_CNODE_SLOTS).map(|i| (i, h(i))).collect();
    let full = built(&slots);
    let hash = full.hash().unwrap();
    assert_eq!(full.hash_uncached(), Ok(hash));
    let mut changed = full.clone();
    changed.set(12_345, h(7).into()).unwrap();
    let mut expected = slots;
    expected.insert(12_345, h(7));
    assert_eq!(changed.hash(), changed.hash_uncached());
    assert_eq!(changed.hash(), Ok(reference_hash(&expected)));
    assert_eq!(full.hash(), Ok(hash));
}

#[derive(Debug, Clone)]
enum Op {
    SetHash(u32, u32),
    SetRef(u32, u64),
    Remove(u32),
    /// Rewrites every Ref to a hash, as settling does.
    Settle,
    /// Checks the hash and keeps a clone to check later.
    Snapshot,
}

fn op(slots: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..slots, any::<u32>()).prop_map(|(s, n)| Op::SetHash(s, n)),
        2 => (0..slots, any::<u64>()).prop_map(|(s, id)| Op::SetRef(s, id)),
        3 => (0..slots).prop_map(Op::Remove),
        1 => Just(Op::Settle),
        2 => Just(Op::Snapshot),
    ]
}

fn slot_range() -> impl Strategy<Value = u32> {
    prop_oneof![Just(16u32), Just(300), Just(MAX_CNODE_SLOTS)]
}

/// A clone, the model's contents and the hash when it was taken.
type Snapshot = (
    CNode,
    BTreeMap<u32, CapHashOrRef>,
    Result<CapHash, CapError>,
);

fn model_refs(model: &BTreeMap<u32, CapHashOrRef>) -> Vec<u64> {
    model
        .values()
        .filter_map(|t| t.as_ref_handle().map(CapRef::id))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Random edits against a BTreeMap model: same contents; the
    /// incremental hash equals the from-scratch one, the documented
    /// reference and that of a freshly built CNode; `for_each_ref` and
    /// `for_each_target_mut` see exactly the Ref slots; the encoding round
    /// trips; clones taken along the way never change.
    #[test]
    fn random_edits_match_a_model(
        (slots, ops) in slot_range()
            .prop_flat_map(|n| (Just(n), proptest::collection::vec(op(n), 1..60)))
    ) {
        let _ = slots;
        let mut cnode = CNode::new();
        let mut model: BTreeMap<u32, CapHashOrRef> = BTreeMap::new();
        let mut snapshots: Vec<Snapshot> = Vec::new();
        for op in ops {
            match op {
                Op::SetHash(slot, n) => {
                    prop_assert_eq!(
                        cnode.set(slot, h(n).into()).unwrap(),
                        model.insert(slot, h(n).into())
                    );
                }
                Op::SetRef(slot, id) => {
                    let target = CapHashOrRef::Ref(CapRef::new(id));
                    prop_assert_eq!(
                        cnode.set(slot, target.clone()).unwrap(),
                        model.insert(slot, target)
                    );
                }
                Op::Remove(slot) => prop_assert_eq!(cnode.remove(slot), model.remove(&slot)),
                Op::Settle => {
                    let mut cap = Cap::CNode(cnode);
                    let mut seen = Vec::new();
                    cap.for_each_target_mut(|target| {
                        let id = target.as_ref_handle().map(CapRef::id);
                        seen.push(id);
                        *target = h(id.unwrap_or(0) as u32).into();
                    });
                    let expected: Vec<Option<u64>> = model_refs(&model).into_iter().map(Some).collect();
                    prop_assert_eq!(seen, expected);
                    for target in model.values_mut() {
                        if let Some(r) = target.as_ref_handle() {
                            *target = h(r.id() as u32).into();
                        }
                    }
                    let Cap::CNode(settled) = cap else { unreachable!() };
                    cnode = settled;
                }
                Op::Snapshot => {
                    snapshots.push((cnode.clone(), model.clone(), cnode.hash()));
                }
            }
            let mut refs = Vec::new();
            Cap::CNode(cnode.clone()).for_each_ref(|r| refs.push(r.id()));
            prop_assert_eq!(refs, model_refs(&model));
            prop_assert_eq!(cnode.has_refs(), model.values().any(|t| t.as_ref_handle().is_some()));
        }
        prop_assert_eq!(cnode.len(), model.len());
        prop_assert!(cnode.iter().map(|(s, t)| (s, t.clone())).eq(model.clone()));
        let hashes: Option<BTreeMap<u32, CapHash>> =
            model.iter().map(|(&s, t)| Some((s, *t.as_hash()?))).collect();
        match hashes {
            Some(settled) => {
                let expected = reference_hash(&settled);
                prop_assert_eq!(cnode.hash(), Ok(expected));
                prop_assert_eq!(cnode.hash_uncached(), Ok(expected));
                prop_assert_eq!(built(&settled).hash(), Ok(expected));
                let cap = Cap::CNode(cnode.clone());
                let bytes = cap.encode().unwrap();
                prop_assert_eq!(bytes.len(), 5 + 36 * settled.len());
                let decoded = Cap::decode(&bytes).unwrap();
                prop_assert_eq!(&decoded, &cap);
                prop_assert_eq!(decoded.hash(), Ok(expected));
            }
            None => {
                prop_assert_eq!(cnode.hash(), Err(CapError::UnsettledRef));
                prop_assert_eq!(Cap::CNode(cnode.clone()).encode(), Err(CapError::UnsettledRef));
            }
        }
        for (snapshot, contents, hash) in snapshots {
            // `changed_slots` never leaves out a slot that differs.
            let changed: BTreeSet<u32> = cnode.changed_slots(&snapshot).map(|(s, _)| s).collect();
            for (slot, target) in &model {
                if contents.get(slot) != Some(target) {
                    prop_assert!(changed.contains(slot), "slot {} changed", slot);
                }
            }
            prop_assert!(changed.iter().all(|slot| model.contains_key(slot)));
            prop_assert!(snapshot.iter().map(|(s, t)| (s, t.clone())).eq(contents));
            prop_assert_eq!(snapshot.hash(), hash);
        }
    }
}

/// `changed_slots` skips what two versions share: a change of 3 slots in
/// a table of 10,000 lists those 3, and equal tables built apart (hashed)
/// list nothing.
#[test]
fn changed_slots_cost_the_changes_only() {
    let mut old = CNode::new();
    for slot in 0..10_000 {
        old.set(slot, h(slot).into()).unwrap();
    }
    old.hash().unwrap();
    let mut new = old.clone();
    new.set(17, h(1_000_000).into()).unwrap();
    new.set(20_000, h(5).into()).unwrap();
    new.remove(400);
    new.set(9_999, h(7).into()).unwrap();
    let changed: BTreeSet<u32> = new.changed_slots(&old).map(|(s, _)| s).collect();
    assert_eq!(changed, BTreeSet::from([17, 9_999, 20_000]));
    assert_eq!(old.changed_slots(&old).count(), 0);

    let mut apart = CNode::new();
    for slot in 0..10_000 {
        apart.set(slot, h(slot).into()).unwrap();
    }
    // Not hashed yet: nothing to compare with, so every slot is listed.
    assert_eq!(apart.changed_slots(&old).count(), 10_000);
    apart.hash().unwrap();
    assert_eq!(apart.changed_slots(&old).count(), 0);
}
