//! Helpers shared by the store test files: temp stores and small cap graphs.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use capbox::Store;
use capbox::shared::{CNode, Cap, CapHash, Data, Image, InstanceCap, TypeCap};
use tempfile::TempDir;

/// A fresh store in its own temp directory (kept alive by the `TempDir`).
pub fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("store")).expect("open store");
    (dir, store)
}

pub fn data(bytes: &[u8]) -> Cap {
    Cap::Data(Data::from_bytes(bytes).expect("data"))
}

pub fn image(seed: u8) -> Cap {
    Cap::Image(Image {
        code: vec![0, 0, 2, seed, 1, 1],
        ro_data: vec![seed; 3],
        rw_data: vec![seed ^ 0xff; 5],
        heap_pages: 1,
        stack_size: 4096,
        endpoint_names: Vec::new(),
        endpoints: vec![0, 1],
    })
}

pub fn cnode(slots: &[(u32, CapHash)]) -> Cap {
    let mut cnode = CNode::new();
    for &(slot, hash) in slots {
        cnode.set(slot, hash.into()).expect("slot in range");
    }
    Cap::CNode(cnode)
}

pub fn instance(image: CapHash, memory: CapHash, root_cnode: CapHash) -> Cap {
    Cap::Instance(InstanceCap {
        image,
        memory: memory.into(),
        root_cnode: root_cnode.into(),
        image_hash_chain: TypeCap::ROOT_CHAIN,
    })
}

/// Every cap of one small instance graph, children before parents, and the
/// instance last: image, memory, a Data in a nested CNode, the nested CNode,
/// the root CNode, the instance.
pub struct Graph {
    pub caps: Vec<Cap>,
    pub hashes: Vec<CapHash>,
}

impl Graph {
    pub fn new(seed: u8) -> Graph {
        let image = image(seed);
        let memory = data(&[seed, 1, 2, 3]);
        let leaf = data(&[seed; 5000]);
        let inner = cnode(&[(3, leaf.hash().unwrap())]);
        let root = cnode(&[(0, inner.hash().unwrap()), (7, memory.hash().unwrap())]);
        let inst = instance(
            image.hash().unwrap(),
            memory.hash().unwrap(),
            root.hash().unwrap(),
        );
        let caps = vec![image, memory, leaf, inner, root, inst];
        let hashes = caps.iter().map(|c| c.hash().unwrap()).collect();
        Graph { caps, hashes }
    }

    pub fn instance(&self) -> CapHash {
        *self.hashes.last().unwrap()
    }

    pub fn put_all(&self, store: &Store) {
        for cap in &self.caps {
            store.put(cap).expect("put");
        }
    }
}

/// The blob file of `hash` (the documented layout: `blobs/<2 hex>/<64 hex>`).
pub fn blob_file(store: &Store, hash: &CapHash) -> PathBuf {
    let hex = hash.to_hex();
    store.path().join("blobs").join(&hex[..2]).join(hex)
}

/// Sets a blob's last access to `secs_ago` seconds before now.
pub fn age_blob(store: &Store, hash: &CapHash, secs_ago: u64) {
    let file = std::fs::File::open(blob_file(store, hash)).expect("blob file");
    file.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .expect("set mtime");
}
