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
