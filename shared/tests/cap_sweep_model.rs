//! Sweep against a model: after dropping random handles of a random acyclic
//! working graph, exactly the entries reachable from the kept handles survive.

use std::collections::BTreeSet;

use capbox_shared::{CNode, CacheDirectory, Cap, CapRef, Data};
use proptest::prelude::*;

/// Entry `i` links to the earlier entries listed in `edges[i]` (acyclic).
fn graph() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<bool>)> {
    (1usize..24).prop_flat_map(|n| {
        let edges = (0..n)
            .map(|i| {
                if i == 0 {
                    Just(Vec::new()).boxed()
                } else {
                    proptest::collection::btree_set(0..i, 0..3)
                        .prop_map(|s| s.into_iter().collect())
                        .boxed()
                }
            })
            .collect::<Vec<_>>();
        (edges, proptest::collection::vec(any::<bool>(), n))
    })
}

proptest! {
    #[test]
    fn sweep_keeps_exactly_the_reachable_entries((edges, keep) in graph()) {
        let dir = CacheDirectory::new();
        let mut handles: Vec<CapRef> = Vec::new();
        for (i, links) in edges.iter().enumerate() {
            let cap = if links.is_empty() {
                Cap::Data(Data::from_bytes(&[i as u8 + 1]).unwrap())
            } else {
                let mut cnode = CNode::new();
                for (slot, &target) in links.iter().enumerate() {
                    cnode.set(slot as u32, handles[target].clone().into()).unwrap();
                }
                Cap::CNode(cnode)
            };
            handles.push(dir.put_instance(cap));
        }
        let ids: Vec<u64> = handles.iter().map(CapRef::id).collect();

        let mut reachable = BTreeSet::new();
        let mut stack: Vec<usize> = (0..edges.len()).filter(|&i| keep[i]).collect();
        while let Some(i) = stack.pop() {
            if reachable.insert(i) {
                stack.extend(&edges[i]);
            }
        }

        let kept: Vec<CapRef> = handles
            .into_iter()
            .zip(&keep)
            .filter_map(|(h, &k)| k.then_some(h))
            .collect();
        let removed = dir.sweep_instances();
        prop_assert_eq!(removed, edges.len() - reachable.len());
        prop_assert_eq!(dir.instance_count(), reachable.len());
        for (i, &id) in ids.iter().enumerate() {
            let present = dir.get_instance(&CapRef::new(id)).is_some();
            prop_assert_eq!(present, reachable.contains(&i), "entry {}", i);
        }
        drop(kept);
        prop_assert_eq!(dir.sweep_instances(), reachable.len());
        prop_assert_eq!(dir.instance_count(), 0);
    }
}

proptest! {
    /// Settling any node of a random working DAG (shared children included)
    /// gives the hash of the same graph built from hashes bottom-up.
    #[test]
    fn settle_matches_bottom_up_hashes((edges, _keep) in graph(), pick in any::<prop::sample::Index>()) {
        let dir = CacheDirectory::new();
        let mut handles: Vec<CapRef> = Vec::new();
        let mut expected: Vec<capbox_shared::CapHash> = Vec::new();
        for (i, links) in edges.iter().enumerate() {
            let (working, published) = if links.is_empty() {
                let data = Cap::Data(Data::from_bytes(&[i as u8 + 1]).unwrap());
                (data.clone(), data)
            } else {
                let mut working = CNode::new();
                let mut published = CNode::new();
                for (slot, &target) in links.iter().enumerate() {
                    working.set(slot as u32, handles[target].clone().into()).unwrap();
                    published.set(slot as u32, expected[target].into()).unwrap();
                }
                (Cap::CNode(working), Cap::CNode(published))
            };
            expected.push(published.hash().unwrap());
            handles.push(dir.put_instance(working));
        }
        let root = pick.index(edges.len());
        let settled = dir.settle(&handles[root].clone().into()).unwrap();
        prop_assert_eq!(settled, expected[root]);
        // Every other node still settles to its own hash afterwards.
        for (i, handle) in handles.iter().enumerate() {
            let hash = dir.settle(&handle.clone().into()).unwrap();
            prop_assert_eq!(hash, expected[i]);
        }
    }
}
