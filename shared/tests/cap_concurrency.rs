//! Several threads hammer one directory with promote / mutate / settle /
//! sweep: no deadlock, and the invariants hold throughout and at the end.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use capbox_shared::{
    CNode, CacheDirectory, Cap, CapHashOrRef, Data, Image, InstanceCap, PAGE_SIZE, TypeCap,
};

const WORKERS: usize = 4;
const ROUNDS: usize = 1500;

fn run_worker(dir: &CacheDirectory, worker: usize, base: capbox_shared::CapHash) {
    let image_hash = dir
        .put_cap(&Cap::Image(Image {
            code: vec![worker as u8],
            ..Image::default()
        }))
        .unwrap();
    for round in 0..ROUNDS {
        // Promote the shared blob and write our own mark (copy-on-write).
        let memory = dir.promote_blob_to_instance(&base).unwrap();
        let mut arc = dir.get_instance(&memory).unwrap();
        let Cap::Data(data) = Arc::make_mut(&mut arc) else {
            panic!("base is a Data cap")
        };
        let mark = [worker as u8, round as u8, (round >> 8) as u8];
        data.write((round % 8 * PAGE_SIZE) as u64, &mark).unwrap();
        let expected_memory = data.clone();
        dir.set_instance(&memory, arc).unwrap();

        let mut cnode = CNode::new();
        let slot = dir.put_instance(Cap::Data(Data::from_bytes(&mark).unwrap()));
        cnode.set(0, slot.into()).unwrap();
        let root = dir.put_instance(Cap::CNode(cnode));
        let instance = dir.put_instance(Cap::Instance(InstanceCap {
            image: image_hash,
            memory: memory.into(),
            root_cnode: root.into(),
            image_hash_chain: TypeCap::ROOT_CHAIN,
        }));

        let settled = dir.settle(&CapHashOrRef::Ref(instance.clone())).unwrap();

        // The same state built from plain caps hashes identically.
        let mut expected_cnode = CNode::new();
        let slot_hash = Cap::Data(Data::from_bytes(&mark).unwrap()).hash().unwrap();
        expected_cnode.set(0, slot_hash.into()).unwrap();
        let expected = Cap::Instance(InstanceCap {
            image: image_hash,
            memory: Cap::Data(expected_memory).hash().unwrap().into(),
            root_cnode: Cap::CNode(expected_cnode).hash().unwrap().into(),
            image_hash_chain: TypeCap::ROOT_CHAIN,
        });
        assert_eq!(settled, expected.hash().unwrap());
        if round % 16 == 0 {
            dir.sweep_instances();
        }
        drop(instance);
    }
}

#[test]
fn concurrent_promote_mutate_settle_sweep() {
    let dir = Arc::new(CacheDirectory::new());
    let base_bytes = vec![0xabu8; 8 * PAGE_SIZE];
    let base = dir
        .put_cap(&Cap::Data(Data::from_bytes(&base_bytes).unwrap()))
        .unwrap();

    let (done_tx, done_rx) = mpsc::channel();
    let mut handles = Vec::new();
    for worker in 0..WORKERS {
        let dir = dir.clone();
        let done = done_tx.clone();
        handles.push(thread::spawn(move || {
            run_worker(&dir, worker, base);
            done.send(()).unwrap();
        }));
    }
    // A sweeper running alongside.
    let sweeper = {
        let dir = dir.clone();
        thread::spawn(move || {
            let mut swept = 0;
            for _ in 0..2000 {
                swept += dir.sweep_instances();
                thread::yield_now();
            }
            swept
        })
    };
    for _ in 0..WORKERS {
        done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a worker deadlocked or died");
    }
    for handle in handles {
        handle.join().unwrap();
    }
    sweeper.join().unwrap();

    // Everything was dropped: a sweep leaves nothing behind.
    dir.sweep_instances();
    assert_eq!(dir.instance_count(), 0);
    // The shared blob never changed, and every blob is stored under its hash.
    let blob = dir.get_blob(&base).unwrap();
    let Cap::Data(data) = &*blob else {
        panic!("base is a Data cap")
    };
    assert_eq!(data.to_vec(), base_bytes);
    for (hash, cap) in dir.iter_blobs() {
        assert_eq!(cap.hash().unwrap(), hash);
    }
}
