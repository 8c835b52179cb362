//! CacheDirectory semantics: promote, copy-on-write, settle, sweep.

use std::sync::Arc;

use capbox_shared::{
    CNode, CacheDirectory, CacheError, Cap, CapError, CapHash, CapHashOrRef, Data, Image,
    InstanceCap, PAGE_SIZE, TypeCap,
};

fn data(bytes: &[u8]) -> Cap {
    Cap::Data(Data::from_bytes(bytes).unwrap())
}

fn image() -> Cap {
    Cap::Image(Image {
        code: vec![0, 0, 1, 0],
        endpoint_names: Vec::new(),
        endpoints: vec![0],
        ..Image::default()
    })
}

#[test]
fn put_cap_is_idempotent_and_keeps_first_arc() {
    let dir = CacheDirectory::new();
    let cap = data(b"content");
    let hash = dir.put_cap(&cap).unwrap();
    let first = dir.get_blob(&hash).unwrap();
    assert_eq!(dir.put_cap(&cap).unwrap(), hash);
    assert_eq!(dir.put_cap_arc(Arc::new(cap.clone())).unwrap(), hash);
    dir.put_cap_with_hash(hash, &cap).unwrap();
    assert_eq!(dir.blob_count(), 1);
    assert!(Arc::ptr_eq(&first, &dir.get_blob(&hash).unwrap()));
    assert_eq!(dir.get(&CapHashOrRef::Hash(hash)).as_deref(), Some(&cap));
    assert_eq!(dir.iter_blobs().len(), 1);
}

#[test]
fn put_cap_arc_stores_the_given_arc() {
    let dir = CacheDirectory::new();
    let arc = Arc::new(image());
    let hash = dir.put_cap_arc(arc.clone()).unwrap();
    assert!(Arc::ptr_eq(&arc, &dir.get_blob(&hash).unwrap()));
}

#[test]
fn blobs_with_refs_are_rejected() {
    let dir = CacheDirectory::new();
    let working = dir.put_instance(data(b"x"));
    let mut cnode = CNode::new();
    cnode.set(0, working.into()).unwrap();
    let cap = Cap::CNode(cnode);
    let expected = CacheError::Cap(CapError::UnsettledRef);
    assert_eq!(dir.put_cap(&cap), Err(expected.clone()));
    assert_eq!(
        dir.put_cap_with_hash(CapHash::default(), &cap),
        Err(expected.clone())
    );
    assert_eq!(dir.put_cap_arc(Arc::new(cap)), Err(expected));
    assert_eq!(dir.blob_count(), 0);
}

#[test]
fn promote_shares_the_arc_and_copy_on_write_leaves_the_blob() {
    let dir = CacheDirectory::new();
    let bytes = vec![5u8; 4 * PAGE_SIZE];
    let hash = dir.put_cap(&data(&bytes)).unwrap();
    let blob = dir.get_blob(&hash).unwrap();
    let working = dir.promote_blob_to_instance(&hash).unwrap();
    let mut arc = dir.get_instance(&working).unwrap();
    assert!(Arc::ptr_eq(&blob, &arc), "promotion copies nothing");

    let Cap::Data(d) = Arc::make_mut(&mut arc) else {
        unreachable!()
    };
    d.write(10, b"new").unwrap();
    dir.set_instance(&working, arc).unwrap();

    let blob_now = dir.get_blob(&hash).unwrap();
    assert!(Arc::ptr_eq(&blob, &blob_now));
    assert_eq!(blob_now.hash().unwrap(), hash);
    let Cap::Data(original) = &*blob_now else {
        unreachable!()
    };
    assert_eq!(original.to_vec(), bytes);
    let mutated = dir.get_instance(&working).unwrap();
    assert_ne!(mutated.hash().unwrap(), hash);

    assert_eq!(
        dir.promote_blob_to_instance(&CapHash::default()),
        Err(CacheError::BlobMissing(CapHash::default()))
    );
}

/// Builds Instance → (memory Data ref, root CNode ref → {Data ref, blob}).
fn working_graph(dir: &CacheDirectory) -> (capbox_shared::CapRef, Cap) {
    let image_hash = dir.put_cap(&image()).unwrap();
    let shared_hash = dir.put_cap(&data(b"published")).unwrap();
    let memory = dir.put_instance(data(&[1u8; 3 * PAGE_SIZE]));
    let slot_data = dir.put_instance(data(b"slot"));
    let mut cnode = CNode::new();
    cnode.set(0, slot_data.into()).unwrap();
    cnode.set(7, shared_hash.into()).unwrap();
    let root = dir.put_instance(Cap::CNode(cnode));
    let instance = dir.put_instance(Cap::Instance(InstanceCap {
        image: image_hash,
        memory: memory.into(),
        root_cnode: root.into(),
        image_hash_chain: TypeCap::child(&TypeCap::ROOT_CHAIN, &image_hash),
    }));

    // The same graph, published as blobs bottom-up.
    let memory_hash = dir.put_cap(&data(&[1u8; 3 * PAGE_SIZE])).unwrap();
    let slot_hash = dir.put_cap(&data(b"slot")).unwrap();
    let mut published_cnode = CNode::new();
    published_cnode.set(0, slot_hash.into()).unwrap();
    published_cnode.set(7, shared_hash.into()).unwrap();
    let cnode_hash = dir.put_cap(&Cap::CNode(published_cnode)).unwrap();
    let published = Cap::Instance(InstanceCap {
        image: image_hash,
        memory: memory_hash.into(),
        root_cnode: cnode_hash.into(),
        image_hash_chain: TypeCap::child(&TypeCap::ROOT_CHAIN, &image_hash),
    });
    (instance, published)
}

#[test]
fn settle_nested_refs_matches_published_graph() {
    let dir = CacheDirectory::new();
    let (instance, published) = working_graph(&dir);
    assert_eq!(
        dir.get_instance(&instance).unwrap().hash(),
        Err(CapError::UnsettledRef)
    );
    let blobs_before = dir.blob_count();
    let key = CapHashOrRef::Ref(instance.clone());
    let hash = dir.settle(&key).unwrap();
    assert_eq!(hash, published.hash().unwrap());
    // The Instance stays live (now Ref-free); the nested entries were
    // published into blobs, which already held the same content.
    let live = dir.get_instance(&instance).unwrap();
    assert_eq!(*live, published);
    assert_eq!(dir.blob_count(), blobs_before);
    // Nothing holds the nested entries any more: they are garbage.
    assert_eq!(dir.sweep_instances(), 3);
    assert_eq!(dir.instance_count(), 1);
    // Settling again is stable.
    assert_eq!(dir.settle(&key).unwrap(), hash);
    assert_eq!(dir.settle(&CapHashOrRef::Hash(hash)).unwrap(), hash);
}

#[test]
fn settle_publishes_data_sharing_the_arc() {
    let dir = CacheDirectory::new();
    let working = dir.put_instance(data(b"fresh"));
    let copy = working.clone();
    let hash = dir.settle(&working.clone().into()).unwrap();
    assert_eq!(hash, data(b"fresh").hash().unwrap());
    let blob = dir.get_blob(&hash).unwrap();
    let entry = dir.get_instance(&working).unwrap();
    assert!(Arc::ptr_eq(&blob, &entry), "published without a copy");
    // Other holders keep a working entry; it goes once nobody holds it.
    drop(working);
    assert_eq!(dir.sweep_instances(), 0);
    assert_eq!(dir.settle(&copy.clone().into()).unwrap(), hash);
    drop(copy);
    drop(entry);
    assert_eq!(dir.sweep_instances(), 1);
    assert!(dir.contains_blob(&hash));
}

#[test]
fn settle_of_a_shared_ref_keeps_the_other_holder_valid() {
    let dir = CacheDirectory::new();
    let shared = dir.put_instance(data(b"shared"));
    let mut first = CNode::new();
    first.set(0, shared.clone().into()).unwrap();
    let mut second = CNode::new();
    second.set(0, shared.into()).unwrap();
    let first = dir.put_instance(Cap::CNode(first));
    let second = dir.put_instance(Cap::CNode(second));
    let a = dir.settle(&first.into()).unwrap();
    let b = dir.settle(&second.into()).unwrap();
    assert_eq!(a, b);
    assert_eq!(dir.sweep_instances(), 3);
}

#[test]
fn settle_detects_cycles() {
    let dir = CacheDirectory::new();
    let a = dir.put_instance(Cap::CNode(CNode::new()));
    let mut cnode = CNode::new();
    cnode.set(1, a.clone().into()).unwrap();
    dir.set_instance(&a, Arc::new(Cap::CNode(cnode))).unwrap();
    assert_eq!(
        dir.settle(&a.clone().into()),
        Err(CacheError::RefCycle(a.id()))
    );
}

#[test]
fn settle_bounds_depth() {
    let dir = CacheDirectory::new();
    let mut link = dir.put_instance(data(b"leaf"));
    for _ in 0..100 {
        let mut cnode = CNode::new();
        cnode.set(0, link.into()).unwrap();
        link = dir.put_instance(Cap::CNode(cnode));
    }
    assert_eq!(dir.settle(&link.into()), Err(CacheError::SettleTooDeep));
}

#[test]
fn sweep_removes_exactly_the_unheld_entries_cascading() {
    let dir = CacheDirectory::new();
    let (instance, _) = working_graph(&dir);
    let kept = dir.put_instance(data(b"kept"));
    let unheld = dir.put_instance(data(b"unheld"));
    drop(unheld);
    assert_eq!(dir.instance_count(), 6);
    // Only `unheld` is garbage: the graph's inner entries are held by caps.
    assert_eq!(dir.sweep_instances(), 1);
    assert_eq!(dir.instance_count(), 5);
    // Dropping the instance handle frees the whole graph, level by level.
    drop(instance);
    assert_eq!(dir.sweep_instances(), 4);
    assert_eq!(dir.instance_count(), 1);
    assert!(dir.get_instance(&kept).is_some());
    assert_eq!(dir.sweep_instances(), 0);
    // An outside Arc of a removed cap keeps its nested entries alive.
    let parent_child = dir.put_instance(data(b"child"));
    let mut cnode = CNode::new();
    cnode.set(0, parent_child.clone().into()).unwrap();
    let parent = dir.put_instance(Cap::CNode(cnode));
    let outside = dir.get_instance(&parent).unwrap();
    drop(parent);
    drop(parent_child);
    assert_eq!(dir.sweep_instances(), 1);
    assert_eq!(dir.instance_count(), 2);
    drop(outside);
    assert_eq!(dir.sweep_instances(), 1);
    assert_eq!(dir.instance_count(), 1);
}

#[test]
fn stats_and_remove_blob() {
    let dir = CacheDirectory::new();
    let hash = dir.put_cap(&data(&[9u8; 2 * PAGE_SIZE])).unwrap();
    let _working = dir.put_instance(image());
    let stats = dir.stats();
    assert_eq!(stats.blob_count, 1);
    assert_eq!(stats.instance_count, 1);
    assert!(stats.blob_bytes >= 2 * PAGE_SIZE);
    assert!(stats.instance_bytes > 0);
    assert!(dir.remove_blob(&hash).is_some());
    assert!(dir.remove_blob(&hash).is_none());
    assert_eq!(dir.stats().blob_bytes, 0);
}

#[test]
fn set_instance_on_missing_entry_is_an_error() {
    let dir = CacheDirectory::new();
    let working = dir.put_instance(data(b"x"));
    let id = working.id();
    drop(working);
    dir.sweep_instances();
    let stray = capbox_shared::CapRef::new(id);
    assert_eq!(
        dir.set_instance(&stray, Arc::new(data(b"y"))),
        Err(CacheError::InstanceMissing(id))
    );
    assert_eq!(
        CacheError::InstanceMissing(id).to_string(),
        format!("no working entry #{id}")
    );
}
